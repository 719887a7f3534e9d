"""``python -m pipelines.object_probe``: supervised readers of a frozen tokenizer's codes, pixels and
reconstructions, scored beside the majority label with Wilson intervals."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import yaml
from downstream_helpers import CONTEXT, save_runs
from pipeline_helpers import tiny_shards

from pipelines import object_probe
from pipelines.proportion import wilson_interval

GUIDANCE = {"mode": "fixed", "text_encoder": "minilm", "config": {"context_length": CONTEXT}}
SPLITS = {"val_from_train": 0.1, "seed": 0}


@pytest.mark.parametrize(("hits", "n"), [(69, 100), (3, 7), (1, 250)])
def test_wilson_interval_matches_scipy(hits: int, n: int) -> None:
    from scipy.stats import binomtest

    reference = binomtest(hits, n).proportion_ci(confidence_level=0.95, method="wilson")
    assert wilson_interval(hits, n) == pytest.approx((reference.low, reference.high), abs=1e-9)


def test_wilson_interval_at_the_edges() -> None:
    z2 = 1.959963984540054**2
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(z2 / (10 + z2))  # closed form at zero successes
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError, match="successes <= n"):
        wilson_interval(5, 4)


def test_probe_scores_every_reader_beside_the_majority_label(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from lgvq_data.dataset import ShardDataset

    torch.set_num_threads(1)
    shards = tiny_shards(tmp_path, n=64)
    run = save_runs(tmp_path) / "vqgan-on-s0"
    weights = run / "base" / "model.safetensors"
    before = load_file(str(weights))
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"guidance": GUIDANCE, "splits": SPLITS}))
    out = tmp_path / "probe"
    argv = ["--run", str(run), "--shards", str(shards), "--out", str(out), "--params", str(params)]
    tiny = ["--steps", "40", "--batch-size", "8", "--threads", "1", "--log-level", "WARNING"]
    assert object_probe.main([*argv, *tiny]) == 0

    report = json.loads((out / "object_probe.json").read_text())
    readers = report["readers"]
    assert set(readers) == {"majority label", *object_probe.READERS}

    # the scored images and the majority label, counted by hand from the shards
    def lone_labels(split: str) -> list[str]:
        rows = ShardDataset(shards, split, image_size=16, seed=0, annotations=True)
        return [rows[i]["box_labels"][0] for i in range(len(rows)) if len(rows[i]["box_labels"]) == 1]

    train, val = lone_labels("train"), lone_labels("val")
    val = [label for label in val if label in set(train)]
    majority = max(sorted(set(train)), key=train.count)
    expected = 100 * sum(label == majority for label in val) / len(val)
    assert readers["majority label"]["all"]["accuracy"] == pytest.approx(expected)
    assert report["classes"] == sorted(set(train))
    for name in object_probe.READERS:
        entry = readers[name]
        assert entry["all"]["n"] == len(val)
        assert entry["small"]["n"] + entry["large"]["n"] == len(val)
        assert entry["all"]["low"] <= entry["all"]["accuracy"] <= entry["all"]["high"]
        first, last = entry["train_loss_first_last"]
        assert last < first  # every reader fits its training images
    assert "| codes, f_vt |" in (out / "object_probe.md").read_text()
    assert (out / "object_probe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    after = load_file(str(weights))
    assert all(torch.equal(before[k], after[k]) for k in before)  # frozen, and not re-saved


def test_probe_refuses_an_empty_budget(tmp_path: Path) -> None:
    from pipelines.models import GuidanceParams

    with pytest.raises(ValueError, match="steps and batch_size must be >= 1"):
        object_probe.object_probe(tmp_path, tmp_path, GuidanceParams("fixed", "minilm"), steps=0)
