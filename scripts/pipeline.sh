#!/usr/bin/env bash
# Runs the DVC pipeline from the repository root with the project's environment. Extra arguments go to `dvc repro`.
# Unless a cluster is named (RAY_ADDRESS, or ray.address in params.yaml), one local Ray head is started for the
# whole run and every train/tune stage joins it (instead of each stage starting and stopping its own); the head
# is stopped by its PID when the run ends, also when a stage fails. `dvc repro` run directly still starts a
# local Ray per stage. LGVQ_SHARED_RAY=0 turns the shared head off.
# Output: a start and an end line per stage, a progress bar while a stage trains, evaluates or tunes, and a
# summary (pipelines.console); everything dvc and the stages print goes to reports/logs/ (dvc.log, <stage>.log).
# LGVQ_VERBOSE=1 (make pipeline V=1) streams all of it to the terminal instead, as `dvc repro` does.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "pipeline: this folder is not a git checkout; DVC needs one (git init && git add -A && git commit)" >&2
  exit 2
fi
start=$(date +%s)
verbose=${LGVQ_VERBOSE:-0}
[[ "$verbose" == 1 || "$verbose" == true || "$verbose" == yes ]] && verbose=1 || verbose=0
mkdir -p reports/logs

source scripts/lib/ray_head.sh
trap stop_ray_head EXIT INT TERM

configured=$(python -c 'import yaml; p = yaml.safe_load(open("params.yaml")); r = p.get("ray") or {}
print(r.get("address") or "-", r.get("num_cpus", 2), r.get("object_store_memory_mb", 512))')
read -r params_address num_cpus store_mb <<<"$configured"
if [[ "${LGVQ_SHARED_RAY:-1}" != 0 && -z "${RAY_ADDRESS:-}" && "$params_address" == "-" ]]; then
  port=$(free_port python)
  start_ray_head ray "$num_cpus" "$port" reports/logs/ray-head.log \
    --object-store-memory $((store_mb * 1024 * 1024)) ||
    { echo "pipeline: the Ray head did not start; see reports/logs/ray-head.log" >&2; exit 1; }
  export RAY_ADDRESS="127.0.0.1:$port" RAY_AUTH_MODE=disabled
  echo "pipeline: one local Ray head for every stage at $RAY_ADDRESS (log: reports/logs/ray-head.log)"
fi

if [[ "$verbose" == 1 ]]; then
  dvc repro "$@"
  echo "pipeline: done in $(( $(date +%s) - start )) s; results in reports/ (dvc metrics show, dvc plots show)"
else
  python -m pipelines.console --logs reports/logs -- dvc repro "$@"
fi
