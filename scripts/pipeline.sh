#!/usr/bin/env bash
# Runs the DVC pipeline from the repository root with the project's environment. Extra arguments go to `dvc repro`.
# Unless a cluster is named (RAY_ADDRESS, or ray.address in params.yaml), one local Ray head is started for the
# whole run and every train/tune stage joins it (instead of each stage starting and stopping its own, ~25 s
# each); the head is stopped by its PID when the run ends, also when a stage fails. `dvc repro` run directly
# still starts a local Ray per stage. LGVQ_SHARED_RAY=0 turns the shared head off.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH"
if ! git rev-parse --git-dir >/dev/null 2>&1; then
  echo "pipeline: this folder is not a git checkout; DVC needs one (git init && git add -A && git commit)" >&2
  exit 2
fi
start=$(date +%s)

head_pid=""
ray_tmp=""
cleanup() {
  if [[ -n "$head_pid" ]] && kill -0 "$head_pid" 2>/dev/null; then
    kill -TERM "$head_pid" 2>/dev/null || true   # `ray start --block` stops the node's processes on SIGTERM
    for _ in $(seq 1 30); do kill -0 "$head_pid" 2>/dev/null || break; sleep 1; done
    kill -KILL "$head_pid" 2>/dev/null || true
  fi
  [[ -n "$ray_tmp" ]] && rm -rf "$ray_tmp"
  return 0
}
trap cleanup EXIT INT TERM

configured=$(python -c 'import yaml; p = yaml.safe_load(open("params.yaml")); r = p.get("ray") or {}
print(r.get("address") or "-", r.get("num_cpus", 2), r.get("object_store_memory_mb", 512))')
read -r params_address num_cpus store_mb <<<"$configured"
if [[ "${LGVQ_SHARED_RAY:-1}" != 0 && -z "${RAY_ADDRESS:-}" && "$params_address" == "-" ]]; then
  port=$(python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  ray_tmp=$(mktemp -d /tmp/lgvq-ray.XXXXXX)   # short: Ray's socket paths under it must stay below 107 bytes
  mkdir -p reports/logs
  RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 ray start --head --block --num-cpus "$num_cpus" \
    --port "$port" --node-ip-address 127.0.0.1 --include-dashboard false --temp-dir "$ray_tmp" \
    --object-store-memory $((store_mb * 1024 * 1024)) --disable-usage-stats >reports/logs/ray-head.log 2>&1 &
  head_pid=$!
  for _ in $(seq 1 90); do
    ray status --address "127.0.0.1:$port" >/dev/null 2>&1 && break
    kill -0 "$head_pid" 2>/dev/null || { echo "pipeline: the Ray head did not start; see reports/logs/ray-head.log" >&2; exit 1; }
    sleep 1
  done
  export RAY_ADDRESS="127.0.0.1:$port" RAY_AUTH_MODE=disabled
  echo "pipeline: one local Ray head for every stage at $RAY_ADDRESS (log: reports/logs/ray-head.log)"
fi

dvc repro "$@"
echo "pipeline: done in $(( $(date +%s) - start )) s; results in reports/ (dvc metrics show, dvc plots show)"
