"""``Captioner``: image codes → code embeddings (the ``CodeTransformer``'s image table) → mapping network →
P prefix vectors → caption tokens from the same ``CodeTransformer`` in prefix-LM mode (bidirectional over the
prefix, causal over the caption). Teacher forcing with ``next_token_loss``; beam search or greedy decoding.

Shapes: B batch, h×w code grid, P prefix length, T caption tokens (BOS first), C width.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lgvq_downstream
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo
from lgvq_downstream.tasks.captioning.config import CaptionConfig
from lgvq_downstream.tasks.captioning.mapper import build_mapper
from lgvq_downstream.tasks.common.checkpoint import read_checkpoint, write_checkpoint
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer
from lgvq_downstream.transformer import CodeTransformer, CodeTransformerConfig, beam_search, generate

__all__ = ["TASK", "Captioner"]

TASK = "captioning"


class Captioner(nn.Module):
    """See the module docstring.

    Args:
        config: the task config.
        vocab: caption vocabulary (model ids ↔ text).
        tokenizer_info: fingerprint of the tokenizer whose codes the model reads (grid, K, hashes).
        baseline_caption: the most frequent training caption (the trivial baseline).
        codebook_dim: D of the tokenizer's code vectors when the image table is codebook-shaped.
    """

    def __init__(
        self,
        config: CaptionConfig,
        vocab: TextVocab,
        tokenizer_info: TokenizerInfo,
        baseline_caption: str,
        codebook_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.vocab = vocab
        self.tokenizer_info = tokenizer_info
        self.baseline_caption = baseline_caption
        self.codebook_dim = codebook_dim
        self.source: Path | None = None  # the checkpoint folder it was loaded from
        self.transformer = CodeTransformer(self.transformer_config())
        self.mapper = build_mapper(
            config.mapper,
            tokenizer_info.grid,
            config.width,
            config.prefix_length,
            layers=config.mapper_layers,
            heads=config.heads,
            pool=config.mlp_pool,
        )

    def transformer_config(self) -> CodeTransformerConfig:
        c = self.config
        return CodeTransformerConfig(
            image_vocab_size=self.tokenizer_info.codebook_size,
            text_vocab_size=self.vocab.size,
            width=c.width,
            layers=c.layers,
            heads=c.heads,
            mlp_ratio=c.mlp_ratio,
            dropout=c.dropout,
            max_positions=c.prefix_length + c.max_caption_tokens,
            attention="prefix",
            init_from_codebook=self.codebook_dim is not None,
            codebook_dim=self.codebook_dim,
        )

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def prefix(self, codes: Tensor) -> Tensor:
        """codes B×h×w (or B×I) int64 → prefix B×P×C."""
        return self.mapper(self.transformer.embed_image(codes.flatten(1)))

    def forward(self, codes: Tensor, tokens: Tensor, mask: Tensor | None = None) -> Tensor:
        """Mean next-token cross-entropy of the caption tokens B×T (BOS first; ``mask`` B×T True = real)."""
        out = self.transformer(prefix_embeds=self.prefix(codes), text_tokens=tokens, text_mask=mask)
        return self.transformer.next_token_loss(out, tokens, "text", mask)

    @torch.no_grad()
    def generate_ids(
        self, codes: Tensor, *, beam_size: int | None = None, max_new_tokens: int | None = None
    ) -> Tensor:
        """Caption ids B×n after BOS (EOS, then PAD, at the end): greedy when ``beam_size == 1``."""
        beam = self.config.beam_size if beam_size is None else beam_size
        limit = self.config.generation_limit if max_new_tokens is None else max_new_tokens
        codes = codes.to(self.device)
        prefix = self.prefix(codes)
        bos = torch.full((codes.shape[0], 1), self.vocab.bos_id, dtype=torch.long, device=self.device)
        suppress = [self.vocab.pad_id, self.vocab.bos_id] + (
            [self.vocab.unk_id] if self.vocab.mode == "train" else []
        )
        common = {
            "prefix_embeds": prefix,
            "text_tokens": bos,
            "max_new_tokens": limit,
            "eos_id": self.vocab.eos_id,
            "pad_id": self.vocab.pad_id,
            "suppress_ids": suppress,
        }
        if beam == 1:
            tokens = generate(self.transformer, temperature=0.0, **common)
        else:
            tokens = beam_search(
                self.transformer, beam_size=beam, length_penalty=self.config.length_penalty, **common
            ).tokens
        return tokens[:, 1:]

    def caption(
        self, codes: Tensor, *, beam_size: int | None = None, max_new_tokens: int | None = None
    ) -> list[str]:
        """codes B×h×w → B captions."""
        was_training = self.training
        self.eval()
        try:
            ids = self.generate_ids(codes, beam_size=beam_size, max_new_tokens=max_new_tokens)
        finally:
            self.train(was_training)
        return [self.vocab.decode(row.tolist()) for row in ids]

    # ------------------------------------------------------------------------------------------- persistence

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """``transformer/`` + ``heads.safetensors`` (mapper) + ``task.json`` (config, vocabulary, tokenizer
        fingerprint, baseline caption)."""
        meta: dict[str, Any] = {
            "config": self.config.to_dict(),
            "vocab": self.vocab.to_dict(),
            "tokenizer": self.tokenizer_info.to_dict(),
            "baseline_caption": self.baseline_caption,
            "codebook_dim": self.codebook_dim,
            "version": lgvq_downstream.__version__,
        }
        return write_checkpoint(directory, self, TASK, meta)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, text_tokenizer: Any = None, map_location: str = "cpu"
    ) -> Captioner:
        """Load a checkpoint of :meth:`save_pretrained` (the text tokenizer is reloaded from the config's
        ``text_encoder`` unless given)."""
        record, transformer, heads = read_checkpoint(directory, TASK, map_location=map_location)
        config = CaptionConfig.from_dict(record["config"])
        tokenizer = load_text_tokenizer(text_tokenizer if text_tokenizer is not None else config.text_encoder)
        model = cls(
            config,
            TextVocab.from_dict(tokenizer, record["vocab"]),
            TokenizerInfo.from_dict(record["tokenizer"]),
            str(record["baseline_caption"]),
            record.get("codebook_dim"),
        )
        if transformer.config != model.transformer.config:
            raise ValueError(f"{directory}: transformer config does not match task.json")
        state = {f"transformer.{k}": v for k, v in transformer.state_dict().items()} | heads
        model.load_state_dict(state, strict=True)
        model.source = Path(directory)
        return model.to(map_location).eval()
