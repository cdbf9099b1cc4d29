#!/usr/bin/env bash
# Chapters 00-02 in the gpu profile, then the speedrun's gpu track (the recipe 3 times to 94% beside the
# baseline, no leave-one-out), prepared to run in one call on a lent single-GPU machine (torch and
# Lightning preinstalled, no internet, no papermill):  bash ci/gpu_course.sh   (SPEEDRUN=0: chapters only)
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
if [[ "${1:-}" == "--dry-run" ]]; then
  "$PY" -m fasttrain.chapters.ch04_speedrun --help >/dev/null  # the command parses; nothing trains
elif [[ "${SPEEDRUN:-1}" != 0 ]]; then
  # Its time on an H100/H200 is not measured yet: the timeout keeps the device session's budget.
  timeout "${SPEEDRUN_TIMEOUT_S:-300}" "$PY" -m fasttrain.chapters.ch04_speedrun --profile gpu --runs 3 \
    --baseline-runs 1 --loo-runs 0 2>&1 | tee -a build_gpu_course.log || status=$?
  dest=$("$PY" -c "import torch; from fasttrain.paths import reference_dir; print(reference_dir(torch.cuda.get_device_name(0)))")
  if [[ -f build/speedrun/summary-gpu.json ]]; then mkdir -p "$dest" && cp build/speedrun/summary-gpu.json "$dest/"; fi
fi
if [[ -n "${OUT:-}" && "${1:-}" != "--dry-run" ]]; then
  tar czf "$OUT/course.tar.gz" results/reference
  cp build_gpu_course.log "$OUT/gpu_course.log"
fi
rm -f build_gpu_course.log
exit $status
