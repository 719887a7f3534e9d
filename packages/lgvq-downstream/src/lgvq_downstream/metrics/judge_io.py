"""Save and load the scene judges: one folder with ``attribute_judge.safetensors``,
``segmenter_judge.safetensors`` and ``judges.json`` (format, each judge's config, weights file and sha256,
and whatever ``record`` the caller adds — ``fit_scene_judges`` puts the held-out accuracies and the training
settings there). The folder is written to a temporary sibling and renamed into place."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file
from torch import nn

from lgvq_downstream.metrics.judge_nets import (
    AttributeJudgeConfig,
    SceneAttributeJudge,
    SceneSegmenterJudge,
    SegmenterJudgeConfig,
)

__all__ = ["JUDGES_JSON", "LoadedJudges", "load_judges", "save_judges"]

JUDGES_JSON = "judges.json"
FORMAT = "lgvq-scene-judges"
FORMAT_VERSION = 1
_FILES = {"attribute": "attribute_judge.safetensors", "segmenter": "segmenter_judge.safetensors"}


@dataclass
class LoadedJudges:
    """The judges of a folder (``None`` when it holds no such judge) and its ``judges.json`` record; unpacks
    as ``(attribute, segmenter)``."""

    attribute: SceneAttributeJudge | None
    segmenter: SceneSegmenterJudge | None
    record: dict[str, Any] = field(default_factory=dict)

    def __iter__(self) -> Iterator[SceneAttributeJudge | SceneSegmenterJudge | None]:
        """``attribute, segmenter = load_judges(folder)``."""
        return iter((self.attribute, self.segmenter))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _save_weights(model: nn.Module, path: Path, kind: str) -> str:
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(path), metadata={"format": FORMAT, "judge": kind})
    return _sha256(path)


def save_judges(
    directory: str | os.PathLike[str],
    attribute: SceneAttributeJudge | None = None,
    segmenter: SceneSegmenterJudge | None = None,
    record: dict[str, Any] | None = None,
) -> Path:
    """Write the given judges and ``record`` (JSON-able, e.g. held-out accuracies) to ``directory``,
    replacing it atomically. At least one judge is required."""
    if attribute is None and segmenter is None:
        raise ValueError("save_judges: no judge given")
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        entries: dict[str, Any] = {}
        for kind, judge in (("attribute", attribute), ("segmenter", segmenter)):
            if judge is None:
                continue
            sha = _save_weights(judge, tmp / _FILES[kind], kind)
            entries[kind] = {"config": judge.config.to_dict(), "weights": _FILES[kind], "sha256": sha}
        payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "judges": entries, **(record or {})}
        (tmp / JUDGES_JSON).write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
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


def load_judges(directory: str | os.PathLike[str], map_location: str = "cpu") -> LoadedJudges:
    """The judges saved by :func:`save_judges` (eval mode); ``FileNotFoundError`` / ``ValueError`` naming the
    file when ``judges.json`` or a weights file is missing, of another format, or fails its sha256."""
    root = Path(directory)
    path = root / JUDGES_JSON
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found (not a scene-judges folder)")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    if record.get("format") != FORMAT:
        raise ValueError(f"{path}: format {record.get('format')!r}, expected {FORMAT!r}")
    if int(record.get("format_version", -1)) > FORMAT_VERSION:
        raise ValueError(f"{path}: format_version {record['format_version']} is newer than {FORMAT_VERSION}")
    judges: dict[str, nn.Module | None] = {"attribute": None, "segmenter": None}
    builders = {
        "attribute": lambda c: SceneAttributeJudge(AttributeJudgeConfig.from_dict(c)),
        "segmenter": lambda c: SceneSegmenterJudge(SegmenterJudgeConfig.from_dict(c)),
    }
    for kind, entry in record.get("judges", {}).items():
        if kind not in builders:
            raise ValueError(f"{path}: unknown judge {kind!r} (known: {sorted(builders)})")
        weights = root / entry["weights"]
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: weights of the {kind} judge not found")
        if _sha256(weights) != entry["sha256"]:
            raise ValueError(f"{weights}: sha256 differs from {path} (file changed or truncated)")
        model = builders[kind](entry["config"])
        try:
            model.load_state_dict(load_file(str(weights), device=map_location))
        except RuntimeError as err:
            raise ValueError(f"{weights}: does not fit the {kind} judge's config ({err})") from err
        judges[kind] = model.to(map_location).eval()
    return LoadedJudges(judges["attribute"], judges["segmenter"], record)  # type: ignore[arg-type]
