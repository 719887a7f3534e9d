"""``GroundingConfig``: the TransVG-like grounding model, its loss, its text vocabulary and the training loop
(``train`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig
from lgvq_downstream.tasks.common.config import TrainLoopConfig

__all__ = ["GroundingConfig"]


@dataclass(frozen=True)
class GroundingConfig(_StrictConfig):
    """Visual grounding on image codes (METHOD-LGVQ §8: image codes and expression tokens in one learnable
    transformer, then a coordinate-regression head; TransVG conventions).

    Attributes:
        text_encoder: the expression tokenizer (``"minilm"`` or a folder / hub id), recorded for reloading.
        text_vocab: ``"train"`` (WordPiece ids seen in training expressions, others → UNK) or ``"full"``.
        max_text_tokens: longest expression in tokens, [CLS]/[SEP] (BOS/EOS) included; longer ones are bad
            input (error, or skipped with ``train.on_error="skip"``), never silently truncated.
        width, layers, heads, mlp_ratio, dropout: the bidirectional ``CodeTransformer`` over
            ``[REG] | image codes | expression``.
        init_from_codebook: image embeddings start as the tokenizer's codebook rows (+ a learned D→width map).
        head_layers: layers of the [REG] → box MLP (TransVG: 3).
        l1_weight, giou_weight: loss = l1_weight·L1(cx, cy, w, h) + giou_weight·(1 − GIoU) (TransVG / DETR:
            5 and 2).
        iou_threshold: Acc@IoU≥threshold at evaluation (0.5).
        num_examples: examples kept in the evaluation report (and its figure).
        train: optimiser and loop.
    """

    text_encoder: str = "minilm"
    text_vocab: Literal["train", "full"] = "train"
    max_text_tokens: int = 40
    width: int = 256
    layers: int = 6
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    init_from_codebook: bool = True
    head_layers: int = 3
    l1_weight: float = 5.0
    giou_weight: float = 2.0
    iou_threshold: float = 0.5
    num_examples: int = 8
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.max_text_tokens >= 3, "max_text_tokens", "must be ≥ 3 ([CLS], a word, [SEP])"),
            (self.head_layers >= 1, "head_layers", "must be ≥ 1"),
            (self.l1_weight >= 0 and self.giou_weight >= 0, "l1_weight/giou_weight", "must be ≥ 0"),
            (self.l1_weight + self.giou_weight > 0, "l1_weight/giou_weight", "may not both be 0"),
            (0.0 < self.iou_threshold <= 1.0, "iou_threshold", "must be in (0, 1]"),
            (self.num_examples >= 0, "num_examples", "must be ≥ 0"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"grounding.{key}: {message}")
