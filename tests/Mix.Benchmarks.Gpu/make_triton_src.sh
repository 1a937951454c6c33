#!/usr/bin/env bash
# Builds .triton-src/ (git-ignored, ~7.3 MiB) for triton_scans.py: mamba_ssm's pure-Python + Triton files and fla,
# from the official repositories' mirrors (the search tool's `fetch` brings them to /work/.mirror/<owner>+<name>/repo).
#   usage, from the project root:  bash tests/Mix.Benchmarks.Gpu/make_triton_src.sh [MIRRORS]   (default /work/.mirror)
set -euo pipefail
m=${1:-/work/.mirror}
rm -rf .triton-src && mkdir .triton-src
git --git-dir="$m/state-spaces+mamba/repo" archive HEAD mamba_ssm/modules/mamba2.py mamba_ssm/modules/ssd_minimal.py \
    mamba_ssm/ops/triton mamba_ssm/distributed mamba_ssm/utils/torch.py mamba_ssm/utils/determinism.py | tar -x -C .triton-src
# mamba3's kernels need a newer triton than the host's and nothing here imports them
rm -rf .triton-src/mamba_ssm/ops/triton/mamba3
git --git-dir="$m/fla-org+flash-linear-attention/repo" archive HEAD fla | tar -x -C .triton-src
echo ".triton-src: $(du -sh .triton-src | cut -f1)"
