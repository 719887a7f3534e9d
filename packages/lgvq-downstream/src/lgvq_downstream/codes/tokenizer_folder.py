"""Find, load and fingerprint a frozen tokenizer folder.

Accepted layouts:

- a ``VQTokenizer.save_pretrained`` folder: ``config.json`` + ``model.safetensors``;
- a pipeline run folder ``models/<base>-<lg>-s<seed>/`` or a ``LanguageGuided.save_pretrained`` folder: the
  tokenizer under ``base/`` (LG heads beside it are not used), ``run.json`` optionally giving ``image_size``.

The fingerprint (:class:`TokenizerInfo`) is what code shards record and what a later tokenizer must match.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lgvq_core.checksum import file_sha256
from lgvq_core.models.tokenizer import CONFIG_NAME, WEIGHTS_NAME, VQTokenizer
from lgvq_downstream.codes.errors import CodeShardError

BASE_DIR = "base"  # where run folders and LanguageGuided folders keep the tokenizer
RUN_FILE = "run.json"


@dataclass(frozen=True)
class TokenizerInfo:
    """What identifies the tokenizer behind a code-shard set.

    Attributes:
        base: recipe name (``vqvae``, ``vqgan``, ``cvq``, ``vqct``).
        config_sha256: sha256 of the canonical JSON of the config (+ VQCT vocabulary); :func:`config_sha256`.
        weights_sha256: sha256 of ``model.safetensors`` (None when only an in-memory model was seen).
        codebook_size: number of tokens (VQCT: packed A^k·N).
        grid: (h, w) token grid at ``image_size``.
        image_size: side in pixels of the encoded images.
        vqct: ``{"num_adjectives", "num_nouns", "topk"}`` for VQCT, else None.
        path: the tokenizer folder that was loaded (None for an in-memory model).
    """

    base: str
    config_sha256: str
    weights_sha256: str | None
    codebook_size: int
    grid: tuple[int, int]
    image_size: int
    vqct: dict[str, int] | None = None
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (``grid`` as a list)."""
        return {
            "base": self.base,
            "config_sha256": self.config_sha256,
            "weights_sha256": self.weights_sha256,
            "codebook_size": self.codebook_size,
            "grid": list(self.grid),
            "image_size": self.image_size,
            "vqct": self.vqct,
            "path": self.path,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TokenizerInfo:
        """Inverse of :meth:`to_dict`; ``KeyError`` names a missing key."""
        return cls(
            base=str(data["base"]),
            config_sha256=str(data["config_sha256"]),
            weights_sha256=data["weights_sha256"],
            codebook_size=int(data["codebook_size"]),
            grid=(int(data["grid"][0]), int(data["grid"][1])),
            image_size=int(data["image_size"]),
            vqct=data.get("vqct"),
            path=data.get("path"),
        )


@dataclass
class LoadedTokenizer:
    """A tokenizer loaded from a folder (eval mode, on CPU) and its fingerprint."""

    model: VQTokenizer
    info: TokenizerInfo
    folder: Path


def unwrap_tokenizer(model: nn.Module) -> VQTokenizer:
    """The ``VQTokenizer`` of a tokenizer or of a wrapper holding it as ``.base`` (``LanguageGuided``)."""
    for _ in range(4):
        if isinstance(model, VQTokenizer):
            return model
        inner = getattr(model, "base", None)
        if not isinstance(inner, nn.Module):
            break
        model = inner
    raise TypeError(f"expected a VQTokenizer (or a wrapper with .base), got {type(model).__name__}")


def config_sha256(tokenizer: nn.Module) -> str:
    """sha256 of the canonical JSON (sorted keys, no spaces) of ``{"config": ..., "extra": ...}``, i.e. of
    what ``save_pretrained`` stores besides the weights (``extra`` holds VQCT's vocabulary)."""
    model = unwrap_tokenizer(tokenizer)
    payload = {"config": model.config.to_dict(), "extra": model.extra_config()}
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def vqct_sizes(tokenizer: nn.Module) -> dict[str, int] | None:
    """``{"num_adjectives", "num_nouns", "topk"}`` of a VQCT tokenizer, None for the other bases."""
    quantizer = unwrap_tokenizer(tokenizer).quantizer
    if not hasattr(quantizer, "split_tokens"):
        return None
    return {
        "num_adjectives": int(quantizer.num_adjectives),
        "num_nouns": int(quantizer.num_nouns),
        "topk": int(quantizer.topk),
    }


def describe_tokenizer(
    tokenizer: nn.Module,
    image_size: int | None = None,
    weights_sha256: str | None = None,
    path: str | None = None,
) -> TokenizerInfo:
    """Fingerprint of an in-memory tokenizer; ``image_size`` defaults to the configured resolution."""
    model = unwrap_tokenizer(tokenizer)
    side = int(image_size if image_size is not None else model.config.encoder.resolution)
    return TokenizerInfo(
        base=model.config.base,
        config_sha256=config_sha256(model),
        weights_sha256=weights_sha256,
        codebook_size=int(model.codebook_size),
        grid=model.config.encoder.latent_grid(side, side),
        image_size=side,
        vqct=vqct_sizes(model),
        path=path,
    )


def resolve_tokenizer_folder(path: str | os.PathLike[str]) -> tuple[Path, int | None]:
    """Folder holding ``config.json`` + ``model.safetensors`` for ``path`` (itself or ``path/base``), and the
    image size a run folder's ``run.json`` names (None otherwise)."""
    root = Path(path)
    if not root.is_dir():
        raise CodeShardError(f"{root}: tokenizer folder not found")
    image_size: int | None = None
    run_file = root / RUN_FILE
    if run_file.is_file():
        try:
            run = json.loads(run_file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise CodeShardError(f"{run_file}: not valid JSON ({err})") from None
        if isinstance(run, dict) and run.get("image_size") is not None:
            image_size = int(run["image_size"])
    for candidate in (root, root / BASE_DIR):
        if (candidate / CONFIG_NAME).is_file() and (candidate / WEIGHTS_NAME).is_file():
            return candidate, image_size
    raise CodeShardError(
        f"{root}: no tokenizer found (expected {CONFIG_NAME} + {WEIGHTS_NAME} in it or in {BASE_DIR}/, "
        "as save_pretrained or a pipeline run writes them)"
    )


def load_tokenizer(path: str | os.PathLike[str]) -> LoadedTokenizer:
    """Load a frozen tokenizer folder (any layout of the module docstring) in eval mode, with its
    fingerprint."""
    folder, image_size = resolve_tokenizer_folder(path)
    model = VQTokenizer.from_pretrained(folder)
    model.eval()
    model.requires_grad_(False)
    info = describe_tokenizer(
        model,
        image_size=image_size,
        weights_sha256=file_sha256(folder / WEIGHTS_NAME),
        path=str(folder.absolute()),
    )
    return LoadedTokenizer(model=model, info=info, folder=folder)
