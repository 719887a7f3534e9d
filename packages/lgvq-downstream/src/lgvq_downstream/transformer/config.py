"""``CodeTransformerConfig``: every size and switch of the shared second-stage transformer.

The sequence is ``[prefix embeddings | image codes | text tokens]`` (``segment_order="image_text"``) or
``[prefix | text | image]`` (``"text_image"``, e.g. text-to-image). Special tokens (BOS/EOS/SOS/mask) are ids
inside the two vocabularies: the text vocabulary is the text encoder's (MiniLM: 30,522 WordPiece ids, or a
restricted one); ``image_vocab_size`` is the tokenizer's K plus any extra ids the task reserves (e.g. K for an
image SOS token).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from lgvq_core.config import ConfigError, from_dict, to_dict

__all__ = ["AttentionMode", "CodeTransformerConfig", "SegmentOrder"]

AttentionMode = Literal["causal", "bidirectional", "prefix"]
SegmentOrder = Literal["image_text", "text_image"]


@dataclass(frozen=True)
class CodeTransformerConfig:
    """Sizes and switches of ``CodeTransformer``.

    Attributes:
        image_vocab_size: image-code ids (tokenizer K + reserved ids).
        text_vocab_size: text-token ids (the text encoder's tokenizer vocabulary).
        width, layers, heads: model width, block count, attention heads (``width % heads == 0``).
        mlp_ratio: hidden width of the MLP as a multiple of ``width``.
        dropout: embedding, attention and residual dropout.
        max_positions: longest sequence (prefix + image + text) the learned positions cover.
        attention: ``"causal"``; ``"bidirectional"``; ``"prefix"`` (prefix-LM: bidirectional over the first
            ``prefix_length`` positions, causal after them).
        segment_order: which of the two token segments comes first (after the continuous prefix).
        init_from_codebook: image embeddings are a K'×``codebook_dim`` table (to be filled from the
            tokenizer's codebook by ``init_image_embeddings``) followed by a linear D→width projection when
            ``codebook_dim != width``.
        codebook_dim: D of the tokenizer's code vectors; required when ``init_from_codebook``.
        tie_text_embeddings: the text output head reuses the text embedding matrix (GPT-2 style).
        bias: biases in the linear layers.
    """

    image_vocab_size: int = 1024
    text_vocab_size: int = 30522
    width: int = 256
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    max_positions: int = 512
    attention: AttentionMode = "causal"
    segment_order: SegmentOrder = "image_text"
    init_from_codebook: bool = False
    codebook_dim: int | None = None
    tie_text_embeddings: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        checks = [
            (self.image_vocab_size > 0, "image_vocab_size", "must be positive"),
            (self.text_vocab_size > 0, "text_vocab_size", "must be positive"),
            (self.width > 0 and self.layers > 0 and self.heads > 0, "width/layers/heads", "must be positive"),
            (self.width % max(self.heads, 1) == 0, "heads", f"must divide width {self.width}"),
            (self.mlp_ratio > 0, "mlp_ratio", "must be positive"),
            (0.0 <= self.dropout < 1.0, "dropout", "must be in [0, 1)"),
            (self.max_positions > 0, "max_positions", "must be positive"),
            (
                not self.init_from_codebook or (self.codebook_dim is not None and self.codebook_dim > 0),
                "codebook_dim",
                "must be a positive integer when init_from_codebook is true",
            ),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"transformer.{key}: {message}")

    @property
    def head_dim(self) -> int:
        return self.width // self.heads

    @property
    def image_embed_dim(self) -> int:
        """Columns of the image embedding table (D when initialised from a codebook, else width)."""
        return self.codebook_dim if self.init_from_codebook and self.codebook_dim else self.width

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, fill_defaults: bool = False) -> CodeTransformerConfig:
        """Strict: unknown keys always raise, missing keys raise unless ``fill_defaults``."""
        return from_dict(cls, data, fill_defaults=fill_defaults, path="transformer")

    def to_dict(self) -> dict[str, Any]:
        """JSON-able data that ``from_dict`` reads back to an equal config."""
        return to_dict(self)
