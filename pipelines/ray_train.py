"""The Ray Train side of the ``train`` stage: a JSON-able job, the per-worker loop, and the TorchTrainer
driver.

The worker function lives here (in the installed package), not in a test or a script: Ray pickles it by
reference.
Each worker builds the model and a rank-aware shard reader, runs ``lgvq_core.training.loop.fit`` and forwards
its
reports to ``ray.train.report``; rank 0 attaches the latest full-state checkpoint, so a restarted run (a
worker
killed, ``FailureConfig`` retrying, or the same run name started again) resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.ray_runtime import worker_scratch

logger = logging.getLogger(__name__)

LAST = "last"  # lgvq_core.training.loop.LAST_CHECKPOINT: the full training state
EXPORT = "export"  # the trained model as save_run writes it (final report only)


@dataclass(frozen=True)
class TrainJob:
    """Everything a worker needs, as plain data (it crosses process boundaries as a dict)."""

    base: str
    lg: bool
    shards: str
    image_size: int
    batch_size: int
    loader_workers: int
    threads_per_worker: int
    model: dict[str, Any]  # ModelParams as a dict
    guidance: dict[str, Any]  # GuidanceParams as a dict
    weights: dict[str, float]  # alpha/beta/gamma overriding guidance.config.weights
    vocabulary: dict[str, Any]  # VocabularyParams as a dict
    loop: dict[str, Any]  # lgvq_core TrainConfig as a dict (checkpoint_dir is set per worker)
    seed: int
    val_from_train: float = 0.0  # > 0: val carved out of train (pipelines.splits), train loses those rows
    split_seed: int = 0

    def digest(self) -> str:
        """A short hash of the job and of the code that runs it, used in the Ray run name: the same job on the
        same code is the same run, so a restarted stage resumes it; a code change starts a fresh run."""
        payload = json.dumps({"job": asdict(self), "code": source_digest()}, sort_keys=True)
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


def source_digest() -> str:
    """sha256 over the Python sources of lgvq_core, lgvq_data and pipelines (names and contents)."""
    import lgvq_core
    import lgvq_data

    h = hashlib.sha256()
    roots = [
        Path(lgvq_core.__file__).parent,
        Path(lgvq_data.__file__).parent,
        Path(__file__).resolve().parent,
    ]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            h.update(str(path.relative_to(root.parent)).encode())
            h.update(path.read_bytes())
    return h.hexdigest()


def build_trainable(job: TrainJob, device: Any) -> tuple[Any, Any, dict[str, Any]]:
    """(model, discriminator or None, metadata): the tokenizer, wrapped in ``LanguageGuided`` when
    ``job.lg``."""
    from lgvq_core.models.builders import build_discriminator
    from pipelines.models import GuidanceParams, ModelParams, VocabularyParams, build_base, guidance_config
    from pipelines.params import from_mapping
    from pipelines.text import load_encoder, training_captions, vqct_word_spec

    model_params = from_mapping(ModelParams, job.model, "model")
    guidance_params = from_mapping(GuidanceParams, job.guidance, "guidance")
    text_encoder = None
    if job.lg or job.base == "vqct":
        text_encoder = load_encoder(guidance_params, guidance_config(guidance_params))
    spec = None
    if job.base == "vqct":
        spec = vqct_word_spec(
            Path(job.shards), from_mapping(VocabularyParams, job.vocabulary, "vqct"), text_encoder
        )
    base = build_base(job.base, model_params, vqct_spec=spec)
    model = base
    meta: dict[str, Any] = {"base": job.base, "lg": job.lg, "image_size": job.image_size, "seed": job.seed}
    if job.lg:
        from lgvq_core.guidance.language_guided import LanguageGuided

        config = guidance_config(guidance_params, job.weights)
        model = LanguageGuided(base, text_encoder, config)
        if config.prediction_vocabulary == "captions":
            model.set_prediction_vocabulary(training_captions(Path(job.shards)))
        meta.update(guidance=config.to_dict(), text_encoder=guidance_params.text_encoder)
    discriminator = build_discriminator(base.config)
    model.to(device)
    if discriminator is not None:
        discriminator.to(device)
    return model, discriminator, meta


class EpochBatches:
    """Re-iterable batches: each pass selects the next epoch of the rank-aware dataset."""

    def __init__(self, loader: Any, dataset: Any, first_epoch: int = 0):
        self.loader, self.dataset, self.epoch = loader, dataset, first_epoch

    def __iter__(self):
        self.dataset.set_epoch(self.epoch)
        self.epoch += 1
        return iter(self.loader)


def make_loader(
    job: TrainJob, split: str, rank: int, world_size: int, *, shuffle: bool = True
) -> EpochBatches:
    from torch.utils.data import DataLoader

    from lgvq_data.dataset import ShardIterableDataset, collate

    dataset = ShardIterableDataset(
        job.shards,
        split,
        image_size=job.image_size,
        seed=job.seed,
        annotations=False,
        shuffle=shuffle,
        rank=rank,
        world_size=world_size,
        even=True,
        val_from_train=job.val_from_train,
        split_seed=job.split_seed,
    )
    loader = DataLoader(
        dataset, batch_size=job.batch_size, collate_fn=collate, num_workers=job.loader_workers, drop_last=True
    )
    return EpochBatches(loader, dataset)


def train_worker(config: dict[str, Any]) -> None:
    """Ray Train worker loop (all ranks). ``config`` is ``asdict(TrainJob)``."""
    import ray.train
    import ray.train.torch
    import torch

    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import Callback, fit
    from pipelines import progress
    from pipelines.models import save_run, torch_threads

    job = TrainJob(**config)
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    torch_threads(job.threads_per_worker)
    device = ray.train.torch.get_device()
    torch.manual_seed(job.seed)  # the same initial weights on every rank and in every run of this job
    model, discriminator, meta = build_trainable(job, device)
    with worker_scratch(scratch_prefix(job, rank)) as workdir:
        checkpoint = ray.train.get_checkpoint()
        if checkpoint is not None:
            with checkpoint.as_directory() as restored:
                if (Path(restored) / LAST).is_dir():
                    shutil.copytree(Path(restored) / LAST, workdir / LAST)
                    logger.info("rank %d: restored checkpoint %s", rank, checkpoint.path)
        loop = TrainConfig.from_dict({**job.loop, "checkpoint_dir": str(workdir)})
        pending: list[Path] = []
        # Rank 0 feeds the console's progress bar when one follows the stage; otherwise its tqdm bar.
        bar = progress.bar("train", "train", loop.steps) if rank == 0 and progress.active() else None

        class ReportToRay(Callback):
            def on_step_end(self, state, metrics):
                if bar is not None:
                    bar.update(state.step)

            def on_checkpoint(self, state, path):  # rank 0 only
                pending.append(Path(path))

            def on_report(self, state, metrics):  # every rank, same steps
                ckpt = _checkpoint_of(workdir) if rank == 0 and pending else None
                pending.clear()
                if bar is not None and "reconstruction" in metrics:
                    bar.update(state.step, note=f"reconstruction {metrics['reconstruction']:.4f}")
                ray.train.report({**metrics, "epoch": state.epoch}, checkpoint=ckpt)

        started = time.perf_counter()
        result = fit(
            model,
            make_loader(job, "train", rank, world),
            loop,
            discriminator=discriminator,
            callbacks=[ReportToRay()],
            progress=rank == 0 and bar is None,
        )
        if bar is not None:
            bar.finish()
        seconds = time.perf_counter() - started
        final = dict(result.history[-1]) if result.history else {}
        final.update(epoch=result.state.epoch, train_seconds=seconds, step=result.state.step)
        ckpt = None
        if rank == 0:
            meta.update(
                steps=result.state.step,
                train_seconds=seconds,
                world_size=world,
                skipped_nonfinite=result.state.skipped_nonfinite,
                history=result.history,
            )
            save_run(model.cpu(), workdir / EXPORT, meta)
            ckpt = _checkpoint_of(workdir)
        ray.train.report(final, checkpoint=ckpt)


def scratch_prefix(job: TrainJob, rank: int) -> str:
    """Name prefix of a worker's local checkpoint folder (in the system temp folder) for ``job``."""
    return f"lgvq-train-{job.digest()}-r{rank}-"


def _checkpoint_of(workdir: Path):
    """A Ray checkpoint of ``workdir`` (``last/`` and, at the end, ``export/``); Ray copies it to storage."""
    from ray.train import Checkpoint

    return Checkpoint.from_directory(str(workdir))


def run(job: TrainJob, ray_params: Any, out: Path, name: str) -> dict[str, Any]:
    """Run ``job`` under a ``TorchTrainer``; copies the exported model to ``out``; returns the final
    metrics."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    from pipelines.ray_runtime import ensure_ray, storage_uri, torch_trainer

    ensure_ray(ray_params)
    resources = {"CPU": ray_params.cpus_per_worker}
    trainer = torch_trainer(
        train_worker,
        train_loop_config=asdict(job),
        scaling_config=ScalingConfig(
            num_workers=ray_params.num_workers, use_gpu=ray_params.use_gpu, resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=name,
            storage_path=storage_uri(ray_params),
            failure_config=FailureConfig(max_failures=ray_params.max_failures),
            checkpoint_config=CheckpointConfig(num_to_keep=2),
        ),
    )
    result = trainer.fit()
    if result.error is not None:
        raise RuntimeError(f"training run {name} failed") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"training run {name} reported no checkpoint")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    with result.checkpoint.as_directory() as d:
        shutil.copytree(Path(d) / EXPORT, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return dict(result.metrics)
