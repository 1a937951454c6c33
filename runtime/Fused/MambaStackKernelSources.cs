namespace Mix.Runtime.Fused
{
    /// <summary>
    /// CUDA C++ of a persistent kernel that runs the decoding step of a whole segment of fused Mamba layers (what
    /// <see cref="FusedMambaStack"/> otherwise replays as a graph of four launches per layer) in one launch. At batch 1 a
    /// token of mamba-130m is ~0.26 GB of bf16 weights, ~90 µs at the H100's bandwidth, while the 96 dependent small
    /// kernels of the graph cost ~0.9 ms in launch latency, ramp-up and tails; here the grid stays resident and the phases
    /// are separated by a grid-wide barrier instead.
    /// </summary>
    /// <remarks>
    /// <para>Per layer, four phases over the whole grid, each ending at a barrier: (1) the block's rows RMS-normalized and
    /// <c>in_proj</c> over every warp of the grid, (2) the conv step + SiLU staged and <c>x_proj</c> (its few rows split
    /// over the warps of a block), (3) dt, softplus, the state update and the gate, one lane per state, (4) <c>out_proj</c>
    /// plus the residual. The device functions are the single-step kernels' (<see cref="MambaStepKernelSources"/>, compiled
    /// in the same module), so both paths compute the same sums in the same order. Full-precision weights only.</para>
    /// <para>The barrier is an arrival counter and a generation word in global memory: block leaders add themselves, the last
    /// one resets the counter and advances the generation, the others wait for it. The counter is back at zero after every
    /// barrier, so the same words serve every launch. A wait longer than two seconds sets a third word and releases every
    /// later barrier, so a broken grid ends instead of holding the device (the host checks the word after the first launch). It needs every block resident at once: the host launches the grid
    /// cooperatively (<c>cuLaunchCooperativeKernel</c>, which refuses a grid that cannot be), sized from the occupancy query.
    /// Before waiting, each warp asks L2 for weight rows it reads later: x_proj's and out_proj's after in_proj, the next
    /// layer's in_proj after x_proj (so the largest weight has the scan phase and two barriers to arrive).</para>
    /// <para>Activations between layers alternate between two buffers (ping, pong); the first layer reads the segment's
    /// input, the last writes its output. States are read from buffer <c>parity</c> of each layer's pair and written to the
    /// other, as the single step reads the slot's states and writes its spares.</para>
    /// <para>Two opt-in builds (issue 13, to be timed): <c>MIX_FAST_BARRIER</c> (<see cref="FusedMambaStack.PersistentFastBarrier"/>),
    /// a barrier whose only global-memory steps are one release add per block on a 64-bit count that never resets and
    /// the waiters' acquire polls of it; <c>MIX_FOLD_XPROJ</c> (<see cref="FusedMambaStack.PersistentFoldXProj"/>), x_proj
    /// computed inside the in_proj phase as per-block partial sums that the scan phase adds up in block order, so a
    /// layer is three phases. Either, both or neither; the kernel's signature is the same in every build.</para>
    /// </remarks>
    internal static class MambaStackKernelSources
    {
        /// <summary>Threads per block (eight warps, as <see cref="MambaStepKernelSources.Threads"/>: mix_rows' partial sums
        /// are sized for eight).</summary>
        public const int Threads = 256;

        /// <summary>Bytes of one <c>MixMambaLayer</c>: 16 pointers, then a float and 11 ints.</summary>
        public const int LayerBytes = 16 * 8 + 12 * 4;

        /// <summary>Floats at the start of the dynamic shared memory before the staged rows (partial sums [8][MIX_MAXB] and
        /// the rows' inverse RMS [MIX_MAXB]; a multiple of four, so the rows stay 16-byte aligned).</summary>
        public const int SharedHeaderFloats = 9 * 8;

        /// <summary>Most in_proj x rows one block holds in a layer when x_proj is folded into the in_proj phase
        /// (<c>MIX_FOLD_SLOTS</c>, passed in <see cref="FoldOptions"/>).</summary>
        public const int FoldSlots = 64;

        /// <summary>The compile options of the fold build: the switch and its slot count, so that the kernel's shared
        /// layout and the host's <see cref="FoldSharedFloats"/> come from one number.</summary>
        public static readonly string[] FoldOptions = { "-DMIX_FOLD_XPROJ", $"-DMIX_FOLD_SLOTS={FoldSlots}" };

        /// <summary>Floats of shared memory the fold adds before the staged rows: its slots ([FoldSlots][8]) and the scan
        /// phase's 256 float4 sums.</summary>
        public const int FoldSharedFloats = FoldSlots * 8 + 4 * 256;

        public const string Source = """
// One layer of the segment (written by the host once per plan; layout mirrors PersistentMambaSegment.WriteLayer).
struct MixMambaLayer {
  const void* w_in; const void* w_x; const void* w_out;
  const io_t* norm_w; const io_t* bias_in; const io_t* bias_out;
  const io_t* conv_w; const io_t* conv_b; const io_t* dt_w; const io_t* dt_b; const io_t* a_log; const io_t* d_skip;
  float* conv_state[2]; float* ssm_state[2];
  float eps; int inner, width, rank, nstate, lanes;
  int vec_in, vec_x, vec_out, split_in, split_x, split_out;
};
static_assert(sizeof(MixMambaLayer) == 176, "MixMambaLayer must match MambaStackKernelSources.LayerBytes");

#ifndef MIX_EMULATION
__device__ __forceinline__ unsigned mix_load_acquire(const unsigned* p) {
#if __CUDA_ARCH__ >= 700
  unsigned v;
  asm volatile("ld.acquire.gpu.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
  return v;
#else
  const unsigned v = *reinterpret_cast<const volatile unsigned*>(p);
  __threadfence();
  return v;
#endif
}

__device__ __forceinline__ void mix_spin_pause() {
#if __CUDA_ARCH__ >= 700
  asm volatile("nanosleep.u32 %0;" :: "r"(32u));
#endif
}

__device__ __forceinline__ unsigned long long mix_clock_ns() {
  unsigned long long t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}
#endif

// Longest wait at one barrier before the launch gives up (see bar[2] below): far beyond any phase's microseconds, and
// beyond a time slice of another context on the device.
#ifndef MIX_BARRIER_NS
#define MIX_BARRIER_NS 2000000000ull
#endif

#ifndef MIX_FAST_BARRIER
// Every thread of the grid waits here until every block has arrived; writes before it are visible to reads after it.
// bar[0]: blocks arrived at this barrier, bar[1]: barriers completed. The generation is read before arriving (the last
// block can only advance it after this one has arrived), the counter is reset before the generation moves on.
// bar[2]: set when a block waited longer than MIX_BARRIER_NS (one that never arrives: a bug, or a block that is not
// resident); every barrier after that returns at once, so the launch ends with wrong results instead of holding the
// device forever, and the host, which reads the word after a segment's first launch, turns the persistent path off.
__device__ __forceinline__ void mix_grid_sync(unsigned* bar) {
  __syncthreads();
  if (threadIdx.x == 0) {
    const unsigned gen = mix_load_acquire(bar + 1);
    __threadfence();
    if (atomicAdd(bar, 1u) == gridDim.x - 1) {
      atomicExch(bar, 0u);
      __threadfence();
      atomicAdd(bar + 1, 1u);
    } else {
      const unsigned long long start = mix_clock_ns();
      while (mix_load_acquire(bar + 1) == gen && !mix_load_acquire(bar + 2)) {
        if (mix_clock_ns() - start > MIX_BARRIER_NS) atomicExch(bar + 2, 1u);
        mix_spin_pause();
      }
    }
    __threadfence();
  }
  __syncthreads();
}
#else
#ifndef MIX_EMULATION
// One arrival: the add is a release (this block's writes, ordered before it by the __syncthreads, are visible to whoever
// acquires the value it makes) and returns the count before it.
__device__ __forceinline__ unsigned long long mix_arrive_release(unsigned long long* p) {
  unsigned long long old;
  asm volatile("atom.add.release.gpu.global.u64 %0, [%1], 1;" : "=l"(old) : "l"(p) : "memory");
  return old;
}

__device__ __forceinline__ unsigned long long mix_load_acquire64(const unsigned long long* p) {
  unsigned long long v;
  asm volatile("ld.acquire.gpu.global.u64 %0, [%1];" : "=l"(v) : "l"(p) : "memory");
  return v;
}
#endif

// The same barrier with one atomic on its path (FusedMambaStack.PersistentFastBarrier): a 64-bit count of arrivals that
// only grows (bar[4..5]; 95 barriers x 264 blocks a token wrap it after ~10^15 tokens), so barrier n of the launch is
// complete when it reaches the next multiple of the grid above the count this block's arrival returned. No reset, no
// generation word, no fences besides the arrival's release and the poll's acquire: after the last arrival, one L2 round
// trip of a poll releases a waiter, where the other barrier chains the last block's add, exchange, fence and generation
// add before the waiters' poll can see it. The last block to arrive knows it from the returned count and does not poll.
// bar[2] as above (checked every 16th poll: the flag is a second L2 round trip). The count starts at a multiple of the
// grid (zero) and every completed launch leaves it at one; a segment's grid never changes size.
__device__ __forceinline__ void mix_grid_sync(unsigned* bar) {
  __syncthreads();
  if (threadIdx.x == 0) {
    unsigned long long* count = reinterpret_cast<unsigned long long*>(bar + 4);
    const unsigned long long grid = gridDim.x, old = mix_arrive_release(count), target = (old / grid + 1) * grid;
    if (old + 1 != target) {
      const unsigned long long start = mix_clock_ns();
      for (unsigned polls = 1; mix_load_acquire64(count) < target; polls++) {
        if ((polls & 15u) == 0) {
          if (mix_load_acquire(bar + 2)) break;
          if (mix_clock_ns() - start > MIX_BARRIER_NS) { atomicExch(bar + 2, 1u); break; }
        }
        mix_spin_pause();
      }
    }
  }
  __syncthreads();
}
#endif

// Nothing but n grid barriers: what one costs on a grid of this size with no phase work around it (the mamba-kernels
// bench's "grid barrier" rows, both forms); bar as the persistent kernel's.
extern "C" __global__ void __launch_bounds__(256) mamba_stack_barriers(unsigned* bar, int n) {
  for (int i = 0; i < n; i++) mix_grid_sync(bar);
}

// Asks L2 for every weight row slice this block's warps read in the next mix_rows over w [rows, K] (io_t, same row and
// slice arithmetic), issued before a barrier so that the fetch overlaps the wait. A hint only.
__device__ __forceinline__ void mix_prefetch_rows(const void* __restrict__ w, int K, int rows, int split) {
#ifdef __CUDA_ARCH__
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, per = (blockDim.x >> 5) / split;
  const int slice = (K + split - 1) / split, k0 = min(K, (warp % split) * slice), k1 = min(K, k0 + slice);
  const char* base = reinterpret_cast<const char*>(w);
  for (int r = blockIdx.x * per + warp / split; r < rows; r += gridDim.x * per) {
    const size_t from = ((size_t)r * K + k0) * sizeof(io_t), to = ((size_t)r * K + k1) * sizeof(io_t);
    for (size_t at = (from & ~(size_t)127) + (size_t)lane * 128; at < to; at += 32 * 128)
      asm volatile("prefetch.global.L2 [%0];" :: "l"(base + at));
  }
#endif
}

#ifdef MIX_FOLD_XPROJ
// MIX_FOLD_SLOTS: most in_proj rows of the x half one block holds in a layer (passes x rows per pass) when x_proj is
// folded into the in_proj phase (FusedMambaStack.PersistentFoldXProj; the host declines the fold for a layer that needs
// more). Given by the host (MambaStackKernelSources.FoldSlots), which sizes the shared memory from the same number.
#ifndef MIX_FOLD_SLOTS
#error "MIX_FOLD_XPROJ needs MIX_FOLD_SLOTS (MambaStackKernelSources.FoldOptions)"
#endif

// u = silu(conv step) of channel c of row b with the new input xnew already in hand (the in_proj phase's own output),
// the same taps in the same order as mix_conv_step.
__device__ __forceinline__ float mix_conv_new(float xnew, const float* __restrict__ conv_state, const io_t* __restrict__ conv_w,
                                              const io_t* __restrict__ conv_b, int b, int c, int inner, int W) {
  const float* st = conv_state + ((size_t)b * inner + c) * (W - 1);
  const io_t* cw = conv_w + (size_t)c * W;
  const float acc = conv_b ? to_f(conv_b[c]) : 0.0f;
  return silu_f(W == 4 ? mix_conv_taps<4>(st, cw, acc, xnew, W) : mix_conv_taps<0>(st, cw, acc, xnew, W));
}
#endif

// The decoding step of layers[0..L) for rows [0, B) (B <= MIX_MAXB) of width dim: x -> ... -> out. Work buffers: xz
// [B, 2 max inner], dbc [B, max (rank + 2 nstate)], y [B, max inner] (float32), ping / pong [B, dim] (io_t). The buffers
// one phase writes and a later one reads are not __restrict__: their loads must not take the read-only (non-coherent)
// path, which would not see another block's writes made during this launch.
#ifndef MIX_FOLD_XPROJ
#define MIX_STACK_BOUNDS __launch_bounds__(256)
#else
// two blocks per SM, stated: without it NVRTC 11.8 aims the 16-bit builds at 80 registers and spills 20 bytes
#define MIX_STACK_BOUNDS __launch_bounds__(256, 2)
#endif
extern "C" __global__ void MIX_STACK_BOUNDS mamba_stack_persistent(
    const MixMambaLayer* __restrict__ layers, int L, int parity, const io_t* __restrict__ x, io_t* out,
    io_t* ping, io_t* pong, float* xz, float* dbc, float* yv, unsigned* bar, int B, int dim, float* xpart) {
  extern __shared__ float psmem[];
  float (*part)[MIX_MAXB] = reinterpret_cast<float (*)[MIX_MAXB]>(psmem);
  float* inv_rms = psmem + 8 * MIX_MAXB;
#ifndef MIX_FOLD_XPROJ
  float* act = psmem + 9 * MIX_MAXB;
#else
  // the x rows this block's in_proj produced, then their u ([slot][MIX_MAXB]); 256 float4 of partial sums for the scan
  // phase's reduction; the staged rows, which in the scan phase hold the reduced dbc
  float* fold_u = psmem + 9 * MIX_MAXB;
  float4* fold_red = reinterpret_cast<float4*>(fold_u + MIX_FOLD_SLOTS * MIX_MAXB);
  float* act = fold_u + MIX_FOLD_SLOTS * MIX_MAXB + 4 * 256;
#endif
  const int warps = blockDim.x >> 5;
  for (int l = 0; l < L; l++) {
    const MixMambaLayer& p = layers[l];
    const io_t* src = l == 0 ? x : (l % 2 == 1 ? ping : pong);
    io_t* dst = l == L - 1 ? out : (l % 2 == 0 ? ping : pong);
    const int inner = p.inner, W = p.width, R = p.rank, N = p.nstate, G = p.lanes, P = R + 2 * N;
    const float* cs = p.conv_state[parity];
    float* cs_next = p.conv_state[parity ^ 1];
    const float* ss = p.ssm_state[parity];
    float* ss_next = p.ssm_state[parity ^ 1];

    // (1) xz = in_proj(rmsnorm(src)); a block without rows in a phase skips its staging (a block-uniform test)
    if (l == 0) mix_prefetch_rows(p.w_in, dim, 2 * inner, p.split_in);
#ifndef MIX_FOLD_XPROJ
    if ((int)blockIdx.x * (warps / p.split_in) < 2 * inner) {
      mix_stage_norm(src, p.norm_w, p.eps, act, inv_rms, part, B, dim);
      mix_rows(p.w_in, (const float*)0, 0, (const unsigned char*)0, 0, p.bias_in, act, dim, 2 * inner, B, p.vec_in,
               p.split_in, part, [&](int b, int r, float v) { xz[(size_t)b * 2 * inner + r] = v; });
    }
#else
    // ... and x_proj folded in: the block keeps the x rows (channels) its warps produced, computes their u = silu(conv
    // step) and its share of every x_proj output, sum over its channels of w_x[j, c] u[c], into its own slice of xpart
    // ([block][B * P], rounded up to whole float4). The scan phase sums the blocks' slices in block order, so the
    // separate x_proj phase and its barrier are gone, at the cost of that sum. Rows of pass k of mix_rows are
    // blockIdx * per + k * gridDim * per + (warp / split): slot k * per + warp / split.
    const int per_in = warps / p.split_in, stride_in = gridDim.x * per_in, base_in = blockIdx.x * per_in;
    const int slots = per_in * ((inner + stride_in - 1) / stride_in), cols4 = (B * P + 3) / 4 * 4;
    mix_prefetch_rows(p.w_x, inner, P, 1);
    if (base_in < 2 * inner) {
      mix_stage_norm(src, p.norm_w, p.eps, act, inv_rms, part, B, dim);
      mix_rows(p.w_in, (const float*)0, 0, (const unsigned char*)0, 0, p.bias_in, act, dim, 2 * inner, B, p.vec_in,
               p.split_in, part, [&](int b, int r, float v) {
                 xz[(size_t)b * 2 * inner + r] = v;
                 if (r < inner) {
                   const int k = (r - base_in) / stride_in;
                   fold_u[(k * per_in + (r - base_in - k * stride_in)) * MIX_MAXB + b] = v;
                 }
               });
    }
    if (base_in < inner) {
      __syncthreads();
      for (int i = threadIdx.x; i < slots * B; i += blockDim.x) {
        const int s = i / B, b = i % B, r = base_in + (s / per_in) * stride_in + s % per_in;
        if (r < inner) fold_u[s * MIX_MAXB + b] = mix_conv_new(fold_u[s * MIX_MAXB + b], cs, p.conv_w, p.conv_b, b, r, inner, W);
      }
      __syncthreads();
      const io_t* wx = reinterpret_cast<const io_t*>(p.w_x);
      for (int i = threadIdx.x; i < cols4; i += blockDim.x) {
        const int b = i / P, j = i % P;
        float acc = 0.0f;
        if (b < B) {
          // eight slots' weights a pass from clamped slots, so their loads are in flight together
          for (int s0 = 0; s0 < slots; s0 += 8) {
            float wv[8];
#pragma unroll
            for (int u = 0; u < 8; u++) {
              const int s = min(s0 + u, slots - 1), r = min(base_in + (s / per_in) * stride_in + s % per_in, inner - 1);
              wv[u] = to_f(wx[(size_t)j * inner + r]);
            }
#pragma unroll
            for (int u = 0; u < 8; u++) {
              const int s = s0 + u;
              if (s < slots && base_in + (s / per_in) * stride_in + s % per_in < inner) acc += wv[u] * fold_u[s * MIX_MAXB + b];
            }
          }
        }
        xpart[(size_t)blockIdx.x * cols4 + i] = acc;
      }
    }
#endif
#ifndef MIX_FOLD_XPROJ
    // the next weights into L2 while the grid waits: x_proj's for the next phase, out_proj's two phases ahead
    mix_prefetch_rows(p.w_x, inner, P, p.split_x);
    mix_prefetch_rows(p.w_out, inner, dim, p.split_out);
    mix_grid_sync(bar);

    // (2) dbc = x_proj(silu(conv_step(xz))): only the blocks that hold x_proj rows stage the conv step
    if ((int)blockIdx.x * (warps / p.split_x) < P) {
      mix_stage<8>(act, B * inner, [&](int i) { return mix_conv_step(xz, cs, p.conv_w, p.conv_b, i / inner, i % inner, inner, W); });
      __syncthreads();
      mix_rows(p.w_x, (const float*)0, 0, (const unsigned char*)0, 0, (const io_t*)0, act, inner, P, B, p.vec_x,
               p.split_x, part, [&](int b, int r, float v) { dbc[(size_t)b * P + r] = v; });
    }
    // the next layer's in_proj (the largest weight) gets the scan phase and two barriers to arrive
    if (l + 1 < L) {
      const MixMambaLayer& q = layers[l + 1];
      mix_prefetch_rows(q.w_in, dim, 2 * q.inner, q.split_in);
    }
    mix_grid_sync(bar);
    const float* dbc_in = dbc;
#else
    // out_proj's weights for the phase after the scan, the next layer's in_proj for the one after that
    mix_prefetch_rows(p.w_out, inner, dim, p.split_out);
    if (l + 1 < L) {
      const MixMambaLayer& q = layers[l + 1];
      mix_prefetch_rows(q.w_in, dim, 2 * q.inner, q.split_in);
    }
    mix_grid_sync(bar);
    // dbc = the sum of the in_proj blocks' slices, in block order, into act (only blocks with scan lanes): thread t
    // sums the float4 column t % n4 over blocks t / n4, t / n4 + groups, ... (eight loads in flight a pass), then one
    // thread per column adds the groups' sums in group order
    const float* dbc_in = act;
    if ((int)blockIdx.x * (int)blockDim.x < B * inner * G) {
      const int contributors = min((int)gridDim.x, (inner + per_in - 1) / per_in), n4 = cols4 / 4;
      const int groups = n4 < (int)blockDim.x ? (int)blockDim.x / n4 : 1;
      const float4* xp = reinterpret_cast<const float4*>(xpart);
      for (int c0 = 0; c0 < n4; c0 += groups > 1 ? n4 : (int)blockDim.x) {
        const int t = threadIdx.x, c = c0 + (groups > 1 ? t % n4 : t), g = groups > 1 ? t / n4 : 0;
        float4 sum = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        if (c < n4 && g < groups) {
          for (int k0 = g; k0 < contributors; k0 += 8 * groups) {
            float4 v[8];
#pragma unroll
            for (int u = 0; u < 8; u++) v[u] = xp[(size_t)min(k0 + u * groups, contributors - 1) * n4 + c];
#pragma unroll
            for (int u = 0; u < 8; u++)
              if (k0 + u * groups < contributors) { sum.x += v[u].x; sum.y += v[u].y; sum.z += v[u].z; sum.w += v[u].w; }
          }
        }
        fold_red[t] = sum;
        __syncthreads();
        if (t < (groups > 1 ? n4 : (int)blockDim.x) && c0 + t < n4) {
          float4 total4 = fold_red[t];
          for (int q = 1; q < groups; q++) {
            const float4 o = fold_red[q * n4 + t];
            total4.x += o.x; total4.y += o.y; total4.z += o.z; total4.w += o.w;
          }
          reinterpret_cast<float4*>(act)[c0 + t] = total4;
        }
        __syncthreads();
      }
    }
#endif

    // (3) dt, the state update and the gate: one lane per state, the grid striding over (row, channel, state); the
    // loop's trip count is the same for every thread of a block (lanes past the end take the last channel again)
    const int per_row = inner * G, total = B * per_row;
    for (int t0 = blockIdx.x * blockDim.x; t0 < total; t0 += gridDim.x * blockDim.x) {
      const int t = t0 + threadIdx.x;
      int b = t / per_row, cc = (t % per_row) / G;
      if (b >= B) { b = B - 1; cc = inner; }
      mix_scan_lane(xz, cs, cs_next, p.conv_w, p.conv_b, dbc_in, p.dt_w, p.dt_b, p.a_log, p.d_skip, ss, ss_next, yv,
                    b, cc, t % G, inner, W, R, N, G);
    }
    mix_grid_sync(bar);

    // (4) dst = src + out_proj(y)
    if ((int)blockIdx.x * (warps / p.split_out) < dim) {
      mix_stage<8>(act, B * inner, [&](int i) { return yv[i]; });
      __syncthreads();
      mix_rows(p.w_out, (const float*)0, 0, (const unsigned char*)0, 0, p.bias_out, act, inner, dim, B, p.vec_out,
               p.split_out, part, [&](int b, int r, float v) {
                 const size_t o = (size_t)b * dim + r;
                 dst[o] = from_f(to_f(src[o]) + v);
               });
    }
    if (l + 1 < L) mix_grid_sync(bar);
  }
}
""";
    }
}
