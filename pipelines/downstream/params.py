"""Section ``downstream`` of ``params.yaml``: which tokenizer runs get code shards, which task runs on which
of them, and each task's settings.

Every stage reads only its own subsection, so a change to one task's budget reruns that task's stages and
nothing else: ``codes@<run>`` reads ``downstream.codes``; ``<task>@<run>`` reads ``downstream.<task>`` (and
``ray``); the report reads ``downstream.tasks``. ``downstream.runs`` and ``downstream.tasks`` are read by
``dvc.yaml`` itself (the stage matrices).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

TASKS: tuple[str, ...] = ("caption", "vqa", "ground", "retrieve", "generate")
# Stage name → the task's name inside lgvq_downstream (its checkpoints' ``task`` field).
PACKAGE_TASK = {
    "caption": "captioning",
    "vqa": "vqa",
    "ground": "grounding",
    "retrieve": "retrieval",
    "generate": "generation",
}
RUN_NAME = re.compile(r"^(?P<base>[a-z0-9]+)-(?P<lg>on|off)-s(?P<seed>\d+)$")


@dataclass(frozen=True)
class SelectionParams:
    """``downstream.runs`` (runs of the ``train`` stage that get code shards, ``<base>-<off|on>-s<seed>``) and
    ``downstream.tasks`` (task → the runs it is trained and evaluated on; ``[]`` switches a task off)."""

    runs: list[str]
    tasks: dict[str, list[str]]

    def check(self) -> None:
        """Every run name parses and every task run has code shards; only known tasks."""
        for run in self.runs:
            parse_run(run)
        unknown = sorted(set(self.tasks) - set(TASKS))
        if unknown:
            raise ValueError(f"downstream.tasks: unknown task(s) {unknown}; expected {list(TASKS)}")
        for task, runs in self.tasks.items():
            missing = [r for r in runs if r not in self.runs]
            if missing:
                raise ValueError(
                    f"downstream.tasks.{task}: run(s) {missing} have no code shards (not in downstream.runs)"
                )


@dataclass(frozen=True)
class CodesParams:
    """``downstream.codes``: images per encoder forward pass, the torch device of the frozen tokenizer and its
    CPU threads (0 = torch's default)."""

    batch_size: int
    device: str
    threads: int = 0


@dataclass(frozen=True)
class TaskParams:
    """``downstream.caption`` / ``downstream.ground``.

    ``config``: the task's lgvq_downstream config (``CaptionConfig`` / ``GroundingConfig`` fields, checked
    strictly there; keys left out take the package defaults), its ``train`` section being the second-stage
    budget (its ``device`` and ``num_workers`` are not used: Ray Train places the worker, and the stage's loop
    batches in the worker). ``checkpoint_every``: steps between Ray Train checkpoints (the last step always
    gets one).
    ``eval_batch_size``: images (captioning) or expressions (grounding) per forward pass at evaluation.
    ``threads``: torch threads of each Ray worker and of the evaluation (0 = ``ray.cpus_per_worker``).
    ``eval_split``: the split the model is evaluated on once (``test``; COCO shards, which have train and val
    only, use ``val``: COCO-QA's and RefCOCO's test parts are val2014 images). Training uses ``train``.
    """

    config: dict[str, Any]
    checkpoint_every: int
    eval_batch_size: int
    threads: int = 0
    eval_split: str = "test"


@dataclass(frozen=True)
class VQAParams:
    """``downstream.vqa``: as :class:`TaskParams`, plus ``wups`` (WUPS@0.9/@0.0 through WordNet; reported as
    absent where WordNet is not installed)."""

    config: dict[str, Any]
    checkpoint_every: int
    eval_batch_size: int
    wups: bool
    threads: int = 0
    eval_split: str = "test"


@dataclass(frozen=True)
class RetrieveParams:
    """``downstream.retrieve``: ``config`` = ``RetrievalConfig`` fields (R@k, caption seed, the probe budget
    of runs without LG heads); ``threads`` and ``eval_split`` as in :class:`TaskParams`."""

    config: dict[str, Any]
    threads: int = 0
    eval_split: str = "test"


@dataclass(frozen=True)
class GenerateParams:
    """``downstream.generate``: ``config`` = ``GenerationConfig`` fields (one generator per run serves every
    task of ``tasks``; its ``sampling`` section is the evaluation protocol); ``tasks``: which of
    unconditional, completion, semantic, text_to_image are evaluated; ``fid_weights``: null = the offline
    FD-EffLite0, a path = FID from that Inception weights file; ``fd_size``: EfficientNet-Lite0's input side;
    ``checkpoint_every``, ``threads`` and
    ``eval_split`` as in :class:`TaskParams`."""

    config: dict[str, Any]
    checkpoint_every: int
    tasks: list[str]
    fid_weights: str | None = None
    fd_size: int = 224
    threads: int = 0
    eval_split: str = "test"


SECTION_CLASS: dict[str, type] = {
    "caption": TaskParams,
    "vqa": VQAParams,
    "ground": TaskParams,
    "retrieve": RetrieveParams,
    "generate": GenerateParams,
}


def parse_run(name: str) -> tuple[str, bool, int]:
    """``"vqgan-on-s0"`` → ``("vqgan", True, 0)``; a name of another form raises ``ValueError``."""
    match = RUN_NAME.match(name)
    if match is None:
        raise ValueError(f"run name {name!r} is not <base>-<off|on>-s<seed> (e.g. vqgan-on-s0)")
    return match["base"], match["lg"] == "on", int(match["seed"])


def task_config(task: str, data: dict[str, Any]) -> Any:
    """The lgvq_downstream config of ``task`` from ``downstream.<task>.config`` (strict, defaults filled)."""
    path = f"downstream.{task}.config"
    if task == "caption":
        from lgvq_downstream.tasks.captioning import CaptionConfig as cls
    elif task == "vqa":
        from lgvq_downstream.tasks.vqa import VQAConfig as cls
    elif task == "ground":
        from lgvq_downstream.tasks.grounding import GroundingConfig as cls
    elif task == "retrieve":
        from lgvq_downstream.tasks.retrieval import RetrievalConfig as cls
    elif task == "generate":
        from lgvq_downstream.tasks.generation import GenerationConfig as cls
    else:
        raise ValueError(f"unknown task {task!r}; expected one of {list(TASKS)}")
    return cls.from_dict(dict(data), fill_defaults=True, path=path)
