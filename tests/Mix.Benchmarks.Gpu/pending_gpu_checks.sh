#!/usr/bin/env bash
# The GPU checks and timings that landed without a device (kept current by each session; see docs/benchmarks.md,
# "Pending on the GPU"). Two device calls of at most ~400 s each on a fresh host (kernel compiles included), back to back
# so that the second finds the machine warm: `verify` (tests, then our new kernels' timings) and `compare` (the
# official / timm baselines in the same lease):
#   here:   bash ../shared/gpu/bundle.sh tests/Mix.Runtime.Tests/Mix.Runtime.Tests.csproj tests/Mix.Benchmarks.Gpu/Mix.Benchmarks.Gpu.csproj
#           bash tests/Mix.Benchmarks.Gpu/make_triton_src.sh
#   device: bash tests/Mix.Benchmarks.Gpu/pending_gpu_checks.sh verify    (carry .gpu and .triton-src; results under $OUT)
#           bash tests/Mix.Benchmarks.Gpu/pending_gpu_checks.sh compare
#   (and `gpu-tests-rest` / `gpu-tests-zoo`: every GPU test with per-test times, a call each; `one`: the most important of both in one
#   ~9-minute call, when the session's device time allows only one; `graphs`: session 19's CUDA graphs alone, ~6 minutes)
# Each step has its own time limit, the most important first, so that a cut call still answers the first questions.
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/pending-out}; mkdir -p "$OUT"
step() {  # step LIMIT NAME COMMAND...
  local limit=$1 name=$2; shift 2
  local t0=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.txt" 2>&1
  echo "== $name rc=$? $(( $(date +%s) - t0 ))s"
}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
part=${1:-verify}
if [ "$part" = verify ]; then
# 1. correctness of what landed unverified (session 17): the GLA second form, VidKV's staged kernel, the region launch
#    switches, the persistent kernel's opt-in barrier / x_proj fold and the Mamba step tests with the persistent kernel
#    as batch 1's default
step 150 tests bash .gpu/run.sh Mix.Runtime.Tests -class Mix.Runtime.Tests.FusedMambaStepGpuTests \
  -class Mix.Runtime.Tests.Scans.GlaSecondFormGpuTests -class Mix.Runtime.Tests.Scans.GlaTensorCoreGpuTests \
  -class Mix.Runtime.Tests.QuantizedKvAttentionGpuTests -class Mix.Runtime.Tests.QuantizedKvSlotStepCostGpuTests \
  -class Mix.Runtime.Tests.RegionLaunchSwitchGpuTests \
  -xml "$OUT/tests.xml"
grep -E "\[FAIL\]|Total:" "$OUT/tests.txt" | head -20
# 2. their timings against the defaults (rows name the form / generation that ran)
step 90 kv bash .gpu/run.sh Mix.Benchmarks.Gpu --quant --quick --only kv --out "$OUT"
grep -E "kernel .*kva|SDPA:" "$OUT/kv.txt" | head -60
step 90 mamba bash .gpu/run.sh Mix.Benchmarks.Gpu --only mamba-decode --quick --out "$OUT"
grep -E "tok/s" "$OUT/mamba.txt" | head -60
step 60 mamba-kernels bash .gpu/run.sh Mix.Benchmarks.Gpu --only mamba-kernels --quick --out "$OUT"
grep -iE "persistent|barrier" "$OUT/mamba-kernels.txt" | head -20
fi
if [ "$part" = compare ]; then
# 3. our scans (both GLA forms) and the official side of the GLA comparison in the same call (fla's chunk_gla; Triton
#    autotunes on first use)
step 70 scans bash .gpu/run.sh Mix.Benchmarks.Gpu --only scans-vs-triton --quick --out "$OUT"
grep -E "^(gla_scan|gla_lm)" "$OUT/scans.txt" | grep -v reference
step 100 triton python3 tests/Mix.Benchmarks.Gpu/triton_scans.py --mamba .triton-src --fla .triton-src --only scans --ops gla --quick --budget 90 --out "$OUT"
grep -E "^(gla|torch)" "$OUT/triton.txt"
# 4. ours against timm's models under torch.compile in one call: the rows that decide issue 14's targets first
step 70 fusion bash .gpu/run.sh Mix.Benchmarks.Gpu --only fusion --dtype bfloat16 --quick --out "$OUT"
grep -E "^\| (PoolFormer|ConvFormer|CAFormer|gated)" "$OUT/fusion.txt" | grep -E "fused: planner|reference" | cut -d'|' -f2-8
step 150 timm python3 tests/Mix.Benchmarks.Gpu/pytorch_models.py --only fusion --dtype bfloat16 --budget 140 \
  --fusion-rows ConvFormer:128,CAFormer:128,gated:1,PoolFormer:128 --out "$OUT"
grep -E "compile|skipped" "$OUT/timm.txt"
fi
# one call of ~9 minutes when the session's device time allows no second one: the tests, then the decode and KV timings
# that decide the opt-in defaults, then both GLA forms against fla in the same call
# session 19 (no device): steps and forwards recorded as CUDA graphs. libtorch's stream is set through c10's exported
# functions (are they there under the names bound?), the GPU tests, then the decode rows (eager, fused, graph) of the
# Mamba-2 / GLA / hybrid LMs with our scans, the fusion rows with whole-forward graphs, the quantized LM rows with graphs
if [ "$part" = graphs ] || [ "$part" = one ]; then
lib=$(python3 -c "import torch,os;print(os.path.join(os.path.dirname(torch.__file__),'lib'))")
nm -D --defined-only "$lib/libc10_cuda.so" "$lib/libtorch_cuda.so" | grep -E "getStreamFromExternal|setCurrentCUDAStream|getCurrentCUDAStreamEa|aoti_torch_set_current_cuda_stream" | head
step 120 tests-graphs bash .gpu/run.sh Mix.Runtime.Tests -class Mix.Runtime.Tests.Caches.DecodeGraphGpuTests \
  -class Mix.Runtime.Tests.CudaGraphModuleGpuTests -xml "$OUT/tests-graphs.xml"
grep -E "\[FAIL\]|Total:|graph nodes|Assert|Exception" "$OUT/tests-graphs.txt" | head -30
step 70 scans bash .gpu/run.sh Mix.Benchmarks.Gpu --only scans-vs-triton --quick --out "$OUT"
grep -E "^(gla_scan|gla_lm|mamba2_lm|hybrid_lm)|decode graph" "$OUT/scans.txt"
# whole forwards as CUDA graphs (CudaGraphModule) next to the fused and reference rows (issue 14's launch-bound batch 1)
step 70 fusion bash .gpu/run.sh Mix.Benchmarks.Gpu --only fusion --dtype bfloat16 --quick --out "$OUT"
grep -E "^\| (PoolFormer|ConvFormer|CAFormer|gated)" "$OUT/fusion.txt" | grep -E "fused: planner|CUDA graph|reference" | cut -d'|' -f2-8
fi
if [ "$part" = graphs ]; then
# timm at batch 1 under torch.compile, default and reduce-overhead (PyTorch's own CUDA graphs): the baselines of the
# "one CUDA graph a forward" rows, same call
step 150 timm-graphs python3 tests/Mix.Benchmarks.Gpu/pytorch_models.py --only fusion --dtype bfloat16 --budget 140 --reduce-overhead \
  --fusion-rows ConvFormer:1,CAFormer:1,PoolFormer:1 --out "$OUT"
grep -E "compile|skipped" "$OUT/timm-graphs.txt"
step 120 lm-quant bash .gpu/run.sh Mix.Benchmarks.Gpu --only lm-quant --quick --out "$OUT"
grep -E "tok/s" "$OUT/lm-quant.txt" | head -40
fi
if [ "$part" = one ]; then
# the GPU tests of what became default in run 18a first, in two short steps (run 18a's single 130 s step over five
# classes did not finish on a fresh kernel cache)
step 80 tests-gla bash .gpu/run.sh Mix.Runtime.Tests -class Mix.Runtime.Tests.Scans.GlaSecondFormGpuTests \
  -class Mix.Runtime.Tests.RegionLaunchSwitchGpuTests -xml "$OUT/tests-gla.xml"
grep -E "\[FAIL\]|Total:" "$OUT/tests-gla.txt" | head -20
step 90 tests-mamba bash .gpu/run.sh Mix.Runtime.Tests -method "Mix.Runtime.Tests.FusedMambaStepGpuTests.Persistent*" \
  -xml "$OUT/tests-mamba.xml"
grep -E "\[FAIL\]|Total:" "$OUT/tests-mamba.txt" | head -20
step 80 mamba bash .gpu/run.sh Mix.Benchmarks.Gpu --only mamba-decode --quick --out "$OUT"
grep -E "tok/s" "$OUT/mamba.txt" | head -60
step 90 triton python3 tests/Mix.Benchmarks.Gpu/triton_scans.py --mamba .triton-src --fla .triton-src --only scans --ops gla --quick --budget 80 --out "$OUT"
grep -E "^(gla|torch)" "$OUT/triton.txt"
step 75 kv bash .gpu/run.sh Mix.Benchmarks.Gpu --quant --quick --only kv --out "$OUT"
grep -E "kernel .*kva|SDPA:" "$OUT/kv.txt" | head -60
# the memory-bound kernels against the copy bandwidth (issue 13's 80 % target: the H200's numbers are still owed)
step 40 kernels bash .gpu/run.sh Mix.Benchmarks.Gpu --only kernels --quick --out "$OUT"
grep -E "copy|%" "$OUT/kernels.txt" | head -40
fi
# every GPU test, with per-test times (the whole suite no longer fits one 250 s step on a fresh host: run 17a), in two
# calls: the zoo-wide region numerics (FusedRegionGpuTests: every registered model in both dtypes, most of the suite's
# kernel compiles) and every other GPU class
if [ "$part" = gpu-tests ] || [ "$part" = gpu-tests-rest ]; then
step 560 gpu-tests-rest bash .gpu/run.sh Mix.Runtime.Tests -trait Category=Gpu -class- Mix.Runtime.Tests.FusedRegionGpuTests -xml "$OUT/gpu-tests-rest.xml"
grep -E "\[FAIL\]|Total:" "$OUT/gpu-tests-rest.txt" | head -40
fi
if [ "$part" = gpu-tests-zoo ]; then
step 560 gpu-tests-zoo bash .gpu/run.sh Mix.Runtime.Tests -class Mix.Runtime.Tests.FusedRegionGpuTests -xml "$OUT/gpu-tests-zoo.xml"
grep -E "\[FAIL\]|Total:" "$OUT/gpu-tests-zoo.txt" | head -40
fi
