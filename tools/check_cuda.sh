#!/usr/bin/env bash
# Compile-check every plain-CUDA kernel in csrc/ with nvcc. On a machine whose
# torch has no CUDA nothing built from these can run, but they must compile.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v nvcc >/dev/null; then
  echo "check_cuda: nvcc not found, CUDA kernels not compile-checked"
  exit 0
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
n=0
while IFS= read -r cu; do
  nvcc -std=c++17 -O3 -Icsrc -c "$cu" -o "$out/$(basename "$cu").o"
  n=$((n + 1))
done < <(find csrc -name '*.cu' | sort)
echo "check_cuda: $n CUDA source(s) compiled with $(nvcc --version | tail -1)"
