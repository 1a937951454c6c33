#!/usr/bin/env bash
# Builds .cat3-src/ (git-ignored) for catalog3_models.py: only the files each official catalog-3 model needs, taken
# from the official repositories' mirrors (the search tool's `fetch` brings them to /work/.mirror/<owner>+<name>/repo).
# MambaOut is timm's own (timm is installed on the GPU host), so no timm files travel.
#   usage, from the project root:  bash tests/Mix.Benchmarks.Gpu/make_cat3_src.sh [MIRRORS]   (default /work/.mirror)
set -euo pipefail
m=${1:-/work/.mirror}
rm -rf .cat3-src
take() {  # take DEST OWNER+NAME FILE...
  local dest=.cat3-src/$1 repo=$m/$2/repo name=$2; shift 2
  mkdir -p "$dest"
  # a partial mirror lacks blobs of unrelated paths; git archive complains about them but writes the files named
  git --git-dir="$repo" archive HEAD "$@" 2>/dev/null | tar -x -C "$dest"
  for f in "$@"; do [ -f "$dest/$f" ] || { echo "missing: $name/$f" >&2; exit 1; }; done
  git --git-dir="$repo" rev-parse HEAD > "$dest/COMMIT"
}
take CAS-ViT Tianfang-Zhang+CAS-ViT classification/model/rcvit.py
take iFormer sail-sg+iFormer models/inception_transformer.py
take FFNet ysj9909+FFNet models/ffnet.py
take raft-mlp okojoalg+raft-mlp libs/__init__.py libs/consts.py libs/models.py libs/modules.py libs/regularizations.py
take MS-MLP JegZheng+MS-MLP models/ms_mlp.py
take WaveMix pranavphoenix+WaveMix wavemix/__init__.py wavemix/classification.py
du -sh .cat3-src >&2
