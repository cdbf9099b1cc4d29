#!/usr/bin/env bash
# The GPU check, prepared to run in one call on a lent single-GPU machine (torch and Lightning
# preinstalled, no internet, no papermill):  bash ci/gpu_check.sh
# Records land in results/reference/<gpu>/ and, where $OUT is set (the device tool), in one archive
# under $OUT so they come back. `bash ci/gpu_check.sh --tiny` runs the same path on a CPU in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/lib${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [[ "${1:-}" != "--tiny" ]]; then
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
  "$PY" -c "import torch, lightning; print('torch', torch.__version__, 'lightning', lightning.__version__, 'cuda', torch.version.cuda)"
fi
status=0
"$PY" ci/gpu_check.py "$@" 2>&1 | tee build_gpu_check.log || status=$?
if [[ -n "${OUT:-}" ]]; then
  tar czf "$OUT/reference.tar.gz" results/reference
  cp build_gpu_check.log "$OUT/gpu_check.log"
fi
rm -f build_gpu_check.log
exit $status
