"""Which object is it? A supervised probe of what a frozen tokenizer's codes hold, and of what LG's reader
gets out of them.

``python -m pipelines.object_probe --run models/vqgan-on-s0 --out reports/object_probe`` takes the images of
``--shards`` that hold exactly one labelled object (for the synthetic scenes the label is the shape: 7
classes) and fits one classifier per input and reader on the train split, ``--steps`` steps of
``--batch-size`` (Adam, ``--lr``, the same budget and seed for every reader):

* ``codes, f_vt``: the LG heads' visual token encoder without a stem (``lgvq_core`` ``VisualTokenEncoder``,
  the ``guidance`` section's ``visual_width/layers/heads``) with a linear layer on its [CLS] token;
* ``codes, f_vt + conv stem``: the same with ``visual_stem: conv`` (residual 3×3 convolutions over the grid);
* ``codes, CNN``: three 3×3 convolutions, max pooling, a linear layer;
* ``pixels, CNN`` / ``reconstructions, CNN``: the same CNN (first convolution with the tokenizer's stride) on
  the images — what the scene holds — and on the tokenizer's reconstructions — what its decoder keeps.

Each is scored on ``--split`` (``val``: nothing here is reported as a test result) beside the majority label
of the train split, with Wilson 95 % intervals, over all scored images and by object size (side at most the
train median, or larger). Writes ``object_probe.json``, ``object_probe.md`` (the table) and
``object_probe.png``. Not a DVC stage: a diagnostic (about 4 min at the default size on 2 cores).
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from pipelines.models import GuidanceParams, guidance_config, load_run, torch_threads
from pipelines.params import StageParams
from pipelines.proportion import wilson_interval
from pipelines.splits import SplitParams, carve_fraction
from pipelines.stage import setup_logging, write_json

logger = logging.getLogger(__name__)

READERS = ("codes, f_vt", "codes, f_vt + conv stem", "codes, CNN", "pixels, CNN", "reconstructions, CNN")


@dataclass
class ProbeSet:
    """Single-object images of one split: inputs for every reader, labels and the small-object flag."""

    pixels: Tensor  # B×3×H×W in [-1, 1]
    reconstructions: Tensor  # B×3×H×W in [-1, 1]
    codes: Tensor  # B×D×h×w code vectors
    labels: Tensor  # B int64 class indices
    small: Tensor  # B bool: object side <= the train split's median side

    def __len__(self) -> int:
        return int(self.labels.numel())


def single_object_rows(
    shards: Path, split: str, image_size: int, carve: dict[str, Any]
) -> tuple[Tensor, list[str], Tensor]:
    """(images B×3×H×W in [-1, 1], labels, object sides in px) of the rows of ``split`` with one box."""
    from lgvq_data.dataset import ShardDataset, collate

    dataset = ShardDataset(shards, split, image_size=image_size, seed=0, annotations=True, **carve)
    samples = [s for s in (dataset[i] for i in range(len(dataset))) if len(s["box_labels"]) == 1]
    if not samples:
        raise ValueError(f"{shards}: split {split!r} has no image with exactly one labelled object")
    batch = collate(samples)
    sides = torch.stack([torch.maximum(b[0, 2] - b[0, 0], b[0, 3] - b[0, 1]) for b in batch["boxes"]])
    return batch["images"], [labels[0] for labels in batch["box_labels"]], sides


@torch.no_grad()
def encode_set(
    tokenizer: nn.Module, images: Tensor, labels: list[str], sides: Tensor, classes: list[str], median: float
) -> ProbeSet:
    """Run the frozen tokenizer over ``images`` (in chunks of 128)."""
    codes, reconstructions = [], []
    for chunk in images.split(128):
        out = tokenizer(chunk)
        codes.append(out.quant.codes if out.quant.codes is not None else out.quant.quantized)
        reconstructions.append(out.reconstruction.clamp(-1, 1))
    known = torch.tensor([label in classes for label in labels])
    index = torch.tensor([classes.index(label) if label in classes else -1 for label in labels])
    return ProbeSet(
        images[known],
        torch.cat(reconstructions)[known],
        torch.cat(codes)[known],
        index[known],
        (sides <= median)[known],
    )


class VisualTokenReader(nn.Module):
    """LG's f_vt (optionally with its conv stem, ``visual_stem: conv``) and a linear classifier on [CLS]."""

    def __init__(self, code_dim: int, grid: int, classes: int, config: Any, stem: bool) -> None:
        super().__init__()
        from lgvq_core.guidance.visual_encoder import VisualTokenEncoder

        width = config.visual_width or code_dim
        self.encoder = VisualTokenEncoder(
            code_dim,
            grid,
            width,
            width=width,
            layers=config.visual_layers,
            heads=config.visual_heads,
            stem="conv" if stem else "none",
        )
        self.head = nn.Linear(width, classes)

    def forward(self, codes: Tensor) -> Tensor:
        return self.head(self.encoder(codes)[:, 0])


def small_cnn(in_channels: int, classes: int, stride: int) -> nn.Module:
    """Three 3×3 convolutions (64 channels, the first with ``stride``), max pooling, a linear layer."""
    return nn.Sequential(
        nn.Conv2d(in_channels, 64, 3, stride, 1),
        nn.ReLU(),
        nn.Conv2d(64, 64, 3, 1, 1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(64, 64, 3, 1, 1),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d(1),
        nn.Flatten(),
        nn.Linear(64, classes),
    )


def reader_factories(
    code_dim: int, grid: int, stride: int, classes: int, config: Any
) -> dict[str, tuple[str, Callable[[], nn.Module]]]:
    """Reader name -> (ProbeSet field it reads, constructor)."""
    return {
        "codes, f_vt": ("codes", lambda: VisualTokenReader(code_dim, grid, classes, config, stem=False)),
        "codes, f_vt + conv stem": (
            "codes",
            lambda: VisualTokenReader(code_dim, grid, classes, config, stem=True),
        ),
        "codes, CNN": ("codes", lambda: small_cnn(code_dim, classes, 1)),
        "pixels, CNN": ("pixels", lambda: small_cnn(3, classes, stride)),
        "reconstructions, CNN": ("reconstructions", lambda: small_cnn(3, classes, stride)),
    }


def fit_reader(
    model: nn.Module, inputs: Tensor, labels: Tensor, steps: int, batch_size: int, lr: float, seed: int
) -> list[float]:
    """Adam on cross-entropy over random mini-batches; returns the per-step training losses."""
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    model.train()
    for _ in range(steps):
        rows = torch.randint(len(labels), (batch_size,), generator=generator)
        loss = F.cross_entropy(model(inputs[rows]), labels[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def accuracy_entry(correct: Tensor) -> dict[str, float]:
    """Accuracy in % of a bool vector with its Wilson 95 % interval."""
    n, hits = int(correct.numel()), int(correct.sum())
    low, high = wilson_interval(hits, n)
    return {"accuracy": 100 * hits / n if n else math.nan, "low": 100 * low, "high": 100 * high, "n": n}


def score(predicted: Tensor, scored: ProbeSet) -> dict[str, dict[str, float]]:
    """Accuracy overall, for small and for large objects."""
    correct = predicted == scored.labels
    return {
        "all": accuracy_entry(correct),
        "small": accuracy_entry(correct[scored.small]),
        "large": accuracy_entry(correct[~scored.small]),
    }


def object_probe(
    run: Path,
    shards: Path,
    guidance: GuidanceParams,
    *,
    steps: int = 500,
    batch_size: int = 32,
    lr: float = 1e-3,
    split: str = "val",
    seed: int = 0,
    splits: SplitParams | None = None,
) -> dict[str, Any]:
    """Every reader's scores on ``split`` beside the majority label, and the protocol."""
    if steps < 1 or batch_size < 1:
        raise ValueError(f"steps and batch_size must be >= 1, got {steps} and {batch_size}")
    tokenizer, meta = load_run(run)
    image_size = int(meta.get("image_size", tokenizer.config.encoder.resolution))
    splits = splits or SplitParams()
    carve = {"val_from_train": carve_fraction(shards, splits), "split_seed": splits.seed}
    train_images, train_labels, train_sides = single_object_rows(shards, "train", image_size, carve)
    classes = sorted(set(train_labels))
    median = float(train_sides.median())
    train = encode_set(tokenizer, train_images, train_labels, train_sides, classes, median)
    scored = encode_set(tokenizer, *single_object_rows(shards, split, image_size, carve), classes, median)
    if len(scored) == 0:
        raise ValueError(f"{shards}: no single-object {split} image has a label seen in train")
    grid, stride = train.codes.shape[-1], image_size // train.codes.shape[-1]
    majority = int(torch.bincount(train.labels, minlength=len(classes)).argmax())
    results: dict[str, Any] = {"majority label": score(torch.full_like(scored.labels, majority), scored)}
    config = guidance_config(guidance)
    factories = reader_factories(train.codes.shape[1], grid * grid, stride, len(classes), config)
    for name, (field, make) in factories.items():
        started = time.perf_counter()
        torch.manual_seed(seed)
        model = make()
        losses = fit_reader(model, getattr(train, field), train.labels, steps, batch_size, lr, seed)
        model.eval()
        with torch.no_grad():
            predicted = torch.cat([model(x).argmax(1) for x in getattr(scored, field).split(256)])
        results[name] = score(predicted, scored)
        results[name]["train_loss_first_last"] = [sum(losses[:10]) / 10, sum(losses[-10:]) / 10]
        results[name]["seconds"] = time.perf_counter() - started
        logger.info("%s: %.1f %% on %d %s images", name, results[name]["all"]["accuracy"], len(scored), split)
    return {
        "run": str(run),
        "classes": classes,
        "readers": results,
        "protocol": {
            "images": f"single-object images: {len(train)} train, {len(scored)} {split}",
            "small": f"object side <= {median:g} px (the train median)",
            "train": f"{steps} steps of {batch_size}, Adam lr {lr}, seed {seed}, the tokenizer frozen",
            "interval": "Wilson 95 % interval of a proportion",
        },
    }


def markdown(report: dict[str, Any]) -> str:
    """The table: accuracy [interval] per reader, overall and by object size."""
    lines = [
        f"# Object probe: {Path(report['run']).name}",
        "",
        f"{len(report['classes'])} classes; {report['protocol']['images']}; {report['protocol']['train']}; "
        f"small = {report['protocol']['small']}; 95 % Wilson intervals.",
        "",
        "| reader | all % | small objects % | large objects % |",
        "| --- | --- | --- | --- |",
    ]
    for name, entry in report["readers"].items():
        cells = [
            f"{entry[k]['accuracy']:.1f} [{entry[k]['low']:.1f}, {entry[k]['high']:.1f}]"
            for k in ("all", "small", "large")
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(report: dict[str, Any], path: Path) -> Path:
    """Bars: each reader's accuracy with its interval; a line at the majority label."""
    from pipelines.plots import _pyplot, save_figure

    plt = _pyplot()
    readers = {k: v for k, v in report["readers"].items() if k != "majority label"}
    names = list(readers)
    values = [readers[n]["all"]["accuracy"] for n in names]
    errors = [
        [v - readers[n]["all"]["low"] for n, v in zip(names, values, strict=True)],
        [readers[n]["all"]["high"] - v for n, v in zip(names, values, strict=True)],
    ]
    fig, ax = plt.subplots(figsize=(7.0, 3.8))
    ax.barh(names, values, xerr=errors, color="tab:blue", alpha=0.8, capsize=3)
    majority = report["readers"]["majority label"]["all"]["accuracy"]
    ax.axvline(majority, color="tab:red", linestyle="--", label=f"majority label ({majority:.1f} %)")
    ax.set_xlim(0, 100)
    ax.invert_yaxis()
    ax.set_xlabel("held-out accuracy of the lone object's label, % (95 % interval)")
    ax.set_title(f"What can be read from {Path(report['run']).name}?")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a trained run folder (models/<run>)")
    p.add_argument("--shards", type=Path, default=Path("data/shards"))
    p.add_argument("--out", type=Path, default=Path("reports/object_probe"))
    p.add_argument("--params", type=Path, default=Path("params.yaml"))
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--split", default="val")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    torch_threads(args.threads)
    params = StageParams(args.params, ("guidance", "splits"))
    report = object_probe(
        args.run,
        args.shards,
        params.section("guidance", GuidanceParams),
        steps=args.steps,
        batch_size=args.batch_size,
        lr=args.lr,
        split=args.split,
        seed=args.seed,
        splits=params.section("splits", SplitParams),
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "object_probe.json", report)
    (args.out / "object_probe.md").write_text(markdown(report))
    plot(report, args.out / "object_probe.png")
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
