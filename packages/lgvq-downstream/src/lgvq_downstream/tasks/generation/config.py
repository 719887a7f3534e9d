"""``GenerationConfig``: one code generator for the four generation tasks (its model, its conditions, how it
samples at evaluation, and the training loop)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig
from lgvq_downstream.tasks.common.config import TrainLoopConfig

__all__ = ["CONDITION_KINDS", "GENERATION_TASKS", "GenerationConfig", "SamplingConfig"]

CONDITION_KINDS = ("text", "mask")
# task → the condition it samples with (None: unconditional).
GENERATION_TASKS: dict[str, str | None] = {
    "unconditional": None,
    "completion": None,
    "semantic": "mask",
    "text_to_image": "text",
}


@dataclass(frozen=True)
class SamplingConfig(_StrictConfig):
    """How samples are drawn at evaluation.

    Attributes:
        num_samples: images generated per task (test rows are cycled through for the conditions).
        guidance_scale: classifier-free guidance for the conditional tasks (1 = plain conditional sampling).
        temperature, top_k, top_p: logit processing before sampling (None = off).
        steps: MaskGIT iterations (None = the generator's ``maskgit_steps``).
        batch_size: samples per forward pass.
        seed: sampling seed.
        completion_rows: code rows given to the completion task (None = the top half).
    """

    num_samples: int = 256
    guidance_scale: float = 2.0
    temperature: float = 1.0
    top_k: int | None = None
    top_p: float | None = None
    steps: int | None = None
    batch_size: int = 64
    seed: int = 0
    completion_rows: int | None = None

    def __post_init__(self) -> None:
        checks = [
            (self.num_samples >= 2, "num_samples", "must be ≥ 2 (a Fréchet distance needs two images)"),
            (self.guidance_scale >= 0, "guidance_scale", "must be ≥ 0"),
            (self.temperature > 0, "temperature", "must be positive"),
            (self.top_k is None or self.top_k >= 1, "top_k", "must be ≥ 1 or null"),
            (self.top_p is None or 0 < self.top_p <= 1, "top_p", "must be in (0, 1] or null"),
            (self.steps is None or self.steps >= 1, "steps", "must be ≥ 1 or null"),
            (self.batch_size >= 1, "batch_size", "must be ≥ 1"),
            (self.completion_rows is None or self.completion_rows >= 1, "completion_rows", "must be ≥ 1"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"generation.sampling.{key}: {message}")


@dataclass(frozen=True)
class GenerationConfig(_StrictConfig):
    """A code generator (``lgvq_downstream.generation.CodeGenerator``) trained on a tokenizer's codes.

    One model serves every task whose condition it was trained with: with ``conditions: [text, mask]`` and
    each condition dropped independently (``condition_dropout``) the same weights sample unconditionally
    (both dropped), complete images (unconditional, given codes fixed), synthesise from masks and draw from
    captions — the classifier-free-guidance recipe of training with a learned null condition.

    Attributes:
        sampler: ``"maskgit"`` (bidirectional, iterative parallel decoding) or ``"autoregressive"``
            (raster order with a KV cache).
        conditions: the conditions the model learns (subset of ``text``, ``mask``).
        condition_dropout: probability each condition is replaced by its null embedding in a training step.
        text_encoder: the frozen text encoder whose token features condition text-to-image (``"minilm"``, a
            folder or hub id).
        max_text_tokens: caption length in text-encoder tokens (longer captions are truncated).
        width, layers, heads, mlp_ratio, dropout: the transformer.
        maskgit_steps: default MaskGIT iterations.
        init_from_codebook: image-code embeddings start from the tokenizer's (standardised) codebook.
        sampling: evaluation sampling settings.
        num_examples: samples per task in the figures.
        train: optimiser and loop.
    """

    sampler: Literal["maskgit", "autoregressive"] = "maskgit"
    conditions: tuple[str, ...] = ("text", "mask")
    condition_dropout: float = 0.5
    text_encoder: str = "minilm"
    max_text_tokens: int = 32
    width: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    maskgit_steps: int = 8
    init_from_codebook: bool = False
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    num_examples: int = 8
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)

    def __post_init__(self) -> None:
        unknown = [c for c in self.conditions if c not in CONDITION_KINDS]
        checks = [
            (not unknown, "conditions", f"unknown {unknown}; choose from {list(CONDITION_KINDS)}"),
            (len(set(self.conditions)) == len(self.conditions), "conditions", "has duplicates"),
            (0.0 <= self.condition_dropout < 1.0, "condition_dropout", "must be in [0, 1)"),
            (self.max_text_tokens >= 2, "max_text_tokens", "must be ≥ 2"),
            (self.width % self.heads == 0, "width", f"must be a multiple of heads ({self.heads})"),
            (self.layers >= 1, "layers", "must be ≥ 1"),
            (self.maskgit_steps >= 1, "maskgit_steps", "must be ≥ 1"),
            (self.num_examples >= 0, "num_examples", "must be ≥ 0"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"generation.{key}: {message}")

    def supports(self, task: str) -> bool:
        """Whether a model of this config can run ``task`` (its condition was trained)."""
        if task not in GENERATION_TASKS:
            raise ValueError(f"unknown generation task {task!r}; choose from {list(GENERATION_TASKS)}")
        needed = GENERATION_TASKS[task]
        if needed is None:  # unconditional sampling needs the null condition seen in training
            return not self.conditions or self.condition_dropout > 0
        return needed in self.conditions
