"""When does a jointly trained run's masked-word recall start to depend on the image? A learning curve.

``python -m pipelines.joint_curve --base vqgan --seed 0 --steps 1500 --every 250 --out reports/joint_curve``
trains one +LG run exactly as the ``train`` stage builds it (``make_job``: the params file's model, guidance,
train and split sections, the tuned weights of ``--weights``, the run seed's data order) but in this process,
without Ray, for ``--steps`` steps, and every ``--every`` steps scores its *own* LG heads: masked-word
Recall@1 (mask-1, ``--draws`` mask draws per caption, pooled) on the first ``--images`` images of ``--split``
(``val`` by default: a budget is chosen on val, never on test) with real and with shuffled images, overall
and per word class — the evaluate stage's protocol. Compare ``pipelines.probe_curve``, whose heads learn on
a frozen tokenizer.

Writes ``joint_curve.json`` (the points with the run's L_gsa, L_mtp and reconstruction loss on that
step's batch, the protocol) and ``joint_curve.png``. Not a DVC stage and nothing is saved from the run: a
diagnostic for choosing a budget, about 1 CPU s per step at the default size on 2 cores.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

import torch

from pipelines.evaluate import EvalBatches, synthetic_word_classes
from pipelines.models import BASES, torch_threads
from pipelines.params import StageParams
from pipelines.probe_curve import add_curve_arguments, log_point, plot, recall_point, scored_protocol
from pipelines.splits import SplitParams, carve_fraction
from pipelines.stage import setup_logging, write_json
from pipelines.train import PARAMS, make_job, read_weights

logger = logging.getLogger(__name__)


def learning_curve(
    params: Path,
    shards: Path,
    *,
    base: str,
    seed: int,
    steps: int,
    every: int,
    weights: Path | None = None,
    split: str = "val",
    images: int = 400,
    draws: int = 4,
) -> dict[str, Any]:
    """Train one +LG run for ``steps`` steps; its points (one per ``every`` steps) and protocol."""
    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import Callback, fit
    from pipelines.ray_train import build_trainable, make_loader

    if steps < 1 or every < 1 or draws < 1:
        raise ValueError(f"steps, every and draws must be >= 1, got {steps}, {every} and {draws}")
    sp = StageParams(params, PARAMS)
    job, _ = make_job(sp, base, True, shards, read_weights(weights), seed)
    job.loop.update(steps=steps, checkpoint_every=0)
    torch.manual_seed(job.seed)  # as the train stage's worker: the same initial weights
    model, discriminator, _ = build_trainable(job, torch.device("cpu"))
    splits = sp.section("splits", SplitParams)
    carve = {"val_from_train": carve_fraction(shards, splits), "split_seed": splits.seed}
    scored = EvalBatches(shards, split, job.image_size, 64, 0, images, **carve)
    word_classes = synthetic_word_classes()
    mask_seeds = list(range(draws))
    points: list[dict[str, float]] = []
    started = time.perf_counter()

    class Score(Callback):
        def on_step_end(self, state: Any, metrics: dict[str, float]) -> None:
            if state.step % every and state.step != steps:
                return
            point: dict[str, float] = {"step": state.step, "seconds": time.perf_counter() - started}
            point.update(recall_point(model, scored, word_classes, mask_seeds))
            model.train()
            for key in ("lgsa", "lmtp", "reconstruction"):  # this step's batch losses
                if key in metrics:
                    point[key] = float(metrics[key])
            points.append(point)
            log_point(point)

    loop = TrainConfig.from_dict(dict(job.loop))
    fit(model, make_loader(job, "train", 0, 1), loop, discriminator=discriminator, callbacks=[Score()])
    return {
        "run": f"{base}-on-s{seed}",
        "points": points,
        "protocol": {
            "heads": "the run's own LG heads, trained jointly with the tokenizer (the train stage's job, "
            "in one process)",
            "train": f"{steps} steps of {job.batch_size} train images, weights {job.weights or 'of params'}",
            "scored": scored_protocol(len(scored), split, mask_seeds),
        },
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", choices=BASES, default="vqgan")
    p.add_argument("--seed", type=int, default=0)
    add_curve_arguments(p, out="reports/joint_curve", every=250, split="val", images=400)
    p.add_argument("--weights", type=Path, default=Path("tune/best_loss_weights.yaml"))
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    torch_threads(args.threads)
    curve = learning_curve(
        args.params,
        args.shards,
        base=args.base,
        seed=args.seed,
        steps=args.steps,
        every=args.every,
        weights=args.weights,
        split=args.split,
        images=args.images,
        draws=args.draws,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "joint_curve.json", curve)
    title = f"Own LG heads of {curve['run']}, trained jointly"
    plot(curve, args.out / "joint_curve.png", xlabel="training steps (tokenizer + LG heads)", title=title)
    logger.info("wrote %s", args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
