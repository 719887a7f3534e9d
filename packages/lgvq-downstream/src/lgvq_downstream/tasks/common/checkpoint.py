"""Task checkpoints: ``transformer/`` (``CodeTransformer.save_pretrained``), ``heads.safetensors`` (every
other weight of the task model) and ``task.json`` (task name, task config, vocabularies, the tokenizer
fingerprint of the training codes, library version).

The folder is written to a temporary sibling and renamed into place, so a reader never sees half of one.
:func:`check_codes` refuses codes of another tokenizer than the checkpoint was trained on.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo
from lgvq_downstream.tasks.common.errors import CheckpointMismatchError
from lgvq_downstream.transformer import CodeTransformer

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "HEADS_NAME",
    "TASK_NAME",
    "TRANSFORMER_DIR",
    "check_codes",
    "read_checkpoint",
    "read_task_record",
    "write_checkpoint",
]

TASK_NAME = "task.json"
HEADS_NAME = "heads.safetensors"
TRANSFORMER_DIR = "transformer"
FORMAT = "lgvq-downstream-task"
FORMAT_VERSION = 1
_COMPARED = ("grid", "codebook_size", "config_sha256", "weights_sha256", "base")


def write_checkpoint(
    directory: str | os.PathLike[str], model: nn.Module, task: str, meta: dict[str, Any]
) -> Path:
    """Save ``model`` (holding a ``CodeTransformer`` as ``model.transformer``) and ``meta`` (JSON-able) as a
    ``task`` checkpoint in ``directory`` (replaced atomically)."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    transformer: CodeTransformer = model.transformer  # type: ignore[assignment]
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        transformer.save_pretrained(tmp / TRANSFORMER_DIR)
        heads = {
            k: v.detach().contiguous().cpu()
            for k, v in model.state_dict().items()
            if not k.startswith(f"{TRANSFORMER_DIR}.")
        }
        save_file(heads, str(tmp / HEADS_NAME), metadata={"format": FORMAT, "task": task})
        record = {"format": FORMAT, "format_version": FORMAT_VERSION, "task": task, **meta}
        (tmp / TASK_NAME).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_task_record(directory: str | os.PathLike[str], task: str) -> dict[str, Any]:
    """The ``task.json`` record of a ``task`` checkpoint folder; ``FileNotFoundError`` / ``ValueError`` naming
    the file when it is missing, malformed, of another format version or of another task."""
    path = Path(directory) / TASK_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (not a {task} checkpoint folder)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not a task checkpoint (field 'format' is not {FORMAT!r})")
    if record.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: unsupported format_version {record.get('format_version')!r}")
    if record.get("task") != task:
        raise ValueError(f"{path}: a {record.get('task')!r} checkpoint, not {task!r}")
    return record


def read_checkpoint(
    directory: str | os.PathLike[str], task: str, *, map_location: str = "cpu"
) -> tuple[dict[str, Any], CodeTransformer, dict[str, Tensor]]:
    """(``task.json`` record, the transformer, the other weights) of a ``task`` checkpoint; ``ValueError``
    naming the file when it is missing, malformed or of another task."""
    root = Path(directory)
    record = read_task_record(root, task)
    transformer = CodeTransformer.from_pretrained(root / TRANSFORMER_DIR, map_location=map_location)
    heads_path = root / HEADS_NAME
    if not heads_path.is_file():
        raise FileNotFoundError(f"{heads_path}: not found")
    return record, transformer, load_file(str(heads_path), device=map_location)


def _describe(info: TokenizerInfo) -> str:
    return f"{info.base} tokenizer config_sha256 {info.config_sha256[:12]}… ({info.path or 'in memory'})"


def check_codes(
    recorded: TokenizerInfo, dataset: CodeShardSet, checkpoint: str | os.PathLike[str] | None
) -> None:
    """Refuse ``dataset`` when its codes come from another tokenizer than ``recorded`` (the checkpoint's
    training codes): ``CheckpointMismatchError`` naming both tokenizers and every differing field."""
    found = dataset.tokenizer
    problems = [
        f"{name}: checkpoint {getattr(recorded, name)}, code shards {getattr(found, name)}"
        for name in _COMPARED
        if getattr(recorded, name) is not None
        and getattr(found, name) is not None
        and getattr(recorded, name) != getattr(found, name)
    ]
    if problems:
        where = checkpoint if checkpoint is not None else "the model"
        raise CheckpointMismatchError(
            f"{where} was trained on codes of the {_describe(recorded)}, but {dataset.root} holds codes of "
            f"the {_describe(found)}: " + "; ".join(problems)
        )
