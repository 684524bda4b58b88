#!/usr/bin/env bash
# The one prepared GPU check (`make gpu-check`), for a lent GPU machine: one GPU, no package
# registry, its own torch. In about 5 minutes it builds the extension there with nvcc against
# that torch, then runs, each step timed and none stopping the rest:
#   the `cuda` tests (op equality CUDA vs CPU, opcheck, autocast numerics, device choice),
#   2-epoch SimCLR and BYOL on a synthetic PTB-XL with --device cuda, --compile off and on,
#   a 1-process NCCL run under torchrun, and `python -m benchmarks --device cuda --quick`,
# and writes one summary ($GPU_CHECK_OUT/gpu-check-summary.md) beside the full log and the
# benchmark JSON. Packages the machine lacks (wfdb and its soundfile/cffi) travel as wheels in
# .whl/ (`make gpu-wheels` here, then the device call carries .whl):
#   device run: command "make gpu-check", carry [".whl"], timeout_s 420
set -uo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
OUTDIR=${GPU_CHECK_OUT:-${OUT:-$REPO/runs/gpu-check}}
mkdir -p "$OUTDIR"
LOG="$OUTDIR/gpu-check.log"
SUMMARY="$OUTDIR/gpu-check-summary.md"
WORK=$(mktemp -d)
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
: >"$LOG"

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/ecgfast-site \
    .whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH="/tmp/ecgfast-site${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"  # the in-place build, not an installed ecgfast
export CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
export MAX_JOBS=${MAX_JOBS:-$(nproc)}
export TORCHINDUCTOR_COMPILE_THREADS=${TORCHINDUCTOR_COMPILE_THREADS:-$(nproc)}

{
  echo "# ecgfast GPU check"
  echo
  echo "- date: $(date -u +%Y-%m-%dT%H:%MZ); commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  "$PY" - <<'PY' 2>&1
import torch
p = torch.cuda.get_device_properties(0) if torch.cuda.is_available() else None
print(f"- torch {torch.__version__} (CUDA {torch.version.cuda}), cuDNN {torch.backends.cudnn.version()}")
print(f"- GPU: {p.name}, {p.multi_processor_count} SMs, {p.total_memory / 2**30:.0f} GiB, "
      f"capability {p.major}.{p.minor}" if p else "- GPU: none visible")
PY
  echo
  echo "| step | status | seconds |"
  echo "|---|---|---|"
} >"$SUMMARY"

failed=0
step() {  # step NAME TIMEOUT_S COMMAND...: run, log, time, one summary row
  local name=$1 limit=$2
  shift 2
  echo "===== $name: $*" >>"$LOG"
  local t0=$SECONDS rc
  timeout "$limit" "$@" >>"$LOG" 2>&1
  rc=$?
  local status=ok
  if [ $rc -ne 0 ]; then
    status="FAILED (exit $rc$([ $rc -eq 124 ] && echo ', timed out'))"
    failed=$((failed + 1))
  fi
  echo "| $name | $status | $((SECONDS - t0)) |" >>"$SUMMARY"
  echo "$name: $status ($((SECONDS - t0)) s)"
  return $rc
}

step "build (nvcc, sm_${TORCH_CUDA_ARCH_LIST/./})" 240 "$PY" setup.py build_ext --inplace ||
  { echo "build failed: see $LOG"; tail -40 "$LOG"; exit 1; }
step "CUDA kernels registered" 60 env ECGFAST_EXPECT_CUDA_KERNELS=1 "$PY" -m pytest -q -p no:cacheprovider \
  tests/base/test_cuda_kernels_registered.py
step "cuda tests (ops, autocast numerics, devices)" 180 "$PY" -m pytest -q -p no:cacheprovider -m cuda tests

DATA="$WORK/PTB-XL"
step "synthetic PTB-XL (300 records) + cache" 60 sh -c \
  "'$PY' -m ecgfast synth --out '$DATA' --records 300 --sampling-rates 100 --workers 8 &&
   '$PY' -m ecgfast cache --data-root '$DATA' --sampling-rate 100 --workers 8"
TRAIN=(--data-root "$DATA" --epochs 2 --batch-size 64 --device cuda --no-progress)
for method in simclr byol; do
  for compile in off on; do
    step "pretrain-$method --device cuda --compile $compile (2 epochs)" 120 \
      "$PY" -m ecgfast "pretrain-$method" "${TRAIN[@]}" --compile "$compile" --out "$WORK/$method-$compile.pt"
  done
done
step "finetune --device cuda (2 epochs)" 90 "$PY" -m ecgfast finetune --data-root "$DATA" --epochs 2 --device cuda \
  --ssl-checkpoint "$WORK/simclr-off.pt" --label-fraction 0.5 --no-progress --out "$WORK/finetune.pt"
step "torchrun, 1 process, NCCL (1 epoch)" 120 "$PY" -m torch.distributed.run --standalone --nproc_per_node 1 \
  -m ecgfast.train_ssl_simclr --data-root "$DATA" --epochs 1 --batch-size 64 --device cuda --compile off \
  --no-progress --out "$WORK/ddp.pt"
step "python -m benchmarks --device cuda --quick" 180 "$PY" -m benchmarks --device cuda --quick \
  --json "$OUTDIR/bench-cuda.json"

{
  echo
  echo "$failed step(s) failed. Benchmark table (from the log):"
  echo
  echo '```'
  awk '/===== python -m benchmarks/{on=1; next} /^=====/{on=0} on' "$LOG" | tail -60
  echo '```'
} >>"$SUMMARY"
rm -rf "$WORK"
cat "$SUMMARY"
exit $((failed > 0))
