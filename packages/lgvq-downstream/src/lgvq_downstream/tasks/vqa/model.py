"""``VQAModel``: a bidirectional ``CodeTransformer`` over ``[image codes | question tokens]``; the hidden
state of the question's last token (EOS; or the mean over the question) → a linear classifier over the
training answers.

Shapes: B batch, h×w code grid (I = h·w), T question tokens (BOS … EOS), C width, A answers.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lgvq_downstream
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo
from lgvq_downstream.tasks.common.checkpoint import read_checkpoint, write_checkpoint
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer
from lgvq_downstream.tasks.vqa.answers import AnswerVocab, MajorityBaseline
from lgvq_downstream.tasks.vqa.config import VQAConfig
from lgvq_downstream.transformer import CodeTransformer, CodeTransformerConfig

__all__ = ["TASK", "VQAModel"]

TASK = "vqa"


class VQAModel(nn.Module):
    """See the module docstring.

    Args:
        config: the task config.
        vocab: question vocabulary.
        answers: the answer classes.
        baseline: majority answer per question type (fitted on the training questions).
        tokenizer_info: fingerprint of the tokenizer whose codes the model reads.
        codebook_dim: D of the tokenizer's code vectors when the image table is codebook-shaped.
    """

    def __init__(
        self,
        config: VQAConfig,
        vocab: TextVocab,
        answers: AnswerVocab,
        baseline: MajorityBaseline,
        tokenizer_info: TokenizerInfo,
        codebook_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.answers = answers
        self.baseline = baseline
        self.tokenizer_info = tokenizer_info
        self.codebook_dim = codebook_dim
        self.source: Path | None = None
        self.transformer = CodeTransformer(self.transformer_config())
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.width, len(answers)))
        nn.init.normal_(self.head[1].weight, std=0.02)
        nn.init.zeros_(self.head[1].bias)

    def transformer_config(self) -> CodeTransformerConfig:
        c = self.config
        h, w = self.tokenizer_info.grid
        return CodeTransformerConfig(
            image_vocab_size=self.tokenizer_info.codebook_size,
            text_vocab_size=self.vocab.size,
            width=c.width,
            layers=c.layers,
            heads=c.heads,
            mlp_ratio=c.mlp_ratio,
            dropout=c.dropout,
            max_positions=h * w + c.max_question_tokens,
            attention="bidirectional",
            segment_order="image_text",
            init_from_codebook=self.codebook_dim is not None,
            codebook_dim=self.codebook_dim,
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def pooled(self, codes: Tensor, question: Tensor, mask: Tensor) -> Tensor:
        """codes B×h×w, question B×T, mask B×T (True = real) → B×C question summary."""
        out = self.transformer(image_codes=codes.flatten(1), text_tokens=question, text_mask=mask)
        hidden = out.segment("text")
        if self.config.pooling == "mean":
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        last = mask.long().sum(1).clamp_min(1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def forward(self, codes: Tensor, question: Tensor, mask: Tensor) -> Tensor:
        """Answer logits B×A."""
        return self.head(self.pooled(codes, question, mask))

    @torch.no_grad()
    def answer(self, codes: Tensor, questions: list[str]) -> list[str]:
        """codes B×h×w and B question strings → B predicted answers."""
        was_training = self.training
        self.eval()
        try:
            ids, mask = self.vocab.pad([self.vocab.encode(q) for q in questions])
            logits = self(codes.to(self.device), ids.to(self.device), mask.to(self.device))
        finally:
            self.train(was_training)
        return [self.answers.answers[i] for i in logits.argmax(-1).tolist()]

    # ------------------------------------------------------------------------------------------- persistence

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """``transformer/`` + ``heads.safetensors`` (answer head) + ``task.json`` (config, vocabularies,
        baseline, tokenizer fingerprint)."""
        meta: dict[str, Any] = {
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "answers": self.answers.to_list(),
            "baseline": self.baseline.to_dict(),
            "tokenizer": self.tokenizer_info.to_dict(),
            "codebook_dim": self.codebook_dim,
            "version": lgvq_downstream.__version__,
        }
        return write_checkpoint(directory, self, TASK, meta)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, text_tokenizer: Any = None, map_location: str = "cpu"
    ) -> VQAModel:
        """Load a checkpoint of :meth:`save_pretrained` (the text tokenizer is reloaded from the config's
        ``text_encoder`` unless given)."""
        record, transformer, heads = read_checkpoint(directory, TASK, map_location=map_location)
        config = VQAConfig.from_dict(record["config"])
        tokenizer = load_text_tokenizer(text_tokenizer if text_tokenizer is not None else config.text_encoder)
        model = cls(
            config,
            TextVocab.from_dict(tokenizer, record["vocab"]),
            AnswerVocab(record["answers"]),
            MajorityBaseline.from_dict(record["baseline"]),
            TokenizerInfo.from_dict(record["tokenizer"]),
            record.get("codebook_dim"),
        )
        if transformer.config != model.transformer.config:
            raise ValueError(f"{directory}: transformer config does not match task.json")
        state = {f"transformer.{k}": v for k, v in transformer.state_dict().items()} | heads
        model.load_state_dict(state, strict=True)
        model.source = Path(directory)
        return model.to(map_location).eval()
