"""Stage ``train``: one tokenizer (a base, with or without language guidance) trained under Ray Train.

``python -m pipelines.train --base vqgan --lg on --seed 0 --shards data/shards --out models/vqgan-on-s0
--metrics M.json --curve C.csv [--weights tune/best_loss_weights.yaml]``. Ray starts locally unless
``ray.address`` or ``RAY_ADDRESS`` names a cluster. The exported model (``base/`` + LG heads) is the DVC
output.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

from pipelines import progress
from pipelines.models import BASES, GuidanceParams, ModelParams, VocabularyParams, tokenizer_config
from pipelines.params import ParamsError, StageParams, read_yaml, to_mapping
from pipelines.ray_runtime import RayParams
from pipelines.splits import SplitParams, carve_fraction
from pipelines.stage import parser, setup_logging, write_json

PARAMS = ("data.image_size", "splits", "model", "guidance", "vqct", "train", "ray")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainParams:
    """Section ``train``: batch size and data loading, then the lgvq-core ``TrainConfig`` fields.

    Flat on purpose, so ``dvc exp run -S train.lr=1e-4`` works. ``batch_size`` is per worker;
    ``lr``/``disc_lr``
    are absolute. ``amp``: none | bf16 | fp16 (bf16 also on CPU). ``guidance_lr`` / ``guidance_betas``: Adam
    settings of the LG heads (null = ``lr`` and taming's betas, as the official code).
    """

    batch_size: int
    loader_workers: int
    steps: int
    lr: float
    disc_lr: float
    log_every: int
    checkpoint_every: int
    amp: str = "none"
    grad_accum_steps: int = 1
    max_grad_norm: float = 0.0
    guidance_lr: float | None = None
    guidance_betas: tuple[float, float] | None = None

    def loop_config(self, seed: int):  # -> lgvq_core.config.TrainConfig
        """The lgvq-core loop settings for one seed (validated there: a bad value names ``train.<field>``)."""
        from lgvq_core.config import TrainConfig

        fields = asdict(self)
        for key in ("batch_size", "loader_workers"):
            fields.pop(key)
        return TrainConfig.from_dict({**fields, "seed": seed}, fill_defaults=True, path="train")


def read_weights(path: Path | None) -> dict[str, float]:
    """alpha/beta/gamma from a ``best_loss_weights.yaml`` written by the tune stage (empty when no file)."""
    if path is None or not path.is_file():
        return {}
    data = read_yaml(path)
    weights = data.get("weights", data)
    unknown = sorted(set(weights) - {"alpha", "beta", "gamma"})
    if unknown:
        raise ParamsError(f"{path}: unknown loss weight(s) {unknown}; expected alpha, beta, gamma")
    return {k: float(v) for k, v in weights.items()}


def make_job(sp: StageParams, base: str, lg: bool, shards: Path, weights: dict[str, float], seed: int):
    """The ``TrainJob`` for one run from the declared params sections; ``seed`` decides the initial weights,
    the data order and every random draw of the run."""
    from pipelines.ray_train import TrainJob

    image_size = sp.section("data.image_size", int)
    model = sp.section("model", ModelParams)
    guidance = sp.section("guidance", GuidanceParams)
    vocabulary = sp.section("vqct", VocabularyParams)
    train = sp.section("train", TrainParams)
    ray = sp.section("ray", RayParams)
    splits = sp.section("splits", SplitParams)
    tokenizer_config(base, model)  # fail here, before Ray starts, on a bad model section
    loop = train.loop_config(seed).to_dict()
    job = TrainJob(
        base=base,
        lg=lg,
        shards=str(shards.resolve()),
        image_size=image_size,
        batch_size=train.batch_size,
        loader_workers=train.loader_workers,
        threads_per_worker=max(1, int(ray.cpus_per_worker)),
        model=to_mapping(model),
        guidance=to_mapping(guidance),
        weights=weights,
        vocabulary=to_mapping(vocabulary),
        loop=loop,
        seed=seed,
        val_from_train=carve_fraction(shards, splits),
        split_seed=splits.seed,
    )
    return job, ray


def write_curve(history: list[dict[str, float]], path: Path) -> None:
    """Training curve as CSV (one row per report, a ``step`` column) for ``dvc plots``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for row in history for k in row} - {"step"})
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["step", *keys])
        writer.writeheader()
        for row in history:
            writer.writerow({k: row.get(k, "") for k in ["step", *keys]})


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--base", choices=BASES, required=True)
    p.add_argument("--lg", choices=("on", "off"), required=True)
    p.add_argument("--shards", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True)
    p.add_argument("--curve", type=Path, required=True)
    p.add_argument("--weights", type=Path, default=None, help="best_loss_weights.yaml from the tune stage")
    p.add_argument("--seed", type=int, default=0, help="run seed (the pipeline runs each of runs.seeds)")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    from pipelines.ray_train import run

    lg = args.lg == "on"
    weights = read_weights(args.weights) if lg else {}
    job, ray = make_job(StageParams(args.params, PARAMS), args.base, lg, args.shards, weights, args.seed)
    name = f"train-{args.base}-{args.lg}-s{args.seed}-{job.digest()}"
    final = run(job, ray, args.out, name)
    meta = json.loads((args.out / "run.json").read_text())
    write_curve(meta.get("history", []), args.curve)
    metrics = {
        "base": args.base,
        "lg": lg,
        "seed": args.seed,
        "steps": meta["steps"],
        "train_seconds": meta["train_seconds"],
        "world_size": meta["world_size"],
        "skipped_nonfinite": meta["skipped_nonfinite"],
        "weights": weights or None,
        "ray_run": name,
        "final": {k: v for k, v in final.items() if isinstance(v, (int, float))},
    }
    write_json(args.metrics, metrics)
    logger.info("trained %s (lg=%s) in %.0f s -> %s", args.base, args.lg, meta["train_seconds"], args.out)
    progress.headline(train_headline(metrics["final"], meta["steps"]))
    return 0


def train_headline(final: dict[str, float], steps: int) -> str:
    """The key figure of a run for the console: its last reported reconstruction loss (else total loss)."""
    for key in ("reconstruction", "total"):
        if key in final:
            return f"{key} loss {final[key]:.4f} after {steps} steps"
    return f"{steps} steps"


if __name__ == "__main__":
    raise SystemExit(main())
