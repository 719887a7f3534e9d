"""Stage ``generate@<run>``: one code generator on a run's codes, evaluated on the four generation tasks —
unconditional generation, image completion, semantic image synthesis (mask → image) and text-to-image.

``python -m pipelines.downstream.generate --run models/<run> --codes data/codes/<run> --judges models/judges
--out models/downstream/generate-<run> --metrics reports/downstream/generate-<run>.json
--figures reports/downstream/generate-<run>``

1. Train the generator (``downstream.generate.config``, a ``GenerationConfig``: MaskGIT with the text and
   mask conditions, each dropped independently, so one model samples unconditionally, completes, synthesises
   from masks and draws from captions) on the **train** split under Ray Train (``ray_task``: checkpoints,
   resume) — the four tasks share it, so one stage trains it once instead of four.
2. Evaluate the tasks of ``downstream.generate.tasks`` on the **test** split
   (``lgvq_downstream.tasks.generation.evaluate``): Fréchet distance to the real test images beside the
   tokenizer's reconstructions and the unigram baseline; condition consistency from the scene judges of the
   ``judges`` stage beside the real images and the shuffled-condition control; NLL against ln K.
3. Write the checkpoint, the report (with a ``pipeline`` record: run, budget, timings, peak memory) and one
   sample-grid PNG per task under ``--figures``.
"""

from __future__ import annotations

import logging
import resource
import time
from pathlib import Path
from typing import Any

from pipelines import progress
from pipelines.downstream.params import parse_run
from pipelines.downstream.task import _train, _training_record, make_job, stage_params
from pipelines.params import StageParams
from pipelines.stage import parser, setup_logging, write_json

TASK = "generate"
PARAMS = stage_params(TASK)
logger = logging.getLogger(__name__)


def peak_memory_mib() -> float:
    """Peak resident memory of this process (MiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def headline(report: dict[str, Any]) -> str:
    """The console line: FD of each task's samples beside the reconstructions, and the consistency scores."""
    from pipelines.downstream.report_generation import headline_numbers

    return headline_numbers(report)


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="tokenizer run folder (models/<run>)")
    p.add_argument("--codes", type=Path, required=True, help="its code shards (data/codes/<run>)")
    p.add_argument("--judges", type=Path, help="scene judges folder (stage judges); none: FD only")
    p.add_argument("--out", type=Path, required=True, help="generator checkpoint folder to write")
    p.add_argument("--metrics", type=Path, required=True, help="evaluation report (JSON) to write")
    p.add_argument("--figures", type=Path, required=True, help="folder for one sample-grid PNG per task")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    started = time.perf_counter()
    base, lg, seed = parse_run(args.run.name)
    sp = StageParams(args.params, PARAMS)
    job, settings, config, ray_params = make_job(TASK, sp, args.run, args.codes)
    for task in settings.tasks:
        if not config.supports(task):
            raise ValueError(
                f"downstream.generate.tasks: {task} needs a condition the generator is not trained with "
                f"(config.conditions {list(config.conditions)})"
            )
    from lgvq_downstream.codes import load_code_manifest

    load_code_manifest(args.codes, require_complete=True).assert_matches(args.run)
    history = _train(TASK, job, config, ray_params, args.run, args.out)

    import torch

    from lgvq_downstream.codes import CodeShardSet
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
    from lgvq_downstream.tasks.generation import (
        GenerationModel,
        SampleScorer,
        evaluate,
        reference_images,
        save_task_figures,
    )
    from pipelines.models import torch_threads

    torch_threads(job.threads_per_worker)
    device = "cuda" if ray_params.use_gpu and torch.cuda.is_available() else "cpu"
    parts = progress.Parts("evaluate", "generate evaluate", ["prepare", *settings.tasks, "figures"])
    parts.begin("prepare")
    evaluated = time.perf_counter()
    model = GenerationModel.from_pretrained(args.out, map_location=device)
    dataset = CodeShardSet(args.codes, split=settings.eval_split)
    decoder = load_tokenizer(args.run).model.to(device)
    ids = [str(dataset[i]["id"]) for i in range(len(dataset))]
    real = reference_images(dataset, ids)
    scorer = SampleScorer(
        real,
        fid_weights=settings.fid_weights,
        judges=args.judges,
        reference_split=settings.eval_split,
        fd_size=settings.fd_size,
    )

    def on_task(task: str) -> None:
        parts.begin(task)

    report = evaluate(
        model,
        dataset,
        decoder,
        real,
        tasks=tuple(settings.tasks),
        scorer=scorer,
        progress=False,
        on_task=on_task,
    )
    eval_seconds = time.perf_counter() - evaluated
    parts.begin("figures")
    figures = save_task_figures(report, args.figures, decoder, real_by_id=dict(zip(ids, real, strict=True)))
    parts.finish()
    for task_report in report["tasks"].values():
        task_report.pop("examples", None)
    report.pop("ids", None)
    report["pipeline"] = {
        "stage": f"{TASK}@{args.run.name}",
        "run": args.run.name,
        "base": base,
        "lg": lg,
        "seed": seed,
        "codes": str(args.codes),
        "checkpoint": str(args.out),
        "judges": str(args.judges) if args.judges else None,
        "figures": {task: str(path) for task, path in figures.items()},
        "config": config.to_dict(),
        "train": _training_record(history),
        "eval_seconds": eval_seconds,
        "stage_seconds": time.perf_counter() - started,
        "peak_memory_mib": peak_memory_mib(),
        "device": device,
        "protocol": "generator trained on the train split of the code shards, evaluated once on the test "
        "split; budgets and sampling settings fixed in params.yaml (never tuned on test)",
    }
    write_json(args.metrics, report)
    text = headline(report)
    logger.info(
        "%s@%s: %s (%.0f s) -> %s",
        TASK,
        args.run.name,
        text,
        report["pipeline"]["stage_seconds"],
        args.metrics,
    )
    progress.headline(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
