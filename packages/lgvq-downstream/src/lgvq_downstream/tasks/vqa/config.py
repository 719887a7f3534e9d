"""``VQAConfig``: the VQA classifier (bidirectional ``CodeTransformer`` over ``[image codes | question]`` and
a linear answer head), its vocabularies and the training loop (``train`` section)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig
from lgvq_downstream.tasks.common.config import TrainLoopConfig

__all__ = ["VQAConfig"]


@dataclass(frozen=True)
class VQAConfig(_StrictConfig):
    """VQA as answer classification (METHOD-LGVQ §8, Table 9: the last hidden state feeds the classifier).

    Attributes:
        text_encoder: the text tokenizer (``"minilm"`` or a folder / hub id), recorded for reloading.
        text_vocab: ``"train"`` (WordPiece ids seen in training questions) or ``"full"``.
        max_question_tokens: longest question in model tokens, BOS and EOS included; longer ones are errors.
        width, layers, heads, mlp_ratio, dropout: the bidirectional ``CodeTransformer``.
        init_from_codebook: image embeddings start as the tokenizer's (standardised) codebook rows.
        pooling: ``"last"`` (the question's last token, EOS: the paper's last hidden state) or ``"mean"``
            (mean over the question tokens).
        max_answers: keep the most frequent training answers (0 = all); questions with another answer are
            left out of training and count as wrong at evaluation.
        num_examples: examples kept in the evaluation report.
        train: optimiser and loop.
    """

    text_encoder: str = "minilm"
    text_vocab: Literal["train", "full"] = "train"
    max_question_tokens: int = 32
    width: int = 256
    layers: int = 4
    heads: int = 8
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    init_from_codebook: bool = True
    pooling: Literal["last", "mean"] = "last"
    max_answers: int = 0
    num_examples: int = 8
    train: TrainLoopConfig = field(default_factory=TrainLoopConfig)

    def __post_init__(self) -> None:
        checks = [
            (self.max_question_tokens >= 3, "max_question_tokens", "must be ≥ 3 (BOS, a word, EOS)"),
            (self.max_answers >= 0, "max_answers", "must be ≥ 0"),
            (self.num_examples >= 0, "num_examples", "must be ≥ 0"),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"vqa.{key}: {message}")
