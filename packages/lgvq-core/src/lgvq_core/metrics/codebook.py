"""Codebook usage and perplexity over a whole evaluation set (all positions of all images, all ranks).

usage = fraction of the codes of a vocabulary selected at least once; perplexity = exp(−Σ p̄_k log p̄_k) with
p̄ the histogram normalised over the set (range [1, size]; BASELINES §5.3). Per-batch training perplexity is
not comparable.

Vocabularies ("groups") per base, from ``usage_groups(model)``:

- VQ-VAE, VQ-GAN, CVQ: ``codes`` (the K codes).
- VQCT: ``adjectives`` (A adjective codes), ``nouns`` (N noun codes) and ``words`` (all A + N word codes as
  one vocabulary, adjectives first, e.g. the 1949 + 4258 = 6207 codes of the paper). A position selects k
  adjective codes (``topk``, their mean is used) and one noun code; every selection counts, so with k = 2 a
  position adds 2 counts to ``adjectives``, 1 to ``nouns`` and 3 to ``words``. The packed VQCT tokens
  (A^k·N of them) are never counted as a vocabulary.

``codebook_usage_for(model)`` returns the counter for a tokenizer (``CodebookUsage`` or
``WordCodebookUsage``); feed it ``output.quant.indices`` (or ``model.encode(images)``) batch by batch and call
``compute()`` on every rank. Both return the same keys:

- ``usage``, ``perplexity``, ``num_codes``, ``histogram`` (list of counts): the primary vocabulary, ``codes``
  (flat bases) or ``words`` (VQCT);
- ``tokens``: token positions counted;
- for every group ``g`` of ``usage_groups``: ``{g}_usage``, ``{g}_perplexity``, ``{g}_size`` (its number of
  codes) and ``{g}_selections`` (its total count).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from lgvq_core.quantizers.distributed import all_reduce_sum

__all__ = [
    "CodebookUsage",
    "WordCodebookUsage",
    "codebook_usage_for",
    "usage_groups",
    "perplexity",
]


def perplexity(counts: Tensor) -> float:
    """exp(entropy) of a histogram of code counts."""
    p = counts.double() / counts.sum().clamp_min(1)
    return float(torch.exp(-(p * torch.log(p.clamp_min(1e-30))).sum()))


def _group_stats(name: str, counts: Tensor) -> dict[str, float | int]:
    return {
        f"{name}_usage": float((counts > 0).double().mean()),
        f"{name}_perplexity": perplexity(counts),
        f"{name}_size": int(counts.numel()),
        f"{name}_selections": float(counts.sum()),
    }


class CodebookUsage:
    """Histogram of code indices over one flat vocabulary of ``num_codes`` codes (group ``codes``).

    ``compute()`` all-reduces it over ranks (call it on every rank); keys in the module docstring.
    """

    def __init__(self, num_codes: int, device: torch.device | str = "cpu") -> None:
        self.num_codes = num_codes
        self.counts = torch.zeros(num_codes, dtype=torch.float64, device=device)

    def update(self, indices: Tensor) -> None:
        """indices: int64 of any shape with values in [0, num_codes)."""
        flat = indices.reshape(-1).to(self.counts.device)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_codes):
            raise ValueError(f"indices out of range [0, {self.num_codes})")
        self.counts += torch.bincount(flat, minlength=self.num_codes).double()

    def compute(self) -> dict[str, Any]:
        counts = all_reduce_sum(self.counts.clone())
        return {
            "usage": float((counts > 0).double().mean()),
            "perplexity": perplexity(counts),
            "tokens": float(counts.sum()),
            "histogram": counts.tolist(),
            "num_codes": self.num_codes,
            **_group_stats("codes", counts),
        }


class WordCodebookUsage:
    """VQCT usage from packed tokens: per sub-codebook (``adjectives``, ``nouns``) and over the ``words``.

    Args:
        num_adjectives, num_nouns: A and N.
        topk: adjective ids per token (the quantizer's ``topk``).

    ``compute()`` all-reduces over ranks (call it on every rank); keys in the module docstring, with
    ``histogram`` the A + N word counts (adjectives first).
    """

    def __init__(
        self, num_adjectives: int, num_nouns: int, topk: int, device: torch.device | str = "cpu"
    ) -> None:
        from lgvq_core.quantizers.vqct import num_word_tokens

        self.num_adjectives, self.num_nouns, self.topk = num_adjectives, num_nouns, topk
        self.num_tokens = num_word_tokens(num_adjectives, num_nouns, topk)
        self.counts = torch.zeros(num_adjectives + num_nouns, dtype=torch.float64, device=device)
        self.positions = 0

    @classmethod
    def from_quantizer(cls, quantizer: nn.Module, device: torch.device | str = "cpu") -> WordCodebookUsage:
        return cls(quantizer.num_adjectives, quantizer.num_nouns, quantizer.topk, device=device)

    def update(self, indices: Tensor) -> None:
        """indices: packed VQCT tokens (int64, any shape) in [0, A^k·N)."""
        from lgvq_core.quantizers.vqct import unpack_tokens

        flat = indices.reshape(-1).to(self.counts.device)
        if flat.numel() and (int(flat.min()) < 0 or int(flat.max()) >= self.num_tokens):
            raise ValueError(f"indices out of range [0, {self.num_tokens})")
        adjectives, nouns = unpack_tokens(flat, self.num_adjectives, self.num_nouns, self.topk)
        self.counts[: self.num_adjectives] += torch.bincount(
            adjectives.reshape(-1), minlength=self.num_adjectives
        ).double()
        self.counts[self.num_adjectives :] += torch.bincount(nouns, minlength=self.num_nouns).double()
        self.positions += flat.numel()

    def compute(self) -> dict[str, Any]:
        positions = torch.tensor([float(self.positions)], dtype=torch.float64, device=self.counts.device)
        reduced = all_reduce_sum(torch.cat([self.counts, positions]))
        words, tokens = reduced[:-1], float(reduced[-1])
        return {
            "usage": float((words > 0).double().mean()),
            "perplexity": perplexity(words),
            "tokens": tokens,
            "histogram": words.tolist(),
            "num_codes": int(words.numel()),
            **_group_stats("adjectives", words[: self.num_adjectives]),
            **_group_stats("nouns", words[self.num_adjectives :]),
            **_group_stats("words", words),
        }


def _quantizer_of(model: nn.Module) -> nn.Module:
    """The quantizer of a quantizer, a ``VQTokenizer`` or a wrapper with ``.base`` (``LanguageGuided``)."""
    for _ in range(4):
        if hasattr(model, "quantizer"):
            return model.quantizer
        base = getattr(model, "base", None)
        if not isinstance(base, nn.Module):
            break
        model = base
    return model


def _is_vqct(quantizer: nn.Module) -> bool:
    from lgvq_core.quantizers.vqct import VQCTQuantizer

    return isinstance(quantizer, VQCTQuantizer)


def usage_groups(model: nn.Module) -> dict[str, int]:
    """Vocabularies usage is reported over, name → number of codes, primary last.

    ``{"codes": K}`` for VQ/CVQ; ``{"adjectives": A, "nouns": N, "words": A + N}`` for VQCT. ``model`` is a
    quantizer, a ``VQTokenizer`` or a ``LanguageGuided`` model.
    """
    q = _quantizer_of(model)
    if _is_vqct(q):
        a, n = int(q.num_adjectives), int(q.num_nouns)
        return {"adjectives": a, "nouns": n, "words": a + n}
    return {"codes": int(q.num_tokens)}


def codebook_usage_for(
    model: nn.Module, device: torch.device | str = "cpu"
) -> CodebookUsage | WordCodebookUsage:
    """The usage counter for ``model``'s tokens (quantizer, ``VQTokenizer`` or ``LanguageGuided``)."""
    q = _quantizer_of(model)
    if _is_vqct(q):
        return WordCodebookUsage.from_quantizer(q, device=device)
    return CodebookUsage(int(q.num_tokens), device=device)
