"""VQCT vocabulary from captions with the offline POS tagger, co-occurrence graph and GCN normalisation."""

from __future__ import annotations

import pytest
import torch
from core_helpers import CAPTIONS, hashed_word_vectors

from lgvq_core.quantizers.vqct import normalized_adjacency
from lgvq_core.quantizers.vqct_vocabulary import build_word_codebook


def test_vocabulary_keeps_pos_filtered_words_above_the_count(word_spec):
    # CAPTIONS repeat 4 sentences 4 times; min_count=2 keeps words seen ≥ 3 times
    assert word_spec.adjectives == ["large", "red", "small", "blue", "striped", "green"]
    assert word_spec.nouns == ["circle", "square", "star", "triangle"]  # "stars" singularised
    co = dict(
        ((word_spec.adjectives[a], word_spec.nouns[n]), float(word_spec.cooccurrence[a, n]))
        for a, n in word_spec.cooccurrence.nonzero().tolist()
    )
    # "large red circle": only the adjective right before the noun forms an edge
    assert co == {
        ("red", "circle"): 8.0,
        ("red", "star"): 4.0,
        ("blue", "square"): 4.0,
        ("blue", "circle"): 4.0,
        ("striped", "star"): 4.0,
        ("green", "triangle"): 8.0,
    }


def test_prompt_templates_and_injected_embedder():
    seen: list[str] = []

    def embed(prompts):
        seen.extend(prompts)
        return hashed_word_vectors(prompts)

    spec = build_word_codebook(CAPTIONS, embed_words=embed, min_count=7)
    assert "a photo of red object" in seen and "a photo of circle" in seen
    torch.testing.assert_close(spec.noun_vectors[0], hashed_word_vectors(["a photo of circle"])[0])


def test_empty_vocabulary_is_an_error():
    with pytest.raises(ValueError, match="vocabulary empty"):
        build_word_codebook(["a red circle"], embed_words=hashed_word_vectors, min_count=10)


def test_gcn_normalisation_matches_dense_formula():
    edges = torch.tensor([[0, 1], [2, 2]])  # 0-2 and 1-2
    weights = torch.tensor([3.0, 1.0])
    src, dst, value, diag = normalized_adjacency(edges, weights, 3)
    dense = torch.zeros(3, 3)
    dense[dst, src] = value
    dense += torch.diag(diag)
    a = torch.tensor([[0.0, 0, 3], [0, 0, 1], [3, 1, 0]]) + torch.eye(3)
    d = a.sum(1).rsqrt()
    torch.testing.assert_close(dense, d[:, None] * a * d[None, :])


def test_vqct_tokens_are_adjective_noun_pairs(word_spec, images):
    from core_helpers import make_tokenizer

    tok = make_tokenizer("vqct", word_spec)
    tok.eval()
    tokens = tok.encode(images)
    adj, noun = tok.quantizer.split_pairs(tokens)
    assert tok.codebook_size == len(word_spec.adjectives) ** tok.quantizer.topk * len(word_spec.nouns)
    assert int(adj.max()) < len(word_spec.adjectives) and int(noun.max()) < len(word_spec.nouns)
    assert tok.codebook.shape == (len(word_spec.adjectives) + len(word_spec.nouns), 8)
    assert tok.embed_dim == 16  # adjective half + noun half
