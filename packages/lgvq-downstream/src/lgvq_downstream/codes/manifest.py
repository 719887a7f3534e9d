"""``manifest.json`` of a code-shard directory: the tokenizer fingerprint, the preprocessing, the source
shards and the code shards written so far.

Layout::

    OUT/manifest.json     {"format": "lgvq-code-shards", "format_version": 1, "complete": bool,
                           "tokenizer": TokenizerInfo, "preprocessing": {...}, "source": {...},
                           "shards": [{"name", "rows", "bytes", "sha256", "splits",
                                       "source": {"name", "sha256", "rows"}}], "versions": {...}, ...}
    OUT/shard-00000.arrow one code shard per source shard, same name

``complete`` is false while an encoding run is under way (or was interrupted); readers refuse such a set.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from lgvq_data.shards import write_json_atomic
from lgvq_downstream.codes.errors import CodeShardError, TokenizerMismatchError
from lgvq_downstream.codes.schema import CODE_FORMAT, CODE_FORMAT_VERSION
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo, describe_tokenizer, load_tokenizer

CODE_MANIFEST_NAME = "manifest.json"

# Fields compared between an existing set and a tokenizer, in the order errors list them.
_MATCH_FIELDS: tuple[str, ...] = (
    "grid",
    "codebook_size",
    "config_sha256",
    "weights_sha256",
    "base",
    "image_size",
)


@dataclass(frozen=True)
class SourceShard:
    """The lgvq-data shard a code shard was made from."""

    name: str
    sha256: str
    rows: int


@dataclass(frozen=True)
class CodeShardEntry:
    """One finished code shard: its file, row count, bytes, sha256, rows per split and its source shard."""

    name: str
    rows: int
    bytes: int
    sha256: str
    splits: dict[str, int]
    source: SourceShard

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "rows": self.rows,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "splits": dict(self.splits),
            "source": {"name": self.source.name, "sha256": self.source.sha256, "rows": self.source.rows},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CodeShardEntry:
        src = data["source"]
        return cls(
            name=str(data["name"]),
            rows=int(data["rows"]),
            bytes=int(data["bytes"]),
            sha256=str(data["sha256"]),
            splits={str(k): int(v) for k, v in data["splits"].items()},
            source=SourceShard(name=str(src["name"]), sha256=str(src["sha256"]), rows=int(src["rows"])),
        )


def _format_value(name: str, value: Any) -> str:
    if name == "grid" and value is not None:
        return f"{value[0]}×{value[1]}"
    return str(value)


def tokenizer_differences(
    recorded: TokenizerInfo, candidate: TokenizerInfo, fields: tuple[str, ...] = _MATCH_FIELDS
) -> list[str]:
    """``"<field>: code shards <a>, tokenizer <b>"`` for each field that differs (None on the tokenizer side
    means "unknown" and is not compared)."""
    out = []
    for name in fields:
        a, b = getattr(recorded, name), getattr(candidate, name)
        if b is None or a == b:
            continue
        out.append(f"{name}: code shards {_format_value(name, a)}, tokenizer {_format_value(name, b)}")
    return out


@dataclass
class CodeManifest:
    """Parsed ``manifest.json`` of a code-shard directory (see the module docstring)."""

    tokenizer: TokenizerInfo
    preprocessing: dict[str, Any]
    source: dict[str, Any]
    shards: list[CodeShardEntry] = field(default_factory=list)
    complete: bool = False
    versions: dict[str, str | None] = field(default_factory=dict)
    root: Path | None = None

    @property
    def total_rows(self) -> int:
        return sum(entry.rows for entry in self.shards)

    @property
    def splits(self) -> dict[str, int]:
        """Rows per split over all shards."""
        counts: Counter[str] = Counter()
        for entry in self.shards:
            counts.update(entry.splits)
        return dict(sorted(counts.items()))

    @property
    def grid(self) -> tuple[int, int]:
        return self.tokenizer.grid

    @property
    def codebook_size(self) -> int:
        return self.tokenizer.codebook_size

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": CODE_FORMAT,
            "format_version": CODE_FORMAT_VERSION,
            "complete": self.complete,
            "total_rows": self.total_rows,
            "splits": self.splits,
            "tokenizer": self.tokenizer.to_dict(),
            "preprocessing": self.preprocessing,
            "source": self.source,
            "shards": [entry.to_dict() for entry in self.shards],
            "versions": self.versions,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any], root: Path | None = None) -> CodeManifest:
        return cls(
            tokenizer=TokenizerInfo.from_dict(data["tokenizer"]),
            preprocessing=dict(data["preprocessing"]),
            source=dict(data["source"]),
            shards=[CodeShardEntry.from_dict(entry) for entry in data["shards"]],
            complete=bool(data["complete"]),
            versions=dict(data.get("versions") or {}),
            root=root,
        )

    def assert_matches(self, tokenizer: nn.Module | str | os.PathLike[str]) -> None:
        """Refuse (``TokenizerMismatchError`` naming both values) a tokenizer the codes were not made with.

        ``tokenizer`` is a loaded model (``VQTokenizer`` or ``LanguageGuided``: grid, codebook size, config
        hash and base are compared) or a tokenizer folder (the weights' sha256 and image size as well).
        """
        if isinstance(tokenizer, (str, os.PathLike)):
            candidate = load_tokenizer(tokenizer).info
        else:
            candidate = describe_tokenizer(tokenizer, image_size=self.tokenizer.image_size)
        problems = tokenizer_differences(self.tokenizer, candidate)
        if problems:
            where = self.root if self.root is not None else "code shards"
            raise TokenizerMismatchError(
                f"{where}: the tokenizer does not match the code shards: " + "; ".join(problems)
            )


def load_code_manifest(directory: str | os.PathLike[str], require_complete: bool = False) -> CodeManifest:
    """Read ``manifest.json`` of a code-shard directory; ``CodeShardError`` naming the file when it is
    missing, not a code manifest, of another format version, malformed, or (``require_complete``)
    unfinished."""
    root = Path(directory)
    path = root / CODE_MANIFEST_NAME
    if not path.is_file():
        raise CodeShardError(f"{path}: missing (not a code-shard directory)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CodeShardError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict) or data.get("format") != CODE_FORMAT:
        raise CodeShardError(f"{path}: not a code-shard manifest (field 'format' is not {CODE_FORMAT!r})")
    if data.get("format_version") != CODE_FORMAT_VERSION:
        raise CodeShardError(
            f"{path}: format_version {data.get('format_version')!r} != supported {CODE_FORMAT_VERSION}"
        )
    try:
        manifest = CodeManifest.from_dict(data, root=root)
    except (KeyError, TypeError, ValueError, IndexError) as err:
        raise CodeShardError(f"{path}: malformed manifest ({type(err).__name__}: {err})") from None
    if require_complete and not manifest.complete:
        raise CodeShardError(f"{path}: the code-shard set is incomplete (an encoding run did not finish)")
    return manifest


def write_code_manifest(directory: str | os.PathLike[str], manifest: CodeManifest) -> Path:
    """Write ``manifest.json`` atomically (temporary file in the same folder, then ``os.replace``)."""
    path = Path(directory) / CODE_MANIFEST_NAME
    write_json_atomic(path, manifest.to_dict())
    return path
