"""The Ray Train side of the downstream task stages: a JSON-able job, the per-worker training loop with
checkpoints, and the driver — the tokenizers' pattern (``pipelines.ray_train``) for second-stage models.

The worker builds the task model and its training examples (``tasks.prepare``), wraps the model with
``ray.train.torch.prepare_model`` (DistributedDataParallel when there is more than one worker) and runs the
package's ``train_step`` in a loop of its own: AdamW with the package's parameter groups and learning-rate
schedule (``lgvq_downstream.tasks.common.loop``), but with the full training state — weights, optimiser,
step, losses, RNG — reported to Ray as a checkpoint every ``checkpoint_every`` steps. A restarted run (a
worker lost and retried under ``FailureConfig``, or the same run name started again) restores that state and
continues from its step. The batches of step *s* depend only on the seed and *s* (a seeded permutation per
epoch, each rank taking its slice), so a resumed run sees the data a run without interruption would have.

Retrieval has no step loop: for a run without LG heads its probe is fitted in one piece by the package
(``lgvq_core``'s ``fit_probe``, tens of steps), inside a worker all the same; a restart with the probe in the
checkpoint does not fit it again.

The worker function lives in this module (not in a test): Ray pickles it by reference.
"""

from __future__ import annotations

import hashlib
import json
import logging
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipelines.ray_runtime import worker_scratch

logger = logging.getLogger(__name__)

STATE = "state"  # lgvq_core training checkpoint (safetensors + JSON): weights, optimiser, step, RNG
LOSSES = "losses.json"  # per-step losses and learning rates so far, beside the state
EXPORT = "export"  # the trained task model as the package saves it (final report only)
HISTORY = "train-history.json"


@dataclass(frozen=True)
class TaskJob:
    """Everything a worker needs, as plain data (it crosses process boundaries as a dict).

    ``task``: caption | vqa | ground | retrieve; ``codes``/``run``: absolute paths of the code shards and of
    the tokenizer run that made them; ``config``: the task's lgvq_downstream config as a dict (its ``train``
    section is the budget); ``checkpoint_every``: steps between checkpoints.
    """

    task: str
    codes: str
    run: str
    config: dict[str, Any]
    checkpoint_every: int
    threads_per_worker: int

    def digest(self) -> str:
        """A short hash of the job and of the code that runs it (pipelines, lgvq_core, lgvq_data and
        lgvq_downstream sources): the Ray run name, so a restarted stage resumes the same run and a change
        starts a fresh one."""
        from pipelines.ray_train import source_digest

        payload = json.dumps(
            {"job": asdict(self), "code": source_digest(), "downstream": downstream_digest()}, sort_keys=True
        )
        return hashlib.sha256(payload.encode()).hexdigest()[:10]


def downstream_digest() -> str:
    """sha256 over the Python sources of lgvq_downstream (names and contents)."""
    import lgvq_downstream

    h = hashlib.sha256()
    root = Path(lgvq_downstream.__file__).parent
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root.parent)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def task_config(job: TaskJob) -> Any:
    from pipelines.downstream.params import task_config as parse

    return parse(job.task, job.config)


# ------------------------------------------------------------------------------------------ worker side


def epoch_order(n: int, seed: int, epoch: int) -> Any:
    """The permutation of ``n`` examples for ``epoch`` (a function of seed and epoch only)."""
    import torch

    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=generator)


def batch_indices(n: int, batch_size: int, world: int, rank: int, seed: int, step: int) -> list[int]:
    """The examples of ``rank`` at optimiser step ``step``: every step takes the next ``batch_size × world``
    examples of the epoch's permutation (a short last batch is dropped), ``rank`` its slice of them."""
    per_step = batch_size * world
    if n < per_step:  # tiny data: every rank sees the whole (re-permuted) set each step
        order = epoch_order(n, seed, step)
        return order[rank::world].tolist() or order.tolist()
    steps_per_epoch = n // per_step
    epoch, offset = divmod(step, steps_per_epoch)
    order = epoch_order(n, seed, epoch)
    start = offset * per_step + rank * batch_size
    return order[start : start + batch_size].tolist()


def make_optimizer(model: Any, loop: Any) -> Any:
    """AdamW as the package's loop builds it: weight decay on matrices only."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.ndim >= 2]
    no_decay = [p for p in params if p.ndim < 2]
    return torch.optim.AdamW(
        [{"params": decay, "weight_decay": loop.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=loop.lr,
        betas=loop.betas,
    )


def task_worker(config: dict[str, Any]) -> None:
    """Ray Train worker loop (all ranks). ``config`` is ``asdict(TaskJob)``."""
    from pipelines.models import torch_threads

    job = TaskJob(**config)
    torch_threads(job.threads_per_worker)
    if job.task == "retrieve":
        _probe_worker(job)
    else:
        _loop_worker(job)


def _restore(workdir: Path) -> Path | None:
    """Copy the latest reported checkpoint (if any) into ``workdir``; returns the copied folder."""
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    target = workdir / "restored"
    with checkpoint.as_directory() as folder:
        shutil.copytree(folder, target)
    logger.info("restored checkpoint %s", checkpoint.path)
    return target


def _report_to_ray(metrics: dict[str, Any], folder: Path | None) -> None:
    import ray.train
    from ray.train import Checkpoint

    ray.train.report(metrics, checkpoint=Checkpoint.from_directory(str(folder)) if folder else None)


def _loop_worker(job: TaskJob) -> None:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    with worker_scratch(f"lgvq-{job.task}-r{rank}-") as workdir:
        train_loop(
            job,
            workdir,
            _restore(workdir),
            _report_to_ray,
            rank=rank,
            world=world,
            wrap=ray.train.torch.prepare_model,
        )


def train_loop(
    job: TaskJob,
    workdir: Path,
    restored: Path | None,
    report: Any,
    *,
    rank: int = 0,
    world: int = 1,
    wrap: Any = None,
) -> None:
    """The training loop of one worker (see the module docstring), without Ray itself: ``restored`` is a
    checkpoint folder to resume from (or None); ``report(metrics, folder)`` is called by every rank at the
    same steps, with the checkpoint folder on rank 0 (None elsewhere); ``wrap`` moves or wraps the model (Ray
    Train's ``prepare_model``; None keeps it as it is). The exported model ends in ``workdir/export``."""
    import torch

    from lgvq_downstream.tasks.common.loop import lr_factor
    from pipelines import progress
    from pipelines.downstream import tasks

    config = task_config(job)
    loop = config.train
    prepared = tasks.prepare(job.task, config, Path(job.codes), Path(job.run))
    model = prepared.model
    start, losses, lrs = 0, [], []
    wrapped = wrap(model) if wrap is not None else model  # Ray: to the worker's device; DDP when world > 1
    optimizer = make_optimizer(model, loop)
    if restored is not None and (restored / STATE).is_dir():  # every rank restores the same state
        from lgvq_core.training.checkpoint import load_checkpoint

        state = load_checkpoint(restored / STATE, model=model, optimizers={"adamw": optimizer})
        record = json.loads((restored / STATE / LOSSES).read_text())
        start, losses, lrs = state.step, list(record["losses"]), list(record["lrs"])
    view = tasks.ModuleView(wrapped)
    params = [p for p in model.parameters() if p.requires_grad]
    n = len(prepared.dataset)
    if n == 0:
        raise ValueError(f"{job.task}: no training examples in {job.codes}")
    bar = progress.bar("train", f"{job.task} train", loop.steps) if rank == 0 else None
    if bar is not None and start:
        bar.update(start, note=f"resumed at step {start}")
    started = time.perf_counter()
    wrapped.train()
    if start >= loop.steps:
        logger.info("%s: checkpoint already at step %d of %d", job.task, start, loop.steps)
    for step in range(start, loop.steps):
        lr = loop.lr * lr_factor(step, loop)
        for group in optimizer.param_groups:
            group["lr"] = lr
        indices = batch_indices(n, loop.batch_size, world, rank, loop.seed, step)
        batch = prepared.collate([prepared.dataset[i] for i in indices])
        loss = prepared.step_fn(view, batch)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{job.task}: non-finite loss {float(loss)} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if loop.max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, loop.max_grad_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
        lrs.append(lr)
        done = step + 1
        if bar is not None:
            bar.update(done, note=f"loss {losses[-1]:.4f}")
        if done % loop.log_every == 0 and rank == 0:
            recent = losses[-loop.log_every :]
            logger.info(
                "%s step %d/%d loss %.4f (mean of last %d) lr %.2e",
                job.task,
                done,
                loop.steps,
                sum(recent) / len(recent),
                len(recent),
                lr,
            )
        if done % job.checkpoint_every == 0 and done < loop.steps:
            folder = _save_state(workdir, model, optimizer, done, losses, lrs) if rank == 0 else None
            report({"step": done, "loss": losses[-1]}, folder)
    seconds = time.perf_counter() - started
    wrapped.eval()
    if bar is not None:
        bar.finish(note=f"loss {losses[-1]:.4f}" if losses else None)
    final = {"step": len(losses), "loss": losses[-1] if losses else float("nan"), "train_seconds": seconds}
    folder = None
    if rank == 0:
        _save_state(workdir, model, optimizer, len(losses), losses, lrs, keep=False)
        model.cpu()
        tasks.save(job.task, model, workdir / EXPORT)
        history = {
            "task": job.task,
            "steps": len(losses),
            "resumed_from": start,
            "world_size": world,
            "train_seconds": seconds,
            "peak_memory_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "loss": losses,
            "lr": lrs,
            **prepared.info,
        }
        (workdir / EXPORT / HISTORY).write_text(json.dumps(history, indent=2, sort_keys=True) + "\n")
        folder = _checkpoint_folder(workdir)
    report(final, folder)


def _save_state(
    workdir: Path, model: Any, optimizer: Any, step: int, losses: list, lrs: list, keep: bool = True
) -> Any:
    """Write the training state to ``workdir/state`` (lgvq_core's safetensors + JSON training checkpoint,
    atomic) with the losses so far; the checkpoint folder when ``keep``."""
    from lgvq_core.training.checkpoint import TrainState, save_checkpoint

    target = save_checkpoint(
        workdir / STATE, model=model, state=TrainState(step=step), optimizers={"adamw": optimizer}
    )
    tmp = target / f".{LOSSES}.tmp"
    tmp.write_text(json.dumps({"losses": losses, "lrs": lrs}))
    tmp.replace(target / LOSSES)
    return _checkpoint_folder(workdir) if keep else None


def _checkpoint_folder(workdir: Path) -> Path:
    """A folder with ``workdir``'s state and export (what a checkpoint holds; the restored copy stays out)."""
    folder = workdir / "report"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    if (workdir / STATE).is_dir():
        shutil.copytree(workdir / STATE, folder / STATE)
    if (workdir / EXPORT).is_dir():
        shutil.copytree(workdir / EXPORT, folder / EXPORT)
    return folder


def _probe_worker(job: TaskJob) -> None:
    """Retrieval: LG heads need no training; a run without them gets probe heads fitted by the package."""
    import ray.train

    from lgvq_downstream.tasks.retrieval import RetrievalDataset, build, train

    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    config = task_config(job)
    with worker_scratch(f"lgvq-retrieve-r{rank}-") as workdir:
        restored = _restore(workdir)
        folder = None
        final: dict[str, Any] = {"step": config.probe_steps}
        if rank == 0:
            export = workdir / EXPORT
            if restored is not None and (restored / EXPORT).is_dir():
                shutil.copytree(restored / EXPORT, export)
                logger.info("retrieve: the probe of the checkpoint is kept")
            else:
                started = time.perf_counter()
                model = build(job.run, config)
                history: dict[str, Any] = {"heads": model.heads, "steps": 0}
                if not model.trained:
                    limit = config.probe_steps * config.probe_batch_size
                    train_set = RetrievalDataset(
                        job.codes, "train", seed=config.seed, limit=limit, on_error=config.on_error
                    )
                    history = train(model, train_set, config)
                history.update(task="retrieve", train_seconds=time.perf_counter() - started, resumed_from=0)
                model.save_pretrained(export)
                (export / HISTORY).write_text(json.dumps(history, indent=2, sort_keys=True) + "\n")
            final["train_seconds"] = json.loads((export / HISTORY).read_text()).get("train_seconds", 0.0)
            folder = _checkpoint_folder(workdir)
        _report_to_ray(final, folder)


# ------------------------------------------------------------------------------------------ driver side


def run(job: TaskJob, ray_params: Any, out: Path, name: str) -> dict[str, Any]:
    """Run ``job`` under a ``TorchTrainer`` (the project's, ``pipelines.ray_runtime.torch_trainer``); copies
    the exported model to ``out`` (replaced atomically) and returns the final metrics."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig

    from pipelines.ray_runtime import ensure_ray, storage_uri, torch_trainer

    ensure_ray(ray_params)
    workers = 1 if job.task == "retrieve" else ray_params.num_workers  # the probe is fitted in one piece
    trainer = torch_trainer(
        task_worker,
        train_loop_config=asdict(job),
        scaling_config=ScalingConfig(
            num_workers=workers,
            use_gpu=ray_params.use_gpu,
            resources_per_worker={"CPU": ray_params.cpus_per_worker},
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
        raise RuntimeError(f"downstream run {name} failed") from result.error
    if result.checkpoint is None:
        raise RuntimeError(f"downstream run {name} reported no checkpoint")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    with result.checkpoint.as_directory() as folder:
        shutil.copytree(Path(folder) / EXPORT, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return dict(result.metrics)
