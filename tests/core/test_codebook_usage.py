"""Codebook usage per vocabulary: K codes for VQ/CVQ, adjectives / nouns / word codes for VQCT."""

from __future__ import annotations

import math

import pytest
import torch
from core_helpers import make_tokenizer
from torch import nn

from lgvq_core.metrics.codebook import (
    CodebookUsage,
    WordCodebookUsage,
    codebook_usage_for,
    perplexity,
    usage_groups,
)
from lgvq_core.quantizers.vqct import pack_tokens


def _ppl(counts: list[float]) -> float:
    total = sum(counts)
    return math.exp(-sum(c / total * math.log(c / total) for c in counts if c > 0))


def test_flat_usage_keeps_its_keys_and_adds_the_codes_group():
    usage = CodebookUsage(8)
    usage.update(torch.tensor([[0, 0], [1, 2]]))
    usage.update(torch.tensor([3, 3, 3, 3]))
    out = usage.compute()
    assert out["usage"] == out["codes_usage"] == 4 / 8
    assert out["tokens"] == out["codes_selections"] == 8
    assert out["num_codes"] == out["codes_size"] == 8
    assert out["perplexity"] == out["codes_perplexity"] == pytest.approx(_ppl([2, 1, 1, 4]))
    assert out["histogram"] == [2, 1, 1, 4, 0, 0, 0, 0]


def test_word_usage_per_sub_codebook_and_over_word_codes():
    # A = 3 adjectives, N = 4 nouns, k = 2 adjectives per position
    usage = WordCodebookUsage(3, 4, 2)
    adjectives = torch.tensor([[0, 1], [0, 1], [1, 0]])
    nouns = torch.tensor([2, 2, 3])
    usage.update(pack_tokens(adjectives, nouns, 3, 4).view(1, 3, 1))
    usage.update(pack_tokens(torch.tensor([[0, 0]]), torch.tensor([2]), 3, 4))
    out = usage.compute()
    adj_counts, noun_counts = [5, 3, 0], [0, 0, 3, 1]
    assert out["tokens"] == 4  # positions
    assert out["adjectives_usage"] == 2 / 3 and out["adjectives_size"] == 3
    assert out["nouns_usage"] == 2 / 4 and out["nouns_size"] == 4
    assert out["words_usage"] == out["usage"] == 4 / 7 and out["words_size"] == out["num_codes"] == 7
    assert (
        out["adjectives_selections"] == 8 and out["nouns_selections"] == 4 and out["words_selections"] == 12
    )
    assert out["adjectives_perplexity"] == pytest.approx(_ppl(adj_counts))
    assert out["nouns_perplexity"] == pytest.approx(_ppl(noun_counts))
    assert out["words_perplexity"] == out["perplexity"] == pytest.approx(_ppl(adj_counts + noun_counts))
    assert out["histogram"] == adj_counts + noun_counts
    with pytest.raises(ValueError, match="out of range"):
        usage.update(torch.tensor([3 * 3 * 4]))


def test_uniform_word_use_gives_full_usage_and_perplexity():
    usage = WordCodebookUsage(2, 3, 1)
    usage.update(pack_tokens(torch.tensor([[0], [1], [0]]), torch.tensor([0, 1, 2]), 2, 3))
    usage.update(pack_tokens(torch.tensor([[1], [0], [1]]), torch.tensor([0, 1, 2]), 2, 3))
    out = usage.compute()
    assert out["adjectives_usage"] == out["nouns_usage"] == out["words_usage"] == 1.0
    assert out["adjectives_perplexity"] == pytest.approx(2.0)
    assert out["nouns_perplexity"] == pytest.approx(3.0)
    assert out["words_perplexity"] == pytest.approx(perplexity(torch.tensor([3.0, 3, 2, 2, 2])))


class _Wrapper(nn.Module):  # stands in for LanguageGuided (the tokenizer under ``.base``)
    def __init__(self, base):
        super().__init__()
        self.base = base


def test_groups_and_counters_per_base(word_spec, images):
    vq = make_tokenizer("vq")
    assert usage_groups(vq) == usage_groups(_Wrapper(vq)) == usage_groups(vq.quantizer) == {"codes": 32}
    assert isinstance(codebook_usage_for(_Wrapper(vq)), CodebookUsage)

    tok = make_tokenizer("vqct", word_spec)
    a, n = len(word_spec.adjectives), len(word_spec.nouns)
    assert usage_groups(_Wrapper(tok)) == {"adjectives": a, "nouns": n, "words": a + n}
    counter = codebook_usage_for(_Wrapper(tok))
    assert isinstance(counter, WordCodebookUsage) and counter.topk == tok.quantizer.topk
    tok.eval()
    with torch.no_grad():
        out = tok(images)
    counter.update(out.quant.indices)
    stats = counter.compute()
    # the eval counter sees exactly the selections the quantizer reports (k adjectives + 1 noun per position)
    assert stats["histogram"] == out.quant.usage.tolist()
    assert stats["tokens"] == out.quant.indices.numel()
    assert stats["words_selections"] == out.quant.indices.numel() * (tok.quantizer.topk + 1)
