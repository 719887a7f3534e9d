"""Autoregressive sampling for ``CodeTransformer``: greedy, temperature, top-k, top-p; KV cache or not.

The segment being generated (``modality``) must be the last one of the sequence and already hold at least one
token (its start token: BOS for a caption, an SOS id for image codes). Both paths (cached and full recompute)
draw the same random numbers in the same order, so with one seed they return the same tokens.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from lgvq_downstream.transformer.cache import KVCache
from lgvq_downstream.transformer.model import CodeTransformer, Modality

__all__ = ["filter_logits", "generate", "prepare_prompt", "sample_next_token"]


def filter_logits(logits: Tensor, *, top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Set logits outside the top-k and outside the top-p nucleus to −inf (B×V → B×V).

    top-p keeps the smallest set of most likely tokens whose probability sums to ≥ ``top_p`` (the most likely
    token is always kept).
    """
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # mass before this token already reaches top_p
        drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def sample_next_token(
    logits: Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """logits B×V → token ids B (int64). ``temperature == 0`` is greedy (argmax)."""
    if temperature < 0:
        raise ValueError(f"temperature must be ≥ 0, got {temperature}")
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = filter_logits(logits.float() / temperature, top_k=top_k, top_p=top_p)
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)


def prepare_prompt(
    model: CodeTransformer, modality: Modality, inputs: dict[str, Tensor | None]
) -> tuple[Tensor, dict[str, Tensor | None]]:
    """Check that ``modality`` is the last, non-empty segment; return (its tokens, the other inputs)."""
    key = "image_codes" if modality == "image" else "text_tokens"
    tokens = inputs.get(key)
    if tokens is None or tokens.ndim != 2 or tokens.shape[1] == 0:
        raise ValueError(f"{key} must hold the start token(s) of the {modality} segment (B×t, t ≥ 1)")
    other = "text" if modality == "image" else "image"
    other_key = "text_tokens" if other == "text" else "image_codes"
    order = model.config.segment_order.split("_")
    if inputs.get(other_key) is not None and order.index(other) > order.index(modality):
        raise ValueError(
            f"the {modality} segment must be last; segment_order is {model.config.segment_order!r}"
        )
    rest = {k: v for k, v in inputs.items() if k != key}
    return tokens, rest


def _suppress(logits: Tensor, suppress_ids: Sequence[int]) -> Tensor:
    if suppress_ids:
        logits = logits.clone()
        logits[:, list(suppress_ids)] = float("-inf")
    return logits


@torch.no_grad()
def generate(
    model: CodeTransformer,
    *,
    modality: Modality = "text",
    prefix_embeds: Tensor | None = None,
    image_codes: Tensor | None = None,
    text_tokens: Tensor | None = None,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
    suppress_ids: Sequence[int] = (),
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Extend the ``modality`` segment by up to ``max_new_tokens`` tokens.

    Returns:
        B×(t + n) int64: the prompt tokens followed by the new ones; after a row's ``eos_id`` the row holds
        ``pad_id``. Generation stops early once every row has produced ``eos_id``.
    """
    if model.config.attention == "bidirectional":
        raise ValueError("autoregressive generation needs attention='causal' or 'prefix'")
    inputs = {"prefix_embeds": prefix_embeds, "image_codes": image_codes, "text_tokens": text_tokens}
    tokens, rest = prepare_prompt(model, modality, inputs)
    key = "image_codes" if modality == "image" else "text_tokens"
    finished = torch.zeros(tokens.shape[0], dtype=torch.bool, device=tokens.device)
    cache: KVCache | None = model.new_cache() if use_cache else None
    out = model(**rest, **{key: tokens}, cache=cache)
    for step in range(max_new_tokens):
        logits = _suppress(model.logits(out.hidden[:, -1], modality), suppress_ids)
        nxt = sample_next_token(
            logits, temperature=temperature, top_k=top_k, top_p=top_p, generator=generator
        )
        nxt = torch.where(finished, torch.full_like(nxt, pad_id), nxt)
        tokens = torch.cat([tokens, nxt[:, None]], dim=1)
        if eos_id is not None:
            finished |= nxt == eos_id
        if bool(finished.all()) or step == max_new_tokens - 1:
            break
        if cache is not None:
            out = model(**{key: nxt[:, None]}, cache=cache)
        else:
            out = model(**rest, **{key: tokens})
    return tokens
