#!/usr/bin/env bash
# Chapters 00-02 in the gpu profile, prepared to run in one call on a lent single-GPU machine (torch and
# Lightning preinstalled, no internet, no papermill):  bash ci/gpu_course.sh
# What they measured lands in results/reference/<gpu>/course/ and, where $OUT is set (the device tool),
# in one archive under $OUT so it comes back. `bash ci/gpu_course.sh --dry-run` checks the plan anywhere.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 MPLBACKEND=Agg
PY=${PYTHON:-python3}
if [[ "${1:-}" != "--dry-run" ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
  "$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.version.cuda)"
fi
status=0
"$PY" ci/gpu_course.py "$@" 2>&1 | tee build_gpu_course.log || status=$?
if [[ -n "${OUT:-}" && "${1:-}" != "--dry-run" ]]; then
  tar czf "$OUT/course.tar.gz" results/reference
  cp build_gpu_course.log "$OUT/gpu_course.log"
fi
rm -f build_gpu_course.log
exit $status
