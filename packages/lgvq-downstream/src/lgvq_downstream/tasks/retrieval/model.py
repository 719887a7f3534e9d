"""``RetrievalModel``: image→text scoring with LG heads on code shards — the trained f_vt [CLS] (through
``cls_to_sentence``) against the frozen text encoder's sentence embedding, cosine similarity.

:func:`build` loads either a model with LG heads (a pipeline run folder or a
``LanguageGuided.save_pretrained`` folder: ``guidance.json`` + ``guidance.safetensors`` + ``base/``), or a
tokenizer without them, which gets fresh *probe* heads to fit with ``train`` (``lgvq_core``'s ``fit_probe``
on the frozen tokenizer, as the pipeline's evaluate stage does). A fitted probe is saved like an LG folder
plus ``retrieval.json``.

The codes stand in for the images: for the images they came from, ``tokenizer.embed(indices)`` equals the
quantized map ``tokenizer(images).quant.quantized`` that the heads read in eval mode.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.checksum import file_sha256
from lgvq_core.guidance.config import GuidanceConfig
from lgvq_core.guidance.language_guided import CONFIG_FILE, HEADS_FILE, LanguageGuided
from lgvq_core.guidance.text_encoder import MINILM_ID, TextEncoder, load_text_encoder
from lgvq_core.models.tokenizer import WEIGHTS_NAME
from lgvq_downstream.codes.tokenizer_folder import (
    RUN_FILE,
    TokenizerInfo,
    describe_tokenizer,
    load_tokenizer,
    resolve_tokenizer_folder,
)
from lgvq_downstream.tasks.retrieval.config import RetrievalConfig

__all__ = ["PROBE_FILE", "CodeInput", "Heads", "RetrievalModel", "build"]

logger = logging.getLogger(__name__)

PROBE_FILE = "retrieval.json"
PROBE_FORMAT = "lgvq-retrieval-probe"
Heads = Literal["lg", "probe"]


class CodeInput(nn.Module):
    """A frozen tokenizer fed with codes: ``self(indices B×h×w)`` returns an object whose ``.quant.quantized``
    is the code vectors B×D×h×w (what ``fit_probe`` reads from ``base(images)``); every other attribute the LG
    heads use (``embed_dim``, ``grid_size``, ``config``, ``embed``) is the tokenizer's."""

    def __init__(self, tokenizer: nn.Module) -> None:
        super().__init__()
        self.tokenizer = tokenizer

    @property
    def embed_dim(self) -> int:
        return int(self.tokenizer.embed_dim)

    @property
    def grid_size(self) -> tuple[int, int]:
        return self.tokenizer.grid_size

    @property
    def config(self) -> Any:
        return self.tokenizer.config

    def embed(self, indices: Tensor) -> Tensor:
        return self.tokenizer.embed(indices)

    def forward(self, indices: Tensor) -> SimpleNamespace:
        return SimpleNamespace(quant=SimpleNamespace(quantized=self.tokenizer.embed(indices)))


class RetrievalModel(nn.Module):
    """LG heads + frozen tokenizer + frozen text encoder, and what they were made from.

    Attributes:
        lg: the ``LanguageGuided`` model (its ``base`` is the tokenizer).
        heads: ``"lg"`` (trained with the tokenizer) or ``"probe"`` (fitted later on the frozen tokenizer).
        tokenizer_info: fingerprint of the tokenizer (compared with the code shards' before evaluation).
        text_encoder_spec: how to reload the text encoder.
        trained: False for probe heads not fitted yet.
        probe: the probe budget once fitted (steps, batch size, lr, images, mode), else None.
    """

    def __init__(
        self,
        lg: LanguageGuided,
        heads: Heads,
        tokenizer_info: TokenizerInfo,
        text_encoder_spec: str,
        trained: bool,
        probe: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.lg = lg
        self.heads = heads
        self.tokenizer_info = tokenizer_info
        self.text_encoder_spec = text_encoder_spec
        self.trained = trained
        self.probe = probe
        lg.base.requires_grad_(False)
        self.eval()

    @property
    def device(self) -> torch.device:
        return next(self.lg.visual.parameters()).device

    def image_embeddings(self, indices: Tensor) -> Tensor:
        """indices B×h×w → unit-norm B×S: f_vt's [CLS] output mapped to the sentence space."""
        quantized = self.lg.base.embed(indices.to(self.device))
        return F.normalize(self.lg.cls_to_sentence(self.lg.visual(quantized)[:, 0]), dim=-1)

    def text_embeddings(self, captions: list[str]) -> Tensor:
        """B captions → unit-norm B×S sentence embeddings of the frozen text encoder."""
        return F.normalize(self.lg.text_features(list(captions)).sentence.to(self.device), dim=-1)

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """The LG folder layout (``base/``, ``guidance.safetensors``, ``guidance.json``) + ``retrieval.json``
        (heads kind, probe budget, tokenizer fingerprint, text encoder)."""
        target = Path(directory)
        self.lg.save_pretrained(target)
        record = {
            "format": PROBE_FORMAT,
            "heads": self.heads,
            "trained": self.trained,
            "probe": self.probe,
            "tokenizer": self.tokenizer_info.to_dict(),
            "text_encoder": self.text_encoder_spec,
        }
        (target / PROBE_FILE).write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
        return target

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        config: RetrievalConfig | None = None,
        text_encoder: TextEncoder | str | None = None,
    ) -> RetrievalModel:
        """Same as :func:`build`."""
        return build(directory, config, text_encoder)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: invalid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    return data


def _recorded_text_encoder(folder: Path, guidance: dict[str, Any]) -> str:
    """The text encoder an LG folder was trained with: ``retrieval.json`` or ``run.json``'s spec, else the
    description in ``guidance.json`` (the offline MiniLM → ``"minilm"``)."""
    for name in (PROBE_FILE, RUN_FILE):
        path = folder / name
        if path.is_file():
            spec = _read_json(path).get("text_encoder")
            if isinstance(spec, str) and spec:
                return spec
    described = guidance.get("text_encoder") or {}
    if described.get("model_id") == MINILM_ID:
        return "minilm"
    name = described.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{folder / CONFIG_FILE}: no text encoder recorded (field 'text_encoder.name')")
    return name


def _fingerprint(folder: Path, tokenizer: nn.Module) -> TokenizerInfo:
    tok_folder, image_size = resolve_tokenizer_folder(folder)
    return describe_tokenizer(
        tokenizer,
        image_size=image_size,
        weights_sha256=file_sha256(tok_folder / WEIGHTS_NAME),
        path=str(tok_folder.absolute()),
    )


def build(
    model_dir: str | os.PathLike[str],
    config: RetrievalConfig | None = None,
    text_encoder: TextEncoder | str | None = None,
) -> RetrievalModel:
    """Load ``model_dir`` for retrieval (see the module docstring).

    Args:
        model_dir: a folder with LG heads, or a tokenizer folder / run folder without them (→ probe heads).
        config: the protocol (probe text encoder, context length and mode).
        text_encoder: a loaded encoder or a spec overriding the recorded / configured one.
    """
    config = config or RetrievalConfig()
    folder = Path(model_dir)
    if (folder / HEADS_FILE).is_file() and (folder / CONFIG_FILE).is_file():
        guidance = _read_json(folder / CONFIG_FILE)
        try:
            guidance_config = GuidanceConfig.from_dict(guidance["guidance"])
        except KeyError:
            raise ValueError(f"{folder / CONFIG_FILE}: no 'guidance' section") from None
        spec = text_encoder if isinstance(text_encoder, str) else _recorded_text_encoder(folder, guidance)
        encoder = (
            text_encoder
            if isinstance(text_encoder, TextEncoder)
            else load_text_encoder(spec, context_length=guidance_config.context_length)
        )
        lg = LanguageGuided.from_pretrained(folder, encoder)
        record = _read_json(folder / PROBE_FILE) if (folder / PROBE_FILE).is_file() else {}
        heads: Heads = "probe" if record.get("heads") == "probe" else "lg"
        model = RetrievalModel(
            lg, heads, _fingerprint(folder, lg.base), str(spec), trained=True, probe=record.get("probe")
        )
        logger.info("%s: %s heads (text encoder %s)", folder, heads, spec)
        return model
    loaded = load_tokenizer(folder)
    if isinstance(text_encoder, TextEncoder):
        encoder = text_encoder
        spec = "minilm" if getattr(encoder, "model_id", None) == MINILM_ID else encoder.name
    else:
        spec = text_encoder or config.text_encoder
        encoder = load_text_encoder(spec, context_length=config.context_length)
    guidance_config = GuidanceConfig(mode=config.probe_mode, context_length=encoder.context_length)
    lg = LanguageGuided(loaded.model, encoder, guidance_config)
    logger.info("%s: no LG heads; fresh probe heads (%s mode) to fit", folder, config.probe_mode)
    return RetrievalModel(lg, "probe", loaded.info, str(spec), trained=False)
