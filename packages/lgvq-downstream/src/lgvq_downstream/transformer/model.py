"""``CodeTransformer``: one decoder-style transformer over ``[prefix | image codes | text]`` for every task.

Captioning feeds image codes and a BOS-started caption (causal or prefix-LM) and reads ``text_logits``;
VQA/grounding read ``hidden`` into their own heads; generation reads ``image_logits``. Continuous prefix
embeddings B×P×C (a ClipCap-style mapping network's output) come first. Each token gets a learned position
(0..N−1 over the whole sequence) and a segment embedding (prefix / image / text)::

    model = CodeTransformer(CodeTransformerConfig(image_vocab_size=1025, text_vocab_size=30522))
    out = model(image_codes=codes, text_tokens=caption)          # codes B×I, caption B×T (int64)
    loss = model.next_token_loss(out, caption, "text")
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lgvq_downstream.transformer.attention import Block, attention_mask
from lgvq_downstream.transformer.cache import KVCache
from lgvq_downstream.transformer.config import CodeTransformerConfig

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "CodeTransformer", "CodeTransformerOutput", "Modality"]

logger = logging.getLogger(__name__)

Modality = Literal["image", "text"]
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "lgvq-code-transformer"
FORMAT_VERSION = 1
SEGMENT_IDS = {"prefix": 0, "image": 1, "text": 2}


@dataclass
class CodeTransformerOutput:
    """``hidden`` B×N×C (after the final LayerNorm) for the N positions fed in this call; ``segments`` maps
    each segment present in this call to its slice of the N axis; ``cache`` is the updated cache, if any."""

    hidden: Tensor
    segments: dict[str, slice]
    cache: KVCache | None = None

    def segment(self, name: str) -> Tensor:
        """Hidden states of one segment, B×n×C."""
        return self.hidden[:, self.segments[name]]


class CodeTransformer(nn.Module):
    """See the module docstring; all sizes come from ``CodeTransformerConfig``."""

    def __init__(self, config: CodeTransformerConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.image_embed = nn.Embedding(c.image_vocab_size, c.image_embed_dim)
        self.image_proj: nn.Module = (
            nn.Linear(c.image_embed_dim, c.width, bias=c.bias)
            if c.image_embed_dim != c.width
            else nn.Identity()
        )
        self.text_embed = nn.Embedding(c.text_vocab_size, c.width)
        self.pos_embed = nn.Embedding(c.max_positions, c.width)
        self.segment_embed = nn.Embedding(len(SEGMENT_IDS), c.width)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(
            Block(c.width, c.heads, c.mlp_ratio, c.dropout, c.bias) for _ in range(c.layers)
        )
        self.ln_f = nn.LayerNorm(c.width, bias=c.bias)
        self.image_head = nn.Linear(c.width, c.image_vocab_size, bias=False)
        self.text_head = None if c.tie_text_embeddings else nn.Linear(c.width, c.text_vocab_size, bias=False)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)
            elif isinstance(module, nn.Linear):
                nn.init.normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        for block in self.blocks:
            block.init_weights(self.config.layers)

    # ------------------------------------------------------------------------------------------- embeddings

    @torch.no_grad()
    def init_image_embeddings(self, codebook: Tensor) -> None:
        """Copy a tokenizer's K×D codebook into rows 0..K−1 of the image embedding table (rows ≥ K, the
        reserved ids, keep their init). D must equal ``config.image_embed_dim`` (set
        ``init_from_codebook=True, codebook_dim=D``; a learned D→width projection then follows the table)."""
        if codebook.ndim != 2:
            raise ValueError(f"codebook must be K×D, got shape {tuple(codebook.shape)}")
        k, d = codebook.shape
        if k > self.config.image_vocab_size:
            raise ValueError(f"codebook has {k} codes but image_vocab_size is {self.config.image_vocab_size}")
        if d != self.image_embed.embedding_dim:
            raise ValueError(
                f"codebook dim {d} != image embedding dim {self.image_embed.embedding_dim}; "
                f"build the model with init_from_codebook=True, codebook_dim={d}"
            )
        self.image_embed.weight[:k].copy_(codebook.to(self.image_embed.weight))
        logger.info("image embeddings initialised from a %d×%d codebook", k, d)

    def embed_image(self, codes: Tensor) -> Tensor:
        """codes B×I int64 → B×I×C (codebook rows, projected to the width when D ≠ C)."""
        return self.image_proj(self.image_embed(codes))

    def embed_text(self, tokens: Tensor) -> Tensor:
        """tokens B×T int64 → B×T×C."""
        return self.text_embed(tokens)

    # ------------------------------------------------------------------------------------------- forward

    def forward(
        self,
        *,
        prefix_embeds: Tensor | None = None,
        image_codes: Tensor | None = None,
        text_tokens: Tensor | None = None,
        text_mask: Tensor | None = None,
        prefix_length: int | None = None,
        cache: KVCache | None = None,
        prefix_mask: Tensor | None = None,
        image_extra: Tensor | None = None,
    ) -> CodeTransformerOutput:
        """Run the segments given (any subset, in ``[prefix | config.segment_order]`` order).

        Args:
            prefix_embeds: B×P×C continuous prefix.
            image_codes: B×I int64 image-code ids.
            text_tokens: B×T int64 text-token ids.
            text_mask: B×T bool, True for real tokens (padding is hidden as a key).
            prefix_length: bidirectional prefix for ``attention="prefix"``; default: every position before
                the last segment of the first call (kept in the cache for later calls).
            cache: a ``KVCache`` to read earlier positions from and append these to (incremental decoding).
            prefix_mask: B×P bool, True for real prefix positions (padding is hidden as a key).
            image_extra: B×I×C added to the image-code embeddings (e.g. a spatially aligned condition).
        """
        order = ["prefix", *self.config.segment_order.split("_")]
        given = {"prefix": prefix_embeds, "image": image_codes, "text": text_tokens}
        pieces: list[tuple[str, Tensor]] = []
        for name in order:
            value = given[name]
            if value is None or value.shape[1] == 0:
                continue
            if name == "prefix":
                if value.shape[-1] != self.config.width:
                    raise ValueError(
                        f"prefix_embeds must be B×P×{self.config.width}, got {tuple(value.shape)}"
                    )
                pieces.append((name, value))
            elif name == "image":
                emb = self.embed_image(value)
                if image_extra is not None:
                    if image_extra.shape != emb.shape:
                        raise ValueError(
                            f"image_extra must be B×I×C = {tuple(emb.shape)}, got {tuple(image_extra.shape)}"
                        )
                    emb = emb + image_extra
                pieces.append((name, emb))
            else:
                pieces.append((name, self.embed_text(value)))
        if not pieces:
            raise ValueError("nothing to run: pass prefix_embeds, image_codes and/or text_tokens")
        batch, device = pieces[0][1].shape[0], pieces[0][1].device
        segments, types, start = {}, [], 0
        for name, emb in pieces:
            segments[name] = slice(start, start + emb.shape[1])
            types.append(torch.full((emb.shape[1],), SEGMENT_IDS[name], device=device))
            start += emb.shape[1]
        n = start
        past = cache.length if cache is not None else 0
        if past + n > self.config.max_positions:
            raise ValueError(f"sequence length {past + n} exceeds max_positions {self.config.max_positions}")
        positions = torch.arange(past, past + n, device=device)
        x = torch.cat([emb for _, emb in pieces], dim=1)
        x = self.drop(x + self.pos_embed(positions) + self.segment_embed(torch.cat(types)))

        key_mask = None
        for name, segment_mask in (("text", text_mask), ("prefix", prefix_mask)):
            if segment_mask is not None and name in segments:
                if key_mask is None:
                    key_mask = torch.ones(batch, n, dtype=torch.bool, device=device)
                key_mask[:, segments[name]] = segment_mask.to(torch.bool)
        if cache is not None:
            key_mask = cache.extend_mask(key_mask, batch, n, device)
        if prefix_length is None and cache is not None:
            prefix_length = cache.prefix_length
        if prefix_length is None:
            prefix_length = past + n - (pieces[-1][1].shape[1] if len(pieces) > 1 else n)
        if cache is not None and cache.prefix_length is None:
            cache.prefix_length = prefix_length
        mask = attention_mask(
            self.config.attention, positions, past + n, prefix_length=prefix_length, key_mask=key_mask
        )
        for i, block in enumerate(self.blocks):
            x = block(x, mask, cache, i)
        return CodeTransformerOutput(hidden=self.ln_f(x), segments=segments, cache=cache)

    # ------------------------------------------------------------------------------------------- heads

    def image_logits(self, hidden: Tensor) -> Tensor:
        """hidden …×C → image-code logits …×K'."""
        return self.image_head(hidden)

    def text_logits(self, hidden: Tensor) -> Tensor:
        """hidden …×C → text-token logits …×V (tied to the text embeddings unless configured otherwise)."""
        if self.text_head is None:
            return F.linear(hidden, self.text_embed.weight)
        return self.text_head(hidden)

    def logits(self, hidden: Tensor, modality: Modality) -> Tensor:
        return self.image_logits(hidden) if modality == "image" else self.text_logits(hidden)

    def next_token_loss(
        self, out: CodeTransformerOutput, tokens: Tensor, modality: Modality, mask: Tensor | None = None
    ) -> Tensor:
        """Mean cross-entropy of tokens[:, 1:] predicted from the positions of tokens[:, :-1] (the segment's
        first token is the given start token). ``mask`` B×T (True = real) drops padded targets."""
        logits = self.logits(out.segment(modality)[:, :-1], modality)
        targets = tokens[:, 1:]
        if mask is not None:
            targets = targets.masked_fill(~mask[:, 1:].to(torch.bool), -100)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)

    def new_cache(self) -> KVCache:
        return KVCache(self.config.layers)

    # ------------------------------------------------------------------------------------------- persistence

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` atomically (temp dir +
        ``os.replace``)."""
        return write_model_folder(directory, self, self.config.to_dict(), FORMAT_NAME, FORMAT_VERSION)

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str = "cpu"
    ) -> CodeTransformer:
        """Load a model written by ``save_pretrained``; any key or shape mismatch raises ``ValueError``."""
        return read_model_folder(
            directory, CodeTransformerConfig.from_dict, cls, FORMAT_NAME, FORMAT_VERSION, map_location
        )


def write_model_folder(
    directory: str | os.PathLike[str], model: nn.Module, config: dict, format_name: str, format_version: int
) -> Path:
    """``model.safetensors`` + ``config.json`` (``{"format", "format_version", "config"}``) in ``directory``,
    written to a temporary sibling and renamed into place."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": format_name})
        meta = {"format": format_name, "format_version": format_version, "config": config}
        (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def read_model_folder(
    directory: str | os.PathLike[str],
    parse_config: Callable[[Any], Any],
    build: Callable[[Any], nn.Module],
    format_name: str,
    format_version: int,
    map_location: str = "cpu",
) -> Any:
    """The model of a folder written by :func:`write_model_folder`: ``build(parse_config(meta["config"]))``
    with the weights loaded strictly; ``FileNotFoundError`` / ``ValueError`` naming the file otherwise."""
    directory = Path(directory)
    config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: not found (expected a directory written by save_pretrained)")
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{config_path}: invalid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != format_name:
        raise ValueError(f"{config_path}: not an {format_name} config (field 'format')")
    if meta.get("format_version") != format_version:
        raise ValueError(f"{config_path}: unsupported format_version {meta.get('format_version')!r}")
    try:
        config = parse_config(meta.get("config"))
    except ValueError as err:
        raise ValueError(f"{config_path}: {err}") from err
    model = build(config)
    try:
        model.load_state_dict(load_file(str(weights_path), device=map_location), strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights_path}: state dict does not match the config: {err}") from err
    return model


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is renamed aside first, then removed."""
    if not dst.exists():
        os.replace(src, dst)
        return
    old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
    if old.exists():
        shutil.rmtree(old)
    os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)
