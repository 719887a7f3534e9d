"""``python -m pipelines.joint_curve``: one +LG run trained as the train stage builds it, its own heads scored
every ``--every`` steps with real and shuffled images."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from pipeline_helpers import tiny_params, tiny_shards

from pipelines import joint_curve
from pipelines.evaluate import EvalBatches


def test_curve_trains_the_run_and_scores_its_own_heads(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    shards = tiny_shards(tmp_path)
    params = tiny_params(tmp_path, {"guidance": {"config": {"context_length": 16}}})
    out = tmp_path / "curve"
    argv = [
        "--params",
        str(params),
        "--shards",
        str(shards),
        "--out",
        str(out),
        "--weights",
        str(tmp_path / "none"),
    ]
    tiny = ["--steps", "5", "--every", "2", "--images", "8", "--draws", "2", "--threads", "1"]
    assert joint_curve.main([*argv, *tiny, "--log-level", "WARNING"]) == 0

    curve = json.loads((out / "joint_curve.json").read_text())
    points = curve["points"]
    assert [p["step"] for p in points] == [2, 4, 5]  # every 2 steps, and the last one
    scored = len(EvalBatches(shards, "val", 16, 64, 0, 8, val_from_train=0.0))
    for point in points:
        assert point["masked_tokens"] == 2 * scored  # mask-1, two draws: two masked tokens per caption
        assert point["all_gain"] == pytest.approx(point["all_real"] - point["all_shuffled"])
        assert point["lgsa"] > 0.0 and point["reconstruction"] > 0.0  # the run's own losses, as reported
    assert points[0]["seconds"] < points[-1]["seconds"]
    assert "2 mask draw(s)" in curve["protocol"]["scored"] and curve["run"] == "vqgan-on-s0"
    assert (out / "joint_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_curve_refuses_an_empty_budget(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="steps, every and draws must be >= 1"):
        joint_curve.learning_curve(tmp_path, tmp_path, base="vqgan", seed=0, steps=4, every=2, draws=0)
