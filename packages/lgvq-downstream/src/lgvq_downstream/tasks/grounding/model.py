"""``GroundingModel``: TransVG-like box regression on image codes.

A bidirectional ``CodeTransformer`` runs over ``[REG] | h·w image codes | BOS expression EOS`` (the learnable
[REG] token is a one-vector prefix); the [REG] output goes through an MLP and a sigmoid to a normalised
``(cx, cy, w, h)``. Shapes: B batch, h×w code grid, T expression tokens, C width::

    model = build(config, train_set)                       # vocabulary from the training expressions
    boxes = model(codes, tokens, text_mask)                # B×h×w, B×T, B×T → B×4 (cx, cy, w, h) in (0, 1)

Checkpoints (``save_pretrained`` / ``from_pretrained``) use the shared task layout
(:mod:`lgvq_downstream.tasks.common.checkpoint`): ``transformer/``, ``heads.safetensors``, ``task.json``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo
from lgvq_downstream.metrics.boxes import cxcywh_to_xyxy
from lgvq_downstream.tasks.common.checkpoint import read_checkpoint, write_checkpoint
from lgvq_downstream.tasks.common.codebook import load_codebook
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer
from lgvq_downstream.tasks.grounding.config import GroundingConfig
from lgvq_downstream.tasks.grounding.data import GroundingDataset
from lgvq_downstream.transformer import CodeTransformer, CodeTransformerConfig

__all__ = ["TASK", "GroundingModel", "build"]

TASK = "grounding"


def _mlp(width: int, layers: int) -> nn.Sequential:
    """``layers`` linear layers width → … → 4 with ReLU between them (TransVG's box head)."""
    modules: list[nn.Module] = []
    for _ in range(layers - 1):
        modules += [nn.Linear(width, width), nn.ReLU()]
    modules.append(nn.Linear(width, 4))
    return nn.Sequential(*modules)


class GroundingModel(nn.Module):
    """See the module docstring.

    Args:
        config: the task config (sizes, loss weights).
        vocab: expression tokens → model ids.
        tokenizer_info: fingerprint of the tokenizer whose codes the model reads (checked at evaluation).
        preprocessing: the code manifest's preprocessing record (boxes are in its frame).
        codebook_dim: D of the codebook rows the image embeddings start from (``init_from_codebook``).
    """

    def __init__(
        self,
        config: GroundingConfig,
        vocab: TextVocab,
        tokenizer_info: TokenizerInfo,
        preprocessing: dict[str, Any],
        codebook_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.tokenizer_info = tokenizer_info
        self.preprocessing = dict(preprocessing)
        h, w = tokenizer_info.grid
        self.transformer_config = CodeTransformerConfig(
            image_vocab_size=tokenizer_info.codebook_size,
            text_vocab_size=vocab.size,
            width=config.width,
            layers=config.layers,
            heads=config.heads,
            mlp_ratio=config.mlp_ratio,
            dropout=config.dropout,
            max_positions=1 + h * w + config.max_text_tokens,
            attention="bidirectional",
            segment_order="image_text",
            init_from_codebook=config.init_from_codebook,
            codebook_dim=codebook_dim if config.init_from_codebook else None,
        )
        self.transformer = CodeTransformer(self.transformer_config)
        self.reg_token = nn.Parameter(torch.randn(1, 1, config.width) * 0.02)
        self.box_head = _mlp(config.width, config.head_layers)
        # Mean training target (cx, cy, w, h): the mean-box baseline, set by ``train``.
        self.register_buffer("mean_train_box", torch.tensor([0.5, 0.5, 1.0, 1.0]))

    @property
    def grid(self) -> tuple[int, int]:
        return self.tokenizer_info.grid

    def forward(self, codes: Tensor, tokens: Tensor, text_mask: Tensor | None = None) -> Tensor:
        """codes B×h×w (or B×h·w) int64, tokens B×T int64, text_mask B×T bool → B×4 (cx, cy, w, h) in
        (0, 1)."""
        batch = codes.shape[0]
        out = self.transformer(
            prefix_embeds=self.reg_token.expand(batch, -1, -1),
            image_codes=codes.reshape(batch, -1),
            text_tokens=tokens,
            text_mask=text_mask,
        )
        return self.box_head(out.segment("prefix")[:, 0]).sigmoid()

    def predict(self, codes: Tensor, tokens: Tensor, text_mask: Tensor | None = None) -> Tensor:
        """Corners B×4 (x0, y0, x1, y1), clamped to [0, 1] (TransVG's evaluation convention)."""
        return cxcywh_to_xyxy(self(codes, tokens, text_mask))

    # ------------------------------------------------------------------------------------------- checkpoints

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """``transformer/`` + ``heads.safetensors`` ([REG], box head, mean training box) + ``task.json``."""
        meta = {
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "tokenizer": self.tokenizer_info.to_dict(),
            "preprocessing": self.preprocessing,
            "codebook_dim": self.transformer_config.codebook_dim,
        }
        return write_checkpoint(directory, self, TASK, meta)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str = "cpu", tokenizer: Any = None
    ) -> GroundingModel:
        """Reload :meth:`save_pretrained`; ``tokenizer`` (default: the recorded ``text_encoder``) must have
        the recorded vocabulary size. Any missing or extra weight raises ``ValueError``."""
        record, transformer, heads = read_checkpoint(directory, TASK, map_location=map_location)
        try:
            config = GroundingConfig.from_dict(record["config"], path="grounding")
            tokenizer = tokenizer if tokenizer is not None else load_text_tokenizer(config.text_encoder)
            vocab = TextVocab.from_dict(tokenizer, record["vocab"])
            info = TokenizerInfo.from_dict(record["tokenizer"])
            model = cls(config, vocab, info, record["preprocessing"], record.get("codebook_dim"))
        except KeyError as err:
            raise ValueError(f"{directory}: task.json lacks {err}") from None
        if transformer.config != model.transformer_config:
            raise ValueError(
                f"{directory}: transformer config {transformer.config} does not match the task config "
                f"({model.transformer_config})"
            )
        model.transformer = transformer
        missing, unexpected = model.load_state_dict(heads, strict=False)
        missing = [k for k in missing if not k.startswith("transformer.")]
        if missing or unexpected:
            raise ValueError(
                f"{directory}: heads.safetensors: missing {missing}, unexpected {list(unexpected)}"
            )
        return model.to(map_location).eval()


def build(
    config: GroundingConfig, train_set: GroundingDataset, codebook: Tensor | None = None
) -> GroundingModel:
    """A fresh model for the codes of ``train_set``: text vocabulary from its expressions, image embeddings
    from ``codebook`` (K×D) or — with ``config.init_from_codebook`` and no ``codebook`` — from the tokenizer
    folder the code manifest records."""
    tokenizer = train_set.tokenizer
    vocab = TextVocab.build(tokenizer, train_set.expressions, mode=config.text_vocab)
    manifest = train_set.codes.manifest
    if config.init_from_codebook and codebook is None:
        codebook = load_codebook(manifest)
    dim = int(codebook.shape[1]) if config.init_from_codebook and codebook is not None else None
    model = GroundingModel(config, vocab, manifest.tokenizer, manifest.preprocessing, dim)
    if config.init_from_codebook and codebook is not None:
        model.transformer.init_image_embeddings(codebook)
    return model
