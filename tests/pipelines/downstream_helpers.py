"""A tiny pipeline layout for the downstream stage tests: the tiny shards of ``pipeline_helpers``, two saved
tokenizer runs (``vqgan-off-s0`` and ``vqgan-on-s0``, untrained, saved the way the train stage saves them) and
a params file whose ``downstream`` section has budgets of a few steps."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pipeline_helpers import TINY_MODEL, tiny_params, tiny_shards

RUNS = ("vqgan-off-s0", "vqgan-on-s0")
CONTEXT = 16
_TRAIN = {"steps": 4, "batch_size": 8, "lr": 1.0e-3, "warmup_steps": 1, "log_every": 2, "seed": 0}
_SMALL = {"width": 32, "layers": 1, "heads": 2, "dropout": 0.0, "num_examples": 2}
TINY_DOWNSTREAM: dict[str, Any] = {
    "runs": list(RUNS),
    "tasks": {task: list(RUNS) for task in ("caption", "vqa", "ground", "retrieve", "generate")},
    "codes": {"batch_size": 16, "device": "cpu", "threads": 1},
    "caption": {
        "checkpoint_every": 2,
        "eval_batch_size": 16,
        "threads": 1,
        "config": {
            **_SMALL,
            "mapper": "mlp",
            "mlp_pool": 2,
            "prefix_length": 2,
            "beam_size": 1,
            "metrics": ["bleu", "rouge", "cider"],  # METEOR's JVM start is covered in tests/downstream
            "train": _TRAIN,
        },
    },
    "vqa": {
        "checkpoint_every": 2,
        "eval_batch_size": 64,
        "wups": False,
        "threads": 1,
        "config": {**_SMALL, "train": _TRAIN},
    },
    "ground": {
        "checkpoint_every": 2,
        "eval_batch_size": 64,
        "threads": 1,
        "config": {**_SMALL, "train": _TRAIN},
    },
    "retrieve": {
        "threads": 1,
        "config": {"probe_steps": 2, "probe_batch_size": 4, "num_examples": 2, "context_length": CONTEXT},
    },
    "judges": {"steps": 2, "batch_size": 8, "lr": 3.0e-3, "seed": 0, "eval_split": "test", "threads": 1},
    "generate": {
        "checkpoint_every": 2,
        "threads": 1,
        "tasks": ["unconditional", "completion", "semantic", "text_to_image"],
        "fid_weights": None,
        "fd_size": 32,
        "config": {
            **_SMALL,
            "conditions": ["text", "mask"],
            "max_text_tokens": CONTEXT,
            "maskgit_steps": 2,
            "sampling": {"num_samples": 4, "batch_size": 4, "guidance_scale": 2.0},
            "train": _TRAIN,
        },
    },
}


def tiny_downstream(overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """A copy of :data:`TINY_DOWNSTREAM` with ``overrides`` merged in."""
    from pipelines.models import merge_mappings

    return merge_mappings(copy.deepcopy(TINY_DOWNSTREAM), overrides or {})


def save_runs(root: Path) -> Path:
    """``root/models/vqgan-off-s0`` (a tokenizer) and ``root/models/vqgan-on-s0`` (a tokenizer with LG heads
    and the MiniLM text encoder), untrained, as ``pipelines.train`` saves them."""
    import torch

    from lgvq_core.guidance.config import GuidanceConfig
    from lgvq_core.guidance.language_guided import LanguageGuided
    from lgvq_core.guidance.text_encoder import default_text_encoder
    from pipelines.models import ModelParams, build_base, save_run

    for name in RUNS:
        lg = "-on-" in name
        torch.manual_seed(int(lg))  # two different tokenizers
        model = build_base("vqgan", ModelParams(**TINY_MODEL))
        meta: dict[str, Any] = {"base": "vqgan", "lg": lg, "image_size": 16, "seed": 0, "steps": 0}
        if lg:
            config = GuidanceConfig(mode="fixed", context_length=CONTEXT)
            model = LanguageGuided(model, default_text_encoder(CONTEXT), config)
            meta.update(guidance=config.to_dict(), text_encoder="minilm")
        save_run(model, root / "models" / name, meta)
    return root / "models"


def layout(root: Path, downstream: dict[str, Any] | None = None) -> dict[str, Path]:
    """Shards, the two runs and a params file (tiny ``ray`` with storage in ``root``) under ``root``."""
    shards = tiny_shards(root)
    models = save_runs(root)
    params = tiny_params(root, {"downstream": downstream or tiny_downstream()})
    return {"root": root, "shards": shards, "models": models, "params": params}
