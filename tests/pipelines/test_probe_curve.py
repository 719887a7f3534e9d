"""``python -m pipelines.probe_curve``: fresh LG heads on a frozen tokenizer, scored every ``--every`` steps
with real and shuffled images; the tokenizer itself is never changed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml
from downstream_helpers import CONTEXT, save_runs
from pipeline_helpers import tiny_shards

from pipelines import probe_curve
from pipelines.evaluate import EvalBatches

GUIDANCE = {"mode": "fixed", "text_encoder": "minilm", "config": {"context_length": CONTEXT}}
SPLITS = {"val_from_train": 0.1, "seed": 0}


def test_curve_scores_every_interval_and_leaves_the_tokenizer_alone(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    torch.set_num_threads(1)
    shards = tiny_shards(tmp_path)
    models = save_runs(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"guidance": GUIDANCE, "splits": SPLITS}))
    run = models / "vqgan-on-s0"
    weights = run / "base" / "model.safetensors"
    before = load_file(str(weights))
    out = tmp_path / "curve"
    argv = ["--run", str(run), "--shards", str(shards), "--out", str(out), "--params", str(params)]
    tiny = [
        "--steps",
        "5",
        "--every",
        "2",
        "--batch-size",
        "4",
        "--images",
        "8",
        "--draws",
        "2",
        "--threads",
        "1",
    ]
    assert probe_curve.main([*argv, *tiny, "--log-level", "WARNING"]) == 0

    curve = json.loads((out / "probe_curve.json").read_text())
    points = curve["points"]
    assert [p["step"] for p in points] == [2, 4, 5]  # every 2 steps, and the last one
    scored = len(EvalBatches(shards, "test", 16, 64, 0, 8))
    for point in points:
        assert point["masked_tokens"] == 2 * scored  # mask-1, two draws: two masked tokens per caption
        assert point["all_gain"] == pytest.approx(point["all_real"] - point["all_shuffled"])
        assert 0.0 <= point["all_real"] <= 100.0
    assert (out / "probe_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    after = load_file(str(weights))
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen, and not re-saved


def test_curve_refuses_an_empty_budget(tmp_path: Path) -> None:
    from pipelines.models import GuidanceParams

    with pytest.raises(ValueError, match="steps and every must be >= 1"):
        probe_curve.learning_curve(tmp_path, tmp_path, GuidanceParams("fixed", "minilm"), steps=0, every=1)
