#!/usr/bin/env bash
# Exercise the tune stage against a real Ray cluster: `ray start --head` (2 CPUs, free ports, its own temp dir),
# a tiny search with `python -m pipelines.tune --address 127.0.0.1:PORT`, a check that best_loss_weights.yaml is
# readable by the train stage, and the head stopped again on exit.
# The head runs with `--block` and is stopped by its own PID: `ray stop` would kill every Ray process on the
# machine, including other people's clusters. Token auth is off for this throwaway local cluster only.
# Usage: scripts/tune_cluster_smoke.sh  (work folder: $TUNE_SMOKE_DIR, default a new temp dir; kept on failure)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="$PWD/.venv/bin/python"
RAY="$PWD/.venv/bin/ray"
WORK="${TUNE_SMOKE_DIR:-$(mktemp -d /tmp/tune-smoke.XXXXXX)}"
mkdir -p "$WORK"
export RAY_USAGE_STATS_ENABLED=0 RAY_AUTH_MODE=disabled HF_HUB_OFFLINE=1 HF_HUB_DISABLE_PROGRESS_BARS=1
export TOKENIZERS_PARALLELISM=false
unset RAY_ADDRESS

source scripts/lib/ray_head.sh
PORT=$(free_port "$PY")
trap stop_ray_head EXIT INT TERM

# Tiny params: 16-px shards, a small model without the perceptual net, 2 trials of 4 steps; storage in $WORK.
"$PY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import yaml

work = Path(sys.argv[1])
p = yaml.safe_load(Path("params.yaml").read_text())
p["data"].update(num_images=120, image_size=16, rows_per_shard=64, val_fraction=0.2, test_fraction=0.1)
p["model"] = {"common": {
    "encoder": {"resolution": 16, "ch": 16, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [],
                "z_channels": 16, "norm_groups": 8},
    "quantizer": {"codebook_size": 32, "embed_dim": 16, "legacy": True},
    "loss": {"disc_start": 1000, "disc_channels": 8, "disc_layers": 1, "perceptual_weight": 0.0,
             "perceptual_net": "none"}}, "per_base": {}}
p["ray"].update(address=None, storage_path=str(work / "ray_results"))
p["tune"] = {
    "base": "vqgan", "searcher": "random", "num_samples": 2, "max_concurrent_trials": 2, "cpus_per_trial": 1,
    "workers_per_trial": 1, "eval_every": 2, "val_batches": 1, "batch_size": 8, "seed": 0,
    "space": {"alpha": {"low": 1e-4, "high": 1e-2}, "beta": {"low": 1e-3, "high": 1e-1},
              "gamma": {"low": 1e-5, "high": 1e-3}},
    "points_to_evaluate": [{"alpha": 0.001, "beta": 0.01, "gamma": 0.0001}],
    "scheduler": {"grace_period": 2, "reduction_factor": 2, "max_steps": 4},
    "objective": {"terms": {"val_recon": 1.0, "recall_mask1": -0.1}, "mode": "min"},
}
(work / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
EOF
"$PY" -m pipelines.data --params "$WORK/params.yaml" --out "$WORK/shards" --log-level WARNING

echo "tune-smoke: starting a Ray head on 127.0.0.1:$PORT"
start_ray_head "$RAY" 2 "$PORT" "$WORK/head.log"

start=$(date +%s)
"$PY" -m pipelines.tune --params "$WORK/params.yaml" --shards "$WORK/shards" --out "$WORK/tune" \
  --address "127.0.0.1:$PORT"
"$PY" -c 'import sys; from pathlib import Path; from pipelines.train import read_weights
w = read_weights(Path(sys.argv[1])); assert set(w) == {"alpha", "beta", "gamma"}, w; print("tune-smoke: weights", w)' \
  "$WORK/tune/best_loss_weights.yaml"
test -s "$WORK/tune/results.csv"
echo "tune-smoke: OK in $(( $(date +%s) - start )) s; outputs in $WORK/tune"
