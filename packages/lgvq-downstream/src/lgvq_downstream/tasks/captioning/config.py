"""``CaptionConfig``: the captioning model (mapping network + prefix-LM transformer), its text vocabulary,
decoding and the training loop (``train`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig
from lgvq_downstream.tasks.common.config import TrainLoopConfig

__all__ = ["CaptionConfig"]

CAPTION_METRIC_NAMES = ("bleu", "meteor", "rouge", "cider")


@dataclass(frozen=True)
class CaptionConfig(_StrictConfig):
    """ClipCap-style captioning on image codes (METHOD-LGVQ §8: the codes replace ClipCap's CLIP prefix).

    Attributes:
        text_encoder: the text tokenizer (``"minilm"`` or a folder / hub id), recorded for reloading.
        text_vocab: ``"train"`` (WordPiece ids seen in training captions) or ``"full"`` (all of them).
        max_caption_tokens: longest caption in model tokens, BOS and EOS included; longer ones are errors.
        width, layers, heads, mlp_ratio, dropout: the prefix-LM ``CodeTransformer``.
        init_from_codebook: image embeddings start as the tokenizer's codebook rows (+ a learned D→width map).
        mapper: ``"transformer"`` (learned queries attend over the h×w code embeddings) or ``"mlp"`` (the grid
            average-pooled to ``mlp_pool``×``mlp_pool``, flattened, a tanh MLP).
        prefix_length: P prefix vectors the mapper emits.
        mapper_layers: blocks of the transformer mapper.
        mlp_pool: pooled grid side of the MLP mapper.
        beam_size: beam width at evaluation (1 = greedy).
        max_new_tokens: generation limit (default ``max_caption_tokens − 1``).
        length_penalty: beam score = log-probability / length ** length_penalty.
        metrics: caption metrics to compute (``bleu``, ``meteor``, ``rouge``, ``cider``).
        num_examples: examples kept in the evaluation report.
        train: optimiser and loop.
    """

    text_encoder: str = "minilm"
    text_vocab: Literal["train", "full"] = "train"
    max_caption_tokens: int = 40
    width: int = 256
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    init_from_codebook: bool = True
    mapper: Literal["transformer", "mlp"] = "transformer"
    prefix_length: int = 10
    mapper_layers: int = 2
    mlp_pool: int = 4
    beam_size: int = 3
    max_new_tokens: int | None = None
    length_penalty: float = 1.0
    metrics: tuple[str, ...] = CAPTION_METRIC_NAMES
    num_examples: int = 8
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.max_caption_tokens >= 3, "max_caption_tokens", "must be ≥ 3 (BOS, a word, EOS)"),
            (self.prefix_length >= 1, "prefix_length", "must be ≥ 1"),
            (self.mapper_layers >= 1, "mapper_layers", "must be ≥ 1"),
            (self.mlp_pool >= 1, "mlp_pool", "must be ≥ 1"),
            (self.beam_size >= 1, "beam_size", "must be ≥ 1"),
            (self.max_new_tokens is None or self.max_new_tokens >= 1, "max_new_tokens", "must be ≥ 1"),
            (self.num_examples >= 0, "num_examples", "must be ≥ 0"),
            (
                bool(self.metrics) and set(self.metrics) <= set(CAPTION_METRIC_NAMES),
                "metrics",
                f"must be a non-empty subset of {list(CAPTION_METRIC_NAMES)}",
            ),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"captioning.{key}: {message}")

    @property
    def generation_limit(self) -> int:
        return self.max_new_tokens if self.max_new_tokens is not None else self.max_caption_tokens - 1
