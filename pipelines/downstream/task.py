"""What every downstream task stage does (``caption``, ``vqa``, ``ground``, ``retrieve``: one module each,
``main`` = :func:`run_stage`).

``python -m pipelines.downstream.<task> --run models/<run> --codes data/codes/<run>
--out models/downstream/<task>-<run> --metrics reports/downstream/<task>-<run>.json
--figure reports/downstream/<task>-<run>.png``

1. Train the task's second-stage model on the **train** split of the code shards under Ray Train
   (``ray_task``: checkpoints every ``checkpoint_every`` steps, a restarted stage resumes its run). Retrieval
   with a run's own LG heads trains nothing; a run without LG heads gets a probe fitted (``fit_probe``).
2. Evaluate it on the **test** split, next to the task's trivial baseline and the shuffled-codes control. No
   setting is chosen on test (nor on val: the budgets are fixed in ``params.yaml``), and the checkpoint
   evaluated is the last step's.
3. Write the checkpoint (``--out``: the package's ``save_pretrained`` layout + ``train-history.json``), the
   evaluation report (``--metrics``: the package's report without the code grids, plus a ``pipeline`` record
   of the run, the budget and the timings) and the examples figure (``--figure``).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from pipelines import progress
from pipelines.downstream.params import SECTION_CLASS, parse_run, task_config
from pipelines.params import StageParams
from pipelines.ray_runtime import RayParams
from pipelines.stage import parser, setup_logging, write_json

logger = logging.getLogger(__name__)

LG_HEADS_FILE = "guidance.safetensors"  # a run trained with LG keeps its heads beside base/


def stage_params(task: str) -> tuple[str, ...]:
    """The params sections the stage of ``task`` reads (its module's ``PARAMS``)."""
    return (f"downstream.{task}", "ray")


def build_parser(task: str):
    p = parser(
        f"Stage {task}@<run>: train the {task} model on a run's codes under Ray Train, evaluate on test."
    )
    p.add_argument(
        "--run", type=Path, required=True, help="tokenizer run folder (models/<base>-<off|on>-s<seed>)"
    )
    p.add_argument("--codes", type=Path, required=True, help="its code shards (data/codes/<run>)")
    p.add_argument("--out", type=Path, required=True, help="task checkpoint folder to write")
    p.add_argument("--metrics", type=Path, required=True, help="evaluation report (JSON) to write")
    p.add_argument("--figure", type=Path, required=True, help="examples PNG to write")
    return p


def make_job(task: str, sp: StageParams, run: Path, codes: Path):
    """(TaskJob, stage settings, task config, RayParams) from the declared params sections; a bad value
    fails here, before Ray starts."""
    from pipelines.downstream.ray_task import TaskJob

    settings = sp.section(f"downstream.{task}", SECTION_CLASS[task])
    ray_params = sp.section("ray", RayParams)
    config = task_config(task, settings.config)
    every = getattr(settings, "checkpoint_every", 1)
    if every < 1:
        raise ValueError(f"downstream.{task}.checkpoint_every must be ≥ 1, got {every}")
    if config.num_examples < 1:  # the stage's figure is a DVC output
        raise ValueError(f"downstream.{task}.config.num_examples must be ≥ 1 (the examples PNG), got 0")
    job = TaskJob(
        task=task,
        codes=str(codes.resolve()),
        run=str(run.resolve()),
        config=config.to_dict(),
        checkpoint_every=every,
        threads_per_worker=settings.threads or max(1, int(ray_params.cpus_per_worker)),
    )
    return job, settings, config, ray_params


def _train(task: str, job: Any, config: Any, ray_params: RayParams, run: Path, out: Path) -> dict[str, Any]:
    """Train (or, for retrieval with LG heads, only export) into ``out``; returns the training record."""
    from pipelines.downstream import ray_task

    if task == "retrieve" and (run / LG_HEADS_FILE).is_file():
        from lgvq_downstream.tasks.retrieval import build

        started = time.perf_counter()
        model = build(run, config)
        tmp = out.with_name(out.name + ".tmp")
        model.save_pretrained(tmp)
        history = {"task": task, "heads": model.heads, "steps": 0, "resumed_from": 0, "train_seconds": 0.0}
        (tmp / ray_task.HISTORY).write_text(json.dumps(history, indent=2, sort_keys=True) + "\n")
        import shutil

        shutil.rmtree(out, ignore_errors=True)
        tmp.rename(out)
        logger.info(
            "retrieve: %s has LG heads; nothing to train (%.1f s)", run, time.perf_counter() - started
        )
        return {**history, "ray_run": None}
    name = f"downstream-{task}-{run.name}-{job.digest()}"
    ray_task.run(job, ray_params, out, name)
    history = json.loads((out / ray_task.HISTORY).read_text())
    return {**history, "ray_run": name}


def _without_grids(report: dict[str, Any]) -> dict[str, Any]:
    """The report without the examples' code grids (they are in the figure)."""
    out = dict(report)
    if isinstance(out.get("examples"), list):
        out["examples"] = [{k: v for k, v in e.items() if k != "indices"} for e in out["examples"]]
    return out


def _training_record(history: dict[str, Any]) -> dict[str, Any]:
    losses = history.get("loss") or []
    record = {k: v for k, v in history.items() if k not in ("loss", "lr")}
    if losses:
        record.update(loss_first=losses[0], loss_last=losses[-1])
    return record


def headline(task: str, report: dict[str, Any]) -> str:
    """The key figure of a task stage for the console, beside its baseline."""
    from pipelines.downstream.layout import headline_numbers

    return headline_numbers(task, report)


def run_stage(task: str, argv: list[str] | None = None) -> int:
    """The stage ``<task>@<run>`` (see the module docstring)."""
    args = build_parser(task).parse_args(argv)
    setup_logging(args.log_level)
    started = time.perf_counter()
    base, lg, seed = parse_run(args.run.name)
    sp = StageParams(args.params, stage_params(task))
    job, settings, config, ray_params = make_job(task, sp, args.run, args.codes)
    from lgvq_downstream.codes import load_code_manifest

    # Codes of another tokenizer than the run's are refused here, before Ray starts (both values named).
    load_code_manifest(args.codes, require_complete=True).assert_matches(args.run)
    history = _train(task, job, config, ray_params, args.run, args.out)
    import torch

    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
    from pipelines.downstream import tasks
    from pipelines.models import torch_threads

    torch_threads(job.threads_per_worker)
    device = "cuda" if ray_params.use_gpu and torch.cuda.is_available() else "cpu"
    parts = progress.Parts("evaluate", f"{task} evaluate", ["evaluate", "figure"])
    parts.begin("evaluate")
    evaluated = time.perf_counter()
    model = tasks.load(task, args.out, device)
    report = tasks.evaluate(task, model, args.codes, settings, config)
    eval_seconds = time.perf_counter() - evaluated
    parts.begin("figure")
    figure = None
    if report.get("examples"):
        decoder = load_tokenizer(args.run).model.to(device)
        figure = str(tasks.figure(task, report, args.figure, decoder))
    parts.finish()
    report = _without_grids(report)
    report["pipeline"] = {
        "stage": f"{task}@{args.run.name}",
        "task": task,
        "run": args.run.name,
        "base": base,
        "lg": lg,
        "seed": seed,
        "codes": str(args.codes),
        "checkpoint": str(args.out),
        "figure": figure,
        "config": config.to_dict(),
        "train": _training_record(history),
        "eval_seconds": eval_seconds,
        "stage_seconds": time.perf_counter() - started,
        "device": device,
        "protocol": "trained on the train split of the code shards, evaluated once on the test split; "
        "budgets fixed in params.yaml (chosen on the val split, never on test); the last step's checkpoint",
    }
    write_json(args.metrics, report)
    text = headline(task, report)
    logger.info(
        "%s@%s: %s (%.0f s) -> %s",
        task,
        args.run.name,
        text,
        report["pipeline"]["stage_seconds"],
        args.metrics,
    )
    progress.headline(text)
    return 0
