"""One tune trial: train a language-guided tokenizer for a short budget, report a validation objective.

The objective is a weighted sum of named validation measures (``tune.objective.terms``), computed on the first
``tune.val_batches`` batches of the ``val`` split every ``tune.eval_every`` steps. Measures (all on the
validation batches; "↓" = lower is better):

* ``val_recon`` ↓ — mean absolute pixel error |x − x̂| (images in [-1, 1]), the L1 part of the VQ loss.
* ``val_mse`` ↓ — mean squared pixel error.
* ``val_psnr`` ↑ — PSNR in dB on images mapped to [0, 1], averaged over images.
* ``codebook_usage`` ↑ — fraction of the K codes selected at least once.
* ``recall_mask1`` / ``recall_mask3`` ↑ — masked-word Recall@1, 1 / 3 masked tokens per caption (Table 3).
* ``recall_gain_mask1`` / ``recall_gain_mask3`` ↑ — that recall minus the recall with shuffled images (each
  caption paired with another image): the part of the recall that comes from the image.
* ``word_code_mse`` ↓ — word–word vs matched code–code cosine-similarity MSE, raw code vectors (Table 4);
  ``word_code_mse_projected`` ↓ the same on the projected codes g(q).
* ``retrieval_top1`` / ``retrieval_top5`` ↑ — image→text retrieval among the validation captions.
* ``val_lgsa`` / ``val_lmtp`` / ``val_lras`` ↓ — the unweighted LG losses (global alignment, masked-token
  prediction, relation alignment) on the validation batches.

Every listed term is computed and reported (a 0.0 weight reports it without optimising it); the objective is
Σ weight·measure, minimised or maximised per ``tune.objective.mode`` (give "↑" measures a negative weight when
minimising). The trial function lives in this package module: Ray pickles it by reference.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.ray_runtime import worker_scratch

logger = logging.getLogger(__name__)

WEIGHTS: tuple[str, ...] = ("alpha", "beta", "gamma")
MEASURES: dict[str, str] = {
    "val_recon": "mean |x - x̂| on validation images in [-1, 1] (lower is better)",
    "val_mse": "mean squared pixel error (lower is better)",
    "val_psnr": "PSNR in dB, images in [0, 1] (higher is better)",
    "codebook_usage": "fraction of codes used on the validation images (higher is better)",
    "recall_mask1": "masked-word Recall@1, 1 masked token per caption (higher is better)",
    "recall_mask3": "masked-word Recall@1, 3 masked tokens per caption (higher is better)",
    "recall_gain_mask1": "recall_mask1 minus the same with shuffled images (higher is better)",
    "recall_gain_mask3": "recall_mask3 minus the same with shuffled images (higher is better)",
    "word_code_mse": "word-word vs matched code-code cosine MSE, raw codes (lower is better)",
    "word_code_mse_projected": "the same on the projected codes g(q) (lower is better)",
    "retrieval_top1": "image-to-text retrieval top-1 (higher is better)",
    "retrieval_top5": "image-to-text retrieval top-5 (higher is better)",
    "val_lgsa": "unweighted global semantic alignment loss (lower is better)",
    "val_lmtp": "unweighted masked-token prediction loss (lower is better)",
    "val_lras": "unweighted relation alignment loss (lower is better)",
}
CHECKPOINT_DIR = "last"  # lgvq_core.training.loop.LAST_CHECKPOINT


@dataclass(frozen=True)
class TrialSettings:
    """Plain data every trial receives (crosses process boundaries as a dict via ``tune.with_parameters``)."""

    job: dict[str, Any]  # asdict(TrainJob) without the searched weights applied
    terms: dict[str, float]  # objective terms
    max_steps: int
    eval_every: int
    val_batches: int
    workers_per_trial: int
    cpus_per_worker: float
    use_gpu: bool
    storage: str  # Ray storage URI (inner Ray Train runs of multi-worker trials)
    experiment: str
    max_failures: int


# ------------------------------------------------------------------------------------------ measures


def combine(measures: dict[str, float], terms: dict[str, float]) -> float:
    """Σ weight·measure over ``terms`` (zero weights skipped: a NaN measure with weight 0 does not matter)."""
    return float(sum(w * measures[name] for name, w in terms.items() if w != 0.0))


def evaluate(model: Any, batches: list[dict[str, Any]], names: list[str], seed: int = 0) -> dict[str, float]:
    """The measures ``names`` of ``model`` (a ``LanguageGuided``) on ``batches``; its mode is kept."""
    import torch

    from lgvq_core.guidance import diagnostics as diag

    wanted = set(names)
    unknown = sorted(wanted - set(MEASURES))
    if unknown:
        raise ValueError(f"unknown measure(s) {unknown}; known: {sorted(MEASURES)}")
    out: dict[str, float] = {}
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            if wanted & {"val_recon", "val_mse", "val_psnr", "codebook_usage"}:
                out.update(_reconstruction(model, batches))
            if wanted & {"val_lgsa", "val_lmtp", "val_lras"}:
                out.update(_lg_losses(model, batches, seed))
        for k in (1, 3):
            if wanted & {f"recall_mask{k}", f"recall_gain_mask{k}"}:
                real = diag.masked_word_recall(model, batches, num_masked=k, seed=seed)["recall_at_1"]
                out[f"recall_mask{k}"] = real
            if f"recall_gain_mask{k}" in wanted:
                shuffled = diag.masked_word_recall(model, batches, num_masked=k, seed=seed, images="shuffled")
                out[f"recall_gain_mask{k}"] = real - shuffled["recall_at_1"]
        if wanted & {"word_code_mse", "word_code_mse_projected"}:
            mse = diag.word_code_similarity_mse(model, batches)
            out.update(word_code_mse=mse["mse_raw_codes"], word_code_mse_projected=mse["mse_projected_codes"])
        if wanted & {"retrieval_top1", "retrieval_top5"}:
            ret = diag.image_text_retrieval(model, batches, ks=(1, 5))
            out.update(retrieval_top1=ret["top1"], retrieval_top5=ret["top5"])
    finally:
        model.train(was_training)
    return {k: float(out[k]) for k in names}


def _reconstruction(model: Any, batches: list[dict[str, Any]]) -> dict[str, float]:
    import torch

    device = next(model.parameters()).device
    l1 = mse = psnr = 0.0
    pixels = images = 0
    from lgvq_core.metrics.codebook import codebook_usage_for

    usage = codebook_usage_for(model.base)
    for batch in batches:
        x = batch["images"].to(device)
        output = model.base(x)
        err = output.reconstruction.float() - x.float()
        l1 += float(err.abs().sum())
        mse += float((err**2).sum())
        pixels += err.numel()
        per_image = ((err / 2) ** 2).flatten(1).mean(1).clamp_min(1e-10)  # [0, 1] range: error halves
        psnr += float((-10 * torch.log10(per_image)).sum())
        images += x.shape[0]
        usage.update(output.quant.indices)
    if not images:
        raise ValueError("no validation batches to evaluate")
    return {
        "val_recon": l1 / pixels,
        "val_mse": mse / pixels,
        "val_psnr": psnr / images,
        "codebook_usage": float(usage.compute()["usage"]),
    }


def _lg_losses(model: Any, batches: list[dict[str, Any]], seed: int) -> dict[str, float]:
    import torch

    device = next(model.parameters()).device
    state = torch.random.get_rng_state()
    torch.manual_seed(seed)  # the mask ratio and positions are sampled: same masks for every trial
    sums = {"val_lgsa": 0.0, "val_lmtp": 0.0, "val_lras": 0.0}
    try:
        for batch in batches:
            quantized = model.base(batch["images"].to(device)).quant.quantized
            lg = model.alignment_losses(quantized, list(batch["captions"]))
            sums["val_lgsa"] += float(lg.lgsa)
            sums["val_lmtp"] += float(lg.lmtp)
            sums["val_lras"] += float(lg.lras)
    finally:
        torch.random.set_rng_state(state)
    return {k: v / max(1, len(batches)) for k, v in sums.items()}


# ------------------------------------------------------------------------------------------ trial


def validation_batches(job: Any, count: int) -> list[dict[str, Any]]:
    """The first ``count`` batches of the ``val`` split, unshuffled (the same images for every trial)."""
    from pipelines.ray_train import make_loader

    out: list[dict[str, Any]] = []
    for batch in make_loader(job, "val", 0, 1, shuffle=False):
        out.append(batch)
        if len(out) >= count:
            break
    if not out:
        raise ValueError(f"{job.shards}: the val split has fewer images than one batch of {job.batch_size}")
    return out


def apply_weights(job_data: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    """The job with the trial's searched weights (``config['alpha']`` …) over the job's own weights."""
    weights = {**job_data.get("weights", {}), **{k: float(config[k]) for k in WEIGHTS if k in config}}
    return {**job_data, "weights": weights}


class Reporter:
    """A ``fit`` callback: evaluates at every report step and hands (metrics, checkpoint folder) to ``send``.

    The loop writes its checkpoint right after ``on_report``; with ``defer`` (several ranks: only rank 0
    writes checkpoints, every rank must report) the report goes out at the next step or at :meth:`flush` after
    ``fit``, otherwise from ``on_checkpoint`` as soon as the checkpoint of that very step exists.
    """

    def __init__(
        self,
        model: Any,
        batches: list[dict[str, Any]],
        terms: dict[str, float],
        workdir: Path,
        send: Callable[[dict[str, float], Path | None], None],
        *,
        defer: bool = False,
        seed: int = 0,
    ):
        from lgvq_core.training.loop import Callback

        self.model, self.batches, self.terms, self.workdir = model, batches, terms, workdir
        self.send, self.defer, self.seed = send, defer, seed
        self.pending: dict[str, float] | None = None
        self.has_checkpoint = False
        reporter = self

        class _Hooks(Callback):
            def on_report(self, state, metrics):
                reporter.on_report(state.step, metrics)

            def on_checkpoint(self, state, path):
                reporter.has_checkpoint = True
                if not reporter.defer:
                    reporter.flush()

            def on_step_end(self, state, metrics):
                if reporter.defer:
                    reporter.flush()

        self.callback = _Hooks()

    def on_report(self, step: int, train: dict[str, float]) -> None:
        measures = evaluate(self.model, self.batches, list(self.terms), seed=self.seed)
        objective = combine(measures, self.terms)
        extra = {f"train_{k}": float(v) for k, v in train.items() if k != "step"}
        self.pending = {"objective": objective, "step": step, **measures, **extra}
        logger.info("step %d: objective %.5g %s", step, objective, measures)

    def flush(self) -> None:
        if self.pending is None:
            return
        metrics, self.pending = self.pending, None
        self.send(metrics, self.workdir if self.has_checkpoint else None)
        self.has_checkpoint = False


def trial(config: dict[str, Any], settings: dict[str, Any]) -> None:
    """The Ray Tune function trainable: one weight setting, trained and evaluated (module docstring)."""
    s = TrialSettings(**settings)
    if s.workers_per_trial > 1:
        _trial_on_ray_train(config, s)
        return
    from ray import tune

    def send(metrics: dict[str, float], folder: Path | None) -> None:
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(str(folder)) if folder else None)

    _train(apply_weights(s.job, config), s, send, tune.get_checkpoint(), rank=0, world=1)


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train worker (all ranks) of a multi-worker trial; ``config`` = {"job": ..., "settings": ...}."""
    import ray.train

    s = TrialSettings(**config["settings"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()

    def send(metrics: dict[str, float], folder: Path | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if folder and rank == 0 else None
        ray.train.report(metrics, checkpoint=checkpoint)

    if rank == 0 and config.get("pg_key"):
        _remember_placement_group(config["pg_key"])
    _train(config["job"], s, send, ray.train.get_checkpoint(), rank=rank, world=world)


def _train(
    job_data: dict[str, Any], s: TrialSettings, send: Callable, checkpoint: Any, *, rank: int, world: int
) -> None:
    import torch

    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import fit
    from pipelines.models import torch_threads
    from pipelines.ray_train import TrainJob, build_trainable, make_loader

    job = TrainJob(**job_data)
    torch_threads(job.threads_per_worker)
    device = torch.device("cuda" if s.use_gpu and torch.cuda.is_available() else "cpu")
    if world > 1 and s.use_gpu:
        import ray.train.torch

        device = ray.train.torch.get_device()
    torch.manual_seed(job.seed)  # every trial starts from the same initial weights
    model, discriminator, _ = build_trainable(job, device)
    with worker_scratch(f"r{rank}-", parent=scratch_root(s.experiment)) as workdir:
        if checkpoint is not None:
            with checkpoint.as_directory() as restored:
                if (Path(restored) / CHECKPOINT_DIR).is_dir():
                    shutil.copytree(Path(restored) / CHECKPOINT_DIR, workdir / CHECKPOINT_DIR)
                    logger.info("resuming the trial from %s", checkpoint.path)
        loop = TrainConfig.from_dict(
            {
                **job.loop,
                "steps": s.max_steps,
                "log_every": s.eval_every,
                "checkpoint_every": s.eval_every,
                "checkpoint_dir": str(workdir),
            }
        )
        batches = validation_batches(job, s.val_batches)
        reporter = Reporter(model, batches, s.terms, workdir, send, defer=world > 1, seed=job.seed)
        fit(
            model,
            make_loader(job, "train", rank, world),
            loop,
            discriminator=discriminator,
            callbacks=[reporter.callback],
        )
        reporter.flush()


def scratch_root(experiment: str) -> Path:
    """The folder (in the system temp folder of each node) that holds the local checkpoint folders of one
    experiment's trials. The driver removes it when the search ends (``pipelines.tune.run``): a trial that
    ASHA stops is killed before its own clean-up runs, so it cannot be relied on to remove its folder."""
    return Path(tempfile.gettempdir()) / f"lgvq-tune-scratch-{experiment}"


def _trial_on_ray_train(config: dict[str, Any], s: TrialSettings) -> None:
    """A trial as a Ray Train ``TorchTrainer`` of ``workers_per_trial`` workers; metrics go to Tune through
    ``TuneReportCallback``. The inner run is named after the trial, so a restored trial resumes it."""
    from ray import tune
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.tune.integration.ray_train import TuneReportCallback

    from pipelines.ray_runtime import torch_trainer

    name = f"{s.experiment}-{tune.get_context().get_trial_id()}"
    pg_key = placement_group_key(s.experiment, tune.get_context().get_trial_id())
    trainer = torch_trainer(
        train_worker,
        train_loop_config={"job": apply_weights(s.job, config), "settings": asdict(s), "pg_key": pg_key},
        scaling_config=ScalingConfig(
            num_workers=s.workers_per_trial,
            use_gpu=s.use_gpu,
            resources_per_worker={"CPU": s.cpus_per_worker},
        ),
        run_config=RunConfig(
            name=name,
            storage_path=s.storage,
            callbacks=[TuneReportCallback()],
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            failure_config=FailureConfig(max_failures=s.max_failures),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"inner training run {name} failed") from result.error


def _remember_placement_group(key: str) -> None:
    """Rank 0 of a multi-worker trial: store the worker group's placement group in Ray's KV store."""
    import ray
    from ray.experimental.internal_kv import _internal_kv_put

    pg = ray.util.get_current_placement_group()
    if pg is not None:
        _internal_kv_put(key, ray.cloudpickle.dumps(pg), overwrite=True)


def placement_group_key(experiment: str, trial_id: str) -> str:
    """Where rank 0 of a multi-worker trial records its worker placement group (Ray's KV store)."""
    return f"lgvq-tune-pg:{experiment}:{trial_id}"


def release_placement_group(key: str) -> None:
    """Remove the placement group recorded under ``key``, if any (see :func:`release_callback`)."""
    import ray
    from ray.experimental.internal_kv import _internal_kv_del, _internal_kv_get

    value = _internal_kv_get(key)
    if value:
        try:
            ray.util.remove_placement_group(ray.cloudpickle.loads(value))
        except Exception as err:  # already gone
            logger.debug("placement group %s: %s", key, err)
        _internal_kv_del(key)


def release_callback(experiment: str) -> Any:
    """A Tune callback (driver side) freeing the worker placement group of every finished multi-worker trial.

    When Tune stops a trial (ASHA, max_steps) it ends the trial's process while its ``TorchTrainer`` still
    runs; Ray Train's own clean-up of the worker placement group needs the State API (the dashboard,
    ``ray[default]``). Without it the CPUs stay reserved and the next multi-worker trial never starts.
    """
    from ray import tune

    class ReleaseTrainPlacementGroups(tune.Callback):
        def on_trial_complete(self, iteration, trials, trial, **info):
            release_placement_group(placement_group_key(experiment, trial.trial_id))

        def on_trial_error(self, iteration, trials, trial, **info):
            release_placement_group(placement_group_key(experiment, trial.trial_id))

    return ReleaseTrainPlacementGroups()


def finite(value: Any) -> bool:
    """True for a finite number."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
