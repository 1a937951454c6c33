namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA source of the tensor-core weight-only linear (<c>qgemm</c>): <c>y = (x ⊙ in_scale) · dequant(W)ᵀ + bias</c>
    /// for up to 64 rows of float16/bfloat16 activations, with the weight dequantized in registers and multiplied by
    /// <c>mma.sync.m16n8k16</c> (fp32 accumulation). Compiled after <see cref="FusedKernelSources.Prelude"/> with
    /// <c>-DMIX_T=1|2</c> (the mma's input type) and <c>-DMIX_QMODE=0|1</c> (int8 per channel, int4 group-wise).
    /// </summary>
    /// <remarks>
    /// <para>Work: a block owns 128 output channels (4 warps × 4 n8 tiles) and a contiguous range of K chunks (split-K
    /// over <c>gridDim.y</c>). The block stages x for a K tile once in shared memory, already in the A-fragment order
    /// of the mma (each lane reads its 16×16 fragment with one 16-byte load), and every warp reuses it for its 32
    /// channels. Rows are padded to 16 per m16 tile (MT tiles, zeros past M).</para>
    /// <para>Weights are the repacked stream of <see cref="QuantizedGemm"/>: per (n8 tile, chunk) every lane reads one
    /// 16-byte vector that holds exactly its B fragments for the chunk (int4: a chunk is 128 of K, one 32-bit word per
    /// two k16 steps; int8: 64 of K, one word per step), so the weight is read once, coalesced, with no shared-memory
    /// round trip. ST chunks of every lane's loads are in flight while it computes (a register ring).</para>
    /// <para>Dequantization is integer bit tricks plus packed half-precision FMAs: an int4 nibble q becomes the
    /// float16/bfloat16 number B + q by OR-ing it into the mantissa of B (1024 for float16, 128 for bfloat16), one
    /// packed FMA subtracts B + zero (exact: a small integer) and a second multiplies by the group's scale (one
    /// rounding, like a weight stored in the activation dtype). Opt-in (<c>MIX_QM_FSCALE</c>, groups of 128 or more): the
    /// mma takes q − zero exactly (float16 reading a byte's high nibble in place: 1024 + 16q, scaled by 1/16 in the same
    /// FMA) and the group scale multiplies a per-chunk fp32 tile. int8 codes are stored as q + 128 and become q exactly
    /// the same way (bfloat16 has 7 mantissa bits, so the code's top bit picks the constant subtracted), and the
    /// per-channel scale is applied to the fp32 accumulator in the epilogue, so int8 weights enter the mma exactly.</para>
    /// <para>Split-K: every split writes its fp32 partial tile; the last block of a column to finish (an atomic counter
    /// per block column, reset by that block) sums the partials and writes bias + output. One launch either way.</para>
    /// <para>Emulation: without <c>__CUDA_ARCH__</c> the PTX helpers call <c>emu_*</c> functions a C++ harness provides
    /// (tests/Mix.Runtime.Tests/QuantGemmKernelEmulationTests.cs); every loop with a warp collective (mma, shuffle)
    /// runs the same number of times in every warp of a block.</para>
    /// </remarks>
    internal static class QuantGemmKernelSources
    {
        /// <summary>Threads per block.</summary>
        public const int Threads = 128;

        /// <summary>Output channels per block (the padding unit of the repacked N).</summary>
        public const int ChannelsPerBlock = 128;

        /// <summary>K per chunk (the padding unit of the repacked K): int4 128, int8 64.</summary>
        public static int ChunkK(bool int4) => int4 ? 128 : 64;

        /// <summary>Largest number of rows (4 m16 tiles).</summary>
        public const int MaxRows = 64;

        public const string Source = """
#ifndef MIX_QMODE
#define MIX_QMODE 1
#endif
// timing probes (benchmarks only; wrong outputs): 1 = the weight stream alone (no dequantization, no mma),
// 2 = raw code words into the mma (no dequantization)
#ifndef MIX_QM_PROBE
#define MIX_QM_PROBE 0
#endif
// opt-in (QuantizedGemm.Int4ScaleInAccumulator): int4 with one group per chunk (groups of 128 or more) and up to
// MIX_QM_FSCALE m16 tiles feeds the exact integers q − z to the mma and applies the group's scale to a per-chunk fp32
// tile (0: off, the scale is applied per weight pair in the activation dtype)
#ifndef MIX_QM_FSCALE
#define MIX_QM_FSCALE 0
#endif
// chunks in the weight ring for more than one m16 tile (QuantizedGemm.RingForManyRows; opt-in 3)
#ifndef MIX_QM_RING
#define MIX_QM_RING 2
#endif
#define QM_WARPS 4
#define QM_NT 4
#define QM_BN (QM_WARPS * QM_NT * 8)
#if MIX_QMODE == 1
#define QM_CK 128
#else
#define QM_CK 64
#endif
// x staging: two buffers (tile i+1 in flight while tile i is computed), each 16·MT rows of QM_KT(MT) columns, row-major
// with QM_W(MT) = QM_KT/2 + 4 words per row (the 4 put the 8 rows a warp's fragment load touches on distinct banks)
#define QM_KT(MT) (512 / (MT))
#define QM_W(MT) (QM_KT(MT) / 2 + 4)
#define QM_BUF_U32 4352
#define QM_RU 4
#if MIX_T == 2
#define QM_ONE 0x3F803F80u
#define QM_MAGIC 0x43004300u
#define QM_NEG_MAGIC 0xC300C300u
#else
#define QM_ONE 0x3C003C00u
#define QM_MAGIC 0x64006400u
#define QM_NEG_MAGIC 0xE400E400u
#endif
#define QM_NEG_ZERO 0x80008000u

// d = a * b + c on two packed float16 / bfloat16 halves
__device__ __forceinline__ unsigned qm_fma2(unsigned a, unsigned b, unsigned c) {
#ifdef __CUDA_ARCH__
  unsigned d;
#if MIX_T == 2
  asm("fma.rn.bf16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#else
  asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(d) : "r"(a), "r"(b), "r"(c));
#endif
  return d;
#else
  return emu_fma2(a, b, c);
#endif
}

// c += A (16x16, row) · B (16x8, col); fragments as in the PTX ISA's m16n8k16 layouts
__device__ __forceinline__ void qm_mma(float (&c)[4], const uint4& a, unsigned b0, unsigned b1) {
#ifdef __CUDA_ARCH__
#if MIX_T == 2
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
#else
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3]) : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
#endif
#else
  emu_mma(c, a, b0, b1);
#endif
}

// one 16-byte weight vector, read once: not kept in L1
__device__ __forceinline__ uint4 qm_ld16(const uint4* p) {
#ifdef __CUDA_ARCH__
  uint4 v;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0,%1,%2,%3}, [%4];" : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w) : "l"(p));
  return v;
#else
  return *p;
#endif
}

// int4 codes → packed pairs (nibble j, nibble j + 4) · scale − zero · scale, for j = 2h and 2h + 1 (the B fragment
// of k16 step h of the word)
__device__ __forceinline__ void qm_dq4(unsigned w, unsigned sz, int h, unsigned& r0, unsigned& r1) {
  const unsigned nz = QM_NEG_MAGIC | ((sz & 0xFFu) * 0x10001u);   // −(B + zero) in both halves
  const unsigned ss = __byte_perm(sz, 0u, 0x3232);                 // the scale in both halves
  const unsigned v0 = ((w >> (8 * h)) & 0x000F000Fu) | QM_MAGIC, v1 = ((w >> (8 * h + 4)) & 0x000F000Fu) | QM_MAGIC;
  r0 = qm_fma2(qm_fma2(v0, QM_ONE, nz), ss, QM_NEG_ZERO);
  r1 = qm_fma2(qm_fma2(v1, QM_ONE, nz), ss, QM_NEG_ZERO);
}

// the opt-in fp32-group-scale build's dequantization: the exact integers q − zero as packed pairs (nibble j, nibble
// j + 4), for j = 2h and 2h + 1; z2 is the zero point in both halves. float16 reads the odd nibble where it lies (bits
// 4–7 of a half: 1024 + 16q, times 1/16 is 64 + q exactly), so a word needs one shift, not three; bfloat16's 7-bit
// mantissa cannot hold it there. (Not in qm_dq4: there it cost the g32/g64 entries 15 registers under NVRTC 11.8.)
__device__ __forceinline__ void qm_dq4i(unsigned w, unsigned z2, int h, unsigned& r0, unsigned& r1) {
  const unsigned u = w >> (8 * h);
  r0 = qm_fma2((u & 0x000F000Fu) | QM_MAGIC, QM_ONE, QM_NEG_MAGIC | z2);
#if MIX_T == 2
  r1 = qm_fma2(((u >> 4) & 0x000F000Fu) | QM_MAGIC, QM_ONE, QM_NEG_MAGIC | z2);
#else
  r1 = qm_fma2((u & 0x00F000F0u) | QM_MAGIC, 0x2C002C00u, 0xD400D400u | (z2 << 4));   // × 1/16, − (64 + zero)
#endif
}

// 4 int8 codes (stored as q + 128) → 2 packed pairs of exact integers: (byte 0, byte 1), (byte 2, byte 3)
__device__ __forceinline__ void qm_dq8(unsigned w, unsigned& r0, unsigned& r1) {
#if MIX_T == 2
  // bf16 128 + (u & 127); u's top bit says whether 128 or 256 comes off
  const unsigned p0 = __byte_perm(w, 0x43434343u, 0x4140), p1 = __byte_perm(w, 0x43434343u, 0x4342);
  const unsigned h0 = p0 & 0x00800080u, h1 = p1 & 0x00800080u;
  r0 = qm_fma2(p0 ^ h0, QM_ONE, h0 ^ 0xC380C380u);
  r1 = qm_fma2(p1 ^ h1, QM_ONE, h1 ^ 0xC380C380u);
#else
  // f16 1024 + u, minus 1152
  r0 = qm_fma2(__byte_perm(w, 0x64646464u, 0x4140), QM_ONE, 0xE480E480u);
  r1 = qm_fma2(__byte_perm(w, 0x64646464u, 0x4342), QM_ONE, 0xE480E480u);
#endif
}

// the weight vectors (and int4 group scales) of chunk c for the warp's QM_NT n8 tiles
// (int4: lane t of a quad reads group gq + t % GPC of the chunk; gq is the chunk's first group, from qm_group)
__device__ __forceinline__ void qm_load(uint4 (&w)[QM_NT], unsigned (&z)[QM_NT], const uint4* __restrict__ codes,
    const unsigned* __restrict__ sz, int nt0, int c, int CH, int G, int gl, int lane) {
#pragma unroll
  for (int n = 0; n < QM_NT; n++) {
    w[n] = qm_ld16(codes + ((long long)(nt0 + n) * CH + c) * 32 + lane);
#if MIX_QMODE == 1
    z[n] = __ldg(sz + ((long long)(nt0 + n) * G + gl) * 8 + (lane >> 2));
#else
    z[n] = 0u;
#endif
  }
}

// the group a lane reads for chunk c: groups of 32/64 (GPC = 4/2 per chunk) or 128·cpg (a group spans cpg chunks),
// without a division in the common cases
template <int GPC>
__device__ __forceinline__ int qm_group(int c, int tq, int cpg) {
  return GPC > 1 ? c * GPC + tq : cpg == 1 ? c : c / cpg;
}

// cp.async of 16 bytes, zero-filled past n bytes of the source (n = 0: all zeros)
__device__ __forceinline__ void qm_cp16(unsigned* dst, const void* src, int n) {
#ifdef __CUDA_ARCH__
  const unsigned s = (unsigned)__cvta_generic_to_shared(dst);
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(s), "l"(src), "r"(n));
#else
  emu_cp16(dst, src, n);
#endif
}
__device__ __forceinline__ void qm_commit() {
#ifdef __CUDA_ARCH__
  asm volatile("cp.async.commit_group;" ::);
#endif
}
// wait until at most one group (the tile in flight) is outstanding
__device__ __forceinline__ void qm_wait1() {
#ifdef __CUDA_ARCH__
  asm volatile("cp.async.wait_group 1;" ::: "memory");
#endif
}

// x[:, k0 : k0 + cols] (cols a multiple of the chunk, ≤ the tile) into rows 0..M−1 of a staging buffer, 8 columns per
// item: one cp.async where K and the pointers allow (columns at or past K zero-filled), else scalar loads and stores.
// Nothing waits here: a thread's copies land before its qm_wait1 of the next tile boundary. Rows ≥ M stay zero.
template <int MT>
__device__ __forceinline__ void qm_stage(unsigned* __restrict__ xs, const io_t* __restrict__ x, int M, int K, int k0, int cols, bool vec) {
  constexpr unsigned UK = QM_KT(MT) / 8;   // items per row of a full tile: a power of two
  const unsigned items = (unsigned)M * UK;
  for (unsigned e = threadIdx.x; e < items; e += blockDim.x) {
    const unsigned r = e / UK;
    const int c = (int)(e % UK) * 8, k = k0 + c;
    if (c >= cols) continue;
    unsigned* dst = xs + r * QM_W(MT) + (c >> 1);
    const io_t* p = x + (long long)r * K + k;
    if (vec) {
      qm_cp16(dst, k < K ? (const void*)p : (const void*)x, k < K ? 16 : 0);
    } else {
      // unrolled with constant indices: a runtime-bounded loop here put w in local memory
      unsigned w[4] = { 0u, 0u, 0u, 0u };
#pragma unroll
      for (int i = 0; i < 8; i++)
        if (k + i < K) w[i >> 1] |= (unsigned)p[i] << (16 * (i & 1));
#pragma unroll
      for (int i = 0; i < 4; i++) dst[i] = w[i];
    }
  }
}

// the AWQ input scale on the items this thread staged (its own copies have landed after qm_wait1), rounded to the
// activation dtype like the unfused x ⊙ s
template <int MT>
__device__ __forceinline__ void qm_scale(unsigned* __restrict__ xs, const float* __restrict__ in_scale, int M, int K, int k0, int cols, bool vec) {
  constexpr unsigned UK = QM_KT(MT) / 8;
  const unsigned items = (unsigned)M * UK;
  for (unsigned e = threadIdx.x; e < items; e += blockDim.x) {
    const unsigned r = e / UK;
    const int c = (int)(e % UK) * 8, k = k0 + c;
    if (c >= cols || k >= K) continue;
    unsigned* dst = xs + r * QM_W(MT) + (c >> 1);
    float sc[8];
    if (vec) {
      const float4 s0 = *reinterpret_cast<const float4*>(in_scale + k), s1 = *reinterpret_cast<const float4*>(in_scale + k + 4);
      sc[0] = s0.x; sc[1] = s0.y; sc[2] = s0.z; sc[3] = s0.w; sc[4] = s1.x; sc[5] = s1.y; sc[6] = s1.z; sc[7] = s1.w;
    } else {
#pragma unroll
      for (int i = 0; i < 8; i++) sc[i] = k + i < K ? in_scale[k + i] : 0.0f;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
      const unsigned w = dst[i];
      const io_t lo = from_f(to_f((io_t)(w & 0xFFFFu)) * sc[2 * i]), hi = from_f(to_f((io_t)(w >> 16)) * sc[2 * i + 1]);
      dst[i] = (unsigned)lo | ((unsigned)hi << 16);
    }
  }
}

// the A fragment of k16 step ks for m16 tile m (PTX m16n8k16: rows g, g + 8, columns 2t, 2t + 1 and + 8) with one
// ldmatrix.x4: lane l names row l % 16, columns 8·(l / 16) of the 16×16 block, so matrices 0–3 are the fragment's
// registers in order; xb is the buffer offset by the lane's (l % 16)·W + 4·(l / 16). The rows' padding puts each
// 8-row phase on 32 distinct banks.
template <int MT>
__device__ __forceinline__ uint4 qm_afrag(const unsigned* __restrict__ xb, int m, int ks) {
  const unsigned* p = xb + (16 * m) * QM_W(MT) + ks * 8;
#ifdef __CUDA_ARCH__
  uint4 a;
  const unsigned s = (unsigned)__cvta_generic_to_shared(p);
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];" : "=r"(a.x), "=r"(a.y), "=r"(a.z), "=r"(a.w) : "r"(s));
  return a;
#else
  return emu_ldmatrix_x4(p);
#endif
}

template <int MT, int GPC>
__device__ __forceinline__ void qgemm_body(
    const io_t* __restrict__ x, const float* __restrict__ in_scale, const uint4* __restrict__ codes,
    const unsigned* __restrict__ sz, const float* __restrict__ ch_scale, const float* __restrict__ bias,
    io_t* __restrict__ y, float* __restrict__ partial, unsigned* __restrict__ counters,
    int M, int K, int N, int Np, int CH, int G, int group, int S)
{
  __shared__ __align__(16) unsigned xs[2 * QM_BUF_U32];
  __shared__ int last_block;
  static_assert(16 * MT * QM_W(MT) <= QM_BUF_U32, "a staged tile outgrows its buffer");
  constexpr int KT = QM_KT(MT);                     // x columns per staged tile: 512 / MT
  constexpr int CPT = KT / QM_CK;                   // chunks per tile
  // chunks of weight loads per lane in the register ring (ST − 1 ahead): a 6-deep ring (MT 1) held 120 registers
  // and pushed the scale words to local memory; 3 ahead keep ~24 KB of weights in flight per block. More tiles: 1 ahead
  // by default (8 KB per block: short for a block alone on its SM), 2 ahead opt-in
  constexpr int ST = MT == 1 ? 4 : MT == 4 && MIX_QMODE == 1 ? 2 : MIX_QM_RING;   // int4 4 tiles, 3: 173 registers, spills
  constexpr int SPC = QM_CK / 16;                   // k16 steps per chunk
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int g = lane >> 2, t = lane & 3;
  const int nt0 = blockIdx.x * (QM_BN / 8) + warp * QM_NT;
  const int c0 = (int)((long long)blockIdx.y * CH / S), c1 = (int)((long long)(blockIdx.y + 1) * CH / S);

  float acc[MT][QM_NT][4];
#pragma unroll
  for (int m = 0; m < MT; m++)
#pragma unroll
    for (int n = 0; n < QM_NT; n++)
#pragma unroll
      for (int i = 0; i < 4; i++) acc[m][n][i] = 0.0f;
  // rows past M stay zero in both buffers (staging writes rows < M only)
  for (int e = threadIdx.x; e < 2 * QM_BUF_U32 / 4; e += blockDim.x) reinterpret_cast<uint4*>(xs)[e] = make_uint4(0u, 0u, 0u, 0u);

  uint4 wq[ST][QM_NT];
  unsigned szr[ST][QM_NT];
  // lane t of a quad fetches group t % GPC of the chunk for its column g; the quad shares them by shuffles
  const int tq = t % GPC, cpg = group > QM_CK ? group / QM_CK : 1;
#pragma unroll
  for (int s = 0; s < ST - 1; s++)
    if (c0 + s < c1) qm_load(wq[s], szr[s], codes, sz, nt0, c0 + s, CH, G, qm_group<GPC>(c0 + s, tq, cpg), lane);
  // x's first tile in flight behind the weights (after the zeros are in: a barrier between the two writers)
  const bool vec = (K & 7) == 0 && (((unsigned long long)x) & 15) == 0 && (((unsigned long long)in_scale) & 15) == 0;
  __syncthreads();
  if (c0 < c1) qm_stage<MT>(xs, x, M, K, c0 * QM_CK, min(KT, (c1 - c0) * QM_CK), vec);
  qm_commit();
  const unsigned* xl = xs + (lane & 15) * QM_W(MT) + 4 * (lane >> 4);   // the row and half this lane names to ldmatrix

  for (int cb = c0; cb < c1; cb += ST) {
#pragma unroll
    for (int s = 0; s < ST; s++) {
      const int c = cb + s;
      // a guard, not a break: the loop unrolls completely and every ring index is a constant (registers, not local)
      if (c < c1) {
      if (c + ST - 1 < c1) qm_load(wq[(s + ST - 1) % ST], szr[(s + ST - 1) % ST], codes, sz, nt0, c + ST - 1, CH, G, qm_group<GPC>(c + ST - 1, tq, cpg), lane);
      const int lc = (c - c0) % CPT, tile = (c - c0) / CPT;
      if (lc == 0) {
        // tile + 1 into the buffer tile − 1 used (every warp is done with it), then tile's own copies and scale
        __syncthreads();
        if (c + CPT < c1) qm_stage<MT>(xs + ((tile + 1) & 1) * QM_BUF_U32, x, M, K, (c + CPT) * QM_CK, min(KT, (c1 - c - CPT) * QM_CK), vec);
        qm_commit();
        qm_wait1();
        if (in_scale) qm_scale<MT>(xs + (tile & 1) * QM_BUF_U32, in_scale, M, K, c * QM_CK, min(KT, (c1 - c) * QM_CK), vec);
        __syncthreads();
      }
      const unsigned* xb = xl + (tile & 1) * QM_BUF_U32;
#if MIX_QMODE == 1
      if constexpr (GPC == 1 && MT <= MIX_QM_FSCALE) {
        // one group per chunk: the exact q − zero into a per-chunk fp32 tile, then the group's scale in fp32 (columns 2t
        // and 2t + 1 of an n8 tile, whose sz words lanes 8t and 8t + 4 hold): one FMA per accumulator per chunk instead
        // of a packed FMA per weight pair
        float ca[MT][QM_NT][4];
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
          for (int n = 0; n < QM_NT; n++)
#pragma unroll
            for (int i = 0; i < 4; i++) ca[m][n][i] = 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++)
#pragma unroll
          for (int h = 0; h < 2; h++) {
            uint4 a[MT];
#pragma unroll
            for (int m = 0; m < MT; m++) a[m] = qm_afrag<MT>(xb, m, lc * SPC + 2 * j + h);
#pragma unroll
            for (int n = 0; n < QM_NT; n++) {
              const unsigned w = j == 0 ? wq[s][n].x : j == 1 ? wq[s][n].y : j == 2 ? wq[s][n].z : wq[s][n].w;
              unsigned b0, b1;
              qm_dq4i(w, (szr[s][n] & 0xFFu) * 0x10001u, h, b0, b1);
#pragma unroll
              for (int m = 0; m < MT; m++) qm_mma(ca[m][n], a[m], b0, b1);
            }
          }
#pragma unroll
        for (int n = 0; n < QM_NT; n++) {
          const float f0 = to_f((io_t)(__shfl_sync(0xffffffffu, szr[s][n], 8 * t) >> 16));
          const float f1 = to_f((io_t)(__shfl_sync(0xffffffffu, szr[s][n], 8 * t + 4) >> 16));
#pragma unroll
          for (int m = 0; m < MT; m++) {
            acc[m][n][0] += f0 * ca[m][n][0];
            acc[m][n][1] += f1 * ca[m][n][1];
            acc[m][n][2] += f0 * ca[m][n][2];
            acc[m][n][3] += f1 * ca[m][n][3];
          }
        }
      } else {
      unsigned szq[QM_NT][GPC];
#pragma unroll
      for (int n = 0; n < QM_NT; n++)
#pragma unroll
        for (int q = 0; q < GPC; q++)
          szq[n][q] = GPC == 1 ? szr[s][n] : __shfl_sync(0xffffffffu, szr[s][n], (lane & ~3) | q);
      // word j of a lane's vector: k16 steps 2j + h (h = 0, 1), group (2j·16) / (128 / GPC) of the chunk
#pragma unroll
      for (int j = 0; j < 4; j++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          uint4 a[MT];
#pragma unroll
          for (int m = 0; m < MT; m++) a[m] = qm_afrag<MT>(xb, m, lc * SPC + 2 * j + h);
#pragma unroll
          for (int n = 0; n < QM_NT; n++) {
            const unsigned w = j == 0 ? wq[s][n].x : j == 1 ? wq[s][n].y : j == 2 ? wq[s][n].z : wq[s][n].w;
            unsigned b0, b1;
#if MIX_QM_PROBE == 2
            b0 = w >> h; b1 = w >> (h + 4);
#else
            qm_dq4(w, szq[n][(j * GPC) >> 2], h, b0, b1);
#endif
#if MIX_QM_PROBE != 1
#pragma unroll
            for (int m = 0; m < MT; m++) qm_mma(acc[m][n], a[m], b0, b1);
#endif
          }
        }
      }
#else
      // word j of a lane's vector: k16 step j
#pragma unroll
      for (int j = 0; j < 4; j++) {
        uint4 a[MT];
#pragma unroll
        for (int m = 0; m < MT; m++) a[m] = qm_afrag<MT>(xb, m, lc * SPC + j);
#pragma unroll
        for (int n = 0; n < QM_NT; n++) {
          const unsigned w = j == 0 ? wq[s][n].x : j == 1 ? wq[s][n].y : j == 2 ? wq[s][n].z : wq[s][n].w;
          unsigned b0, b1;
#if MIX_QM_PROBE == 2
          b0 = w; b1 = w >> 8;
#else
          qm_dq8(w, b0, b1);
#endif
#if MIX_QM_PROBE != 1
#pragma unroll
          for (int m = 0; m < MT; m++) qm_mma(acc[m][n], a[m], b0, b1);
#endif
        }
      }
#endif
      }
    }
  }

  // epilogue: lane holds rows g, g + 8 and columns 2t, 2t + 1 of every (m16, n8) tile
  if (S == 1) {
#pragma unroll
    for (int n = 0; n < QM_NT; n++) {
      const int col = (nt0 + n) * 8 + 2 * t;
      float s0 = 1.0f, s1 = 1.0f, b0 = 0.0f, b1 = 0.0f;
      if (MIX_QMODE == 0) { s0 = ch_scale[col]; s1 = ch_scale[col + 1]; }
      if (bias) { if (col < N) b0 = bias[col]; if (col + 1 < N) b1 = bias[col + 1]; }
#pragma unroll
      for (int m = 0; m < MT; m++)
#pragma unroll
        for (int h = 0; h < 2; h++) {
          const int r = m * 16 + g + 8 * h;
          if (r >= M) continue;
          if (col < N) y[(long long)r * N + col] = from_f(acc[m][n][2 * h] * s0 + b0);
          if (col + 1 < N) y[(long long)r * N + col + 1] = from_f(acc[m][n][2 * h + 1] * s1 + b1);
        }
    }
    return;
  }
#pragma unroll
  for (int n = 0; n < QM_NT; n++) {
    const int col = (nt0 + n) * 8 + 2 * t;
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
      for (int h = 0; h < 2; h++) {
        const int r = m * 16 + g + 8 * h;
        if (r >= M) continue;
        float* p = partial + ((long long)blockIdx.y * M + r) * Np + col;
        p[0] = acc[m][n][2 * h];
        p[1] = acc[m][n][2 * h + 1];
      }
  }
  __threadfence();
  __syncthreads();
  if (threadIdx.x == 0) last_block = atomicAdd(counters + blockIdx.x, 1u) == (unsigned)(S - 1);
  __syncthreads();
  if (!last_block) return;
  __threadfence();
  // the column's M × 128 sums as float4s, QM_RU of them per thread at once and the splits 4 at a time: up to 16
  // independent L2 loads in flight per thread (one row per L2 round trip before: ~0.9 µs per row of M)
  const int items = M * (QM_BN / 4), col0 = blockIdx.x * QM_BN;
  for (int e0 = threadIdx.x; e0 < items; e0 += QM_RU * blockDim.x) {
    float4 v[QM_RU];
#pragma unroll
    for (int u = 0; u < QM_RU; u++) v[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
    for (int sp = 0; sp < S; sp += 4) {
      float4 pv[4][QM_RU];
#pragma unroll
      for (int q = 0; q < 4; q++)
#pragma unroll
        for (int u = 0; u < QM_RU; u++) {
          const int e = e0 + u * (int)blockDim.x;
          pv[q][u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
          if (sp + q < S && e < items)
            pv[q][u] = __ldcg(reinterpret_cast<const float4*>(partial + ((long long)(sp + q) * M + e / (QM_BN / 4)) * Np + col0) + e % (QM_BN / 4));
        }
#pragma unroll
      for (int q = 0; q < 4; q++)
#pragma unroll
        for (int u = 0; u < QM_RU; u++) { v[u].x += pv[q][u].x; v[u].y += pv[q][u].y; v[u].z += pv[q][u].z; v[u].w += pv[q][u].w; }
    }
#pragma unroll
    for (int u = 0; u < QM_RU; u++) {
      const int e = e0 + u * (int)blockDim.x;
      if (e >= items) continue;
      const int r = e / (QM_BN / 4), col = col0 + (e % (QM_BN / 4)) * 4;
      const float o[4] = { v[u].x, v[u].y, v[u].z, v[u].w };
#pragma unroll
      for (int i = 0; i < 4; i++) {
        if (col + i >= N) continue;
        float val = o[i];
        if (MIX_QMODE == 0) val *= ch_scale[col + i];
        if (bias) val += bias[col + i];
        y[(long long)r * N + col + i] = from_f(val);
      }
    }
  }
  if (threadIdx.x == 0) counters[blockIdx.x] = 0u;
}

#define QM_ENTRY(MT, GPC) \
extern "C" __global__ void __launch_bounds__(128) qgemm_m##MT##_g##GPC( \
    const io_t* __restrict__ x, const float* __restrict__ in_scale, const uint4* __restrict__ codes, \
    const unsigned* __restrict__ sz, const float* __restrict__ ch_scale, const float* __restrict__ bias, \
    io_t* __restrict__ y, float* __restrict__ partial, unsigned* __restrict__ counters, \
    int M, int K, int N, int Np, int CH, int G, int group, int S) \
{ qgemm_body<MT, GPC>(x, in_scale, codes, sz, ch_scale, bias, y, partial, counters, M, K, N, Np, CH, G, group, S); }
#if MIX_QMODE == 1
QM_ENTRY(1, 1)
QM_ENTRY(2, 1)
QM_ENTRY(4, 1)
QM_ENTRY(1, 2)
QM_ENTRY(2, 2)
QM_ENTRY(4, 2)
QM_ENTRY(1, 4)
QM_ENTRY(2, 4)
QM_ENTRY(4, 4)
#else
QM_ENTRY(1, 1)
QM_ENTRY(2, 1)
QM_ENTRY(4, 1)
#endif
""";
    }
}
