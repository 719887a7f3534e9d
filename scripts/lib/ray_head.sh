# Sourced by scripts/pipeline.sh and scripts/tune_cluster_smoke.sh: one throwaway local Ray head, started with
# `ray start --head --block` and stopped by its own PID (`ray stop` would kill every Ray process on the machine,
# including other people's clusters). Token auth is off for this local head only. Ray 2.60's `--block` drains
# the node for up to RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S (30 s) on SIGTERM, which our head did not finish
# in time: every run waited 30 s at its end and was then SIGKILLed (bash printed "Killed"). There is nothing
# to drain on a throwaway head, so the drain is off (0, Ray's documented value for an immediate teardown).
# start_ray_head RAY NUM_CPUS PORT LOG [extra `ray start` args...] sets RAY_HEAD_PID and RAY_HEAD_TMP;
# stop_ray_head stops it (safe to call twice, or when none was started).

RAY_HEAD_PID=""
RAY_HEAD_TMP=""

start_ray_head() {
  local ray="$1" cpus="$2" port="$3" log="$4"
  shift 4
  RAY_HEAD_TMP=$(mktemp -d /tmp/rt.XXXXXX)   # short: Ray's socket paths under it must stay below 107 bytes
  RAY_AUTH_MODE=disabled RAY_USAGE_STATS_ENABLED=0 RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S=0 \
    "$ray" start --head --block --num-cpus "$cpus" \
    --port "$port" --node-ip-address 127.0.0.1 --include-dashboard false --temp-dir "$RAY_HEAD_TMP" \
    --disable-usage-stats "$@" >"$log" 2>&1 &
  RAY_HEAD_PID=$!
  for _ in $(seq 1 90); do
    "$ray" status --address "127.0.0.1:$port" >/dev/null 2>&1 && return 0
    kill -0 "$RAY_HEAD_PID" 2>/dev/null || { cat "$log" >&2; return 1; }
    sleep 1
  done
  echo "the Ray head on 127.0.0.1:$port did not answer within 90 s; see $log" >&2
  return 1
}

stop_ray_head() {
  if [[ -n "$RAY_HEAD_PID" ]] && kill -0 "$RAY_HEAD_PID" 2>/dev/null; then
    kill -TERM "$RAY_HEAD_PID" 2>/dev/null || true   # `ray start --block` stops the node's processes on SIGTERM
    for _ in $(seq 1 30); do kill -0 "$RAY_HEAD_PID" 2>/dev/null || break; sleep 1; done
    kill -KILL "$RAY_HEAD_PID" 2>/dev/null || true
    wait "$RAY_HEAD_PID" 2>/dev/null || true   # reap it here, so bash prints no job status line
  fi
  [[ -n "$RAY_HEAD_TMP" ]] && rm -rf "$RAY_HEAD_TMP"
  RAY_HEAD_PID=""
  RAY_HEAD_TMP=""
  return 0
}

free_port() {
  "$1" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
