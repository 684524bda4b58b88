#!/usr/bin/env bash
# Build ecgfast with its CUDA kernels and check they are registered, on any
# machine with a CUDA toolkit (no GPU needed: compiled, linked, imported).
#
# A venv ($CUDA_VENV, default .venv-cuda) gets a CUDA torch; the tracked tree
# is copied to a temp folder (the CPU build's in-place .so and build/ are
# never touched), installed into the venv with nvcc, and
# tests/base/test_cuda_kernels_registered.py runs from outside the tree.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
CUDA_VENV=${CUDA_VENV:-.venv-cuda}
case "$CUDA_VENV" in /*) ;; *) CUDA_VENV="$REPO/$CUDA_VENV" ;; esac
CUDA_TORCH_VERSION=${CUDA_TORCH_VERSION:-2.14.1}
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-2}

if [ ! -x "$CUDA_HOME/bin/nvcc" ]; then
  echo "check-cuda-build: no nvcc at $CUDA_HOME/bin/nvcc (set CUDA_HOME); CUDA build not checked"
  exit 0
fi

py="$CUDA_VENV/bin/python"
has_torch() {
  "$py" -c "import sys, torch; sys.exit(not (torch.__version__.split('+')[0] == '$CUDA_TORCH_VERSION' and torch.version.cuda))" \
    2>/dev/null
}
if [ ! -x "$py" ] || ! has_torch; then
  echo "check-cuda-build: installing torch==$CUDA_TORCH_VERSION into $CUDA_VENV"
  [ -x "$py" ] || python3 -m venv "$CUDA_VENV"
  "$py" -m pip install -q --upgrade "setuptools>=64" wheel ninja
  "$py" -m pip install -q "torch==$CUDA_TORCH_VERSION" pytest numpy
  has_torch || { echo "check-cuda-build: $CUDA_VENV has no CUDA torch $CUDA_TORCH_VERSION"; exit 1; }
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/src" "$work/run"
# Tracked files plus new ones not ignored, as they are in the working tree.
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do if [ -f "$f" ]; then printf '%s\0' "$f"; fi; done |
  tar --null -T - -cf - | tar -xf - -C "$work/src"
echo "check-cuda-build: building with $("$CUDA_HOME/bin/nvcc" --version | tail -1), TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
(cd "$work/src" && "$py" -m pip install -q --no-build-isolation --no-deps .) ||
  { echo "check-cuda-build: build failed"; exit 1; }
cp tests/base/test_cuda_kernels_registered.py "$work/run/"
cd "$work/run"  # outside the tree: `import ecgfast` is the installed build
ECGFAST_EXPECT_CUDA_KERNELS=1 "$py" -m pytest -q -p no:cacheprovider test_cuda_kernels_registered.py
