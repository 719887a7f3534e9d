"""CodeTransformer: masks, KV cache vs full recompute, samplers, beam search, codebook init, save/load,
overfitting."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch import nn

from lgvq_core.config import ConfigError
from lgvq_downstream.transformer import (
    CodeTransformer,
    CodeTransformerConfig,
    attention_mask,
    beam_search,
    filter_logits,
    generate,
)

BOS = 1


def tiny(**overrides) -> CodeTransformer:
    """A 2-layer width-32 model with large random weights, so that greedy/sampled outputs vary."""
    kwargs = dict(image_vocab_size=12, text_vocab_size=10, width=32, layers=2, heads=4, max_positions=48)
    kwargs.update(overrides)
    model = CodeTransformer(CodeTransformerConfig(**kwargs))
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.ndim >= 2:
                param.normal_(0.0, 0.3)
            elif "bias" in name:
                param.normal_(0.0, 0.1)
    return model.eval()


def inputs(batch: int = 3, codes: int = 6) -> dict[str, torch.Tensor]:
    return {
        "image_codes": torch.randint(0, 12, (batch, codes)),
        "text_tokens": torch.full((batch, 1), BOS, dtype=torch.long),
    }


# ----------------------------------------------------------------------------------------------------- masks


def test_attention_mask_matrices() -> None:
    positions = torch.arange(5)
    causal = attention_mask("causal", positions, 5)[0, 0]
    assert torch.equal(causal, torch.ones(5, 5, dtype=torch.bool).tril())
    prefix = attention_mask("prefix", positions, 5, prefix_length=3)[0, 0].int()
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    )
    assert torch.equal(prefix, expected)
    assert attention_mask("bidirectional", positions, 5) is None
    # a padded key is hidden from every other query but each query still sees itself
    padded = attention_mask("bidirectional", positions, 5, key_mask=torch.tensor([[1, 1, 0, 1, 1]]))[0, 0]
    assert not padded[0, 2] and not padded[4, 2] and padded[2, 2] and padded[0, 4]


def test_causal_outputs_ignore_later_tokens() -> None:
    model = tiny()
    x = inputs(batch=2)
    text = torch.randint(0, 10, (2, 8))
    changed = text.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 10
    a = model(image_codes=x["image_codes"], text_tokens=text).hidden
    b = model(image_codes=x["image_codes"], text_tokens=changed).hidden
    t = 6 + 5  # first changed position (6 image codes before the text)
    torch.testing.assert_close(a[:, :t], b[:, :t], rtol=0, atol=1e-6)
    assert (a[:, t:] - b[:, t:]).abs().amax() > 1e-3


def test_prefix_lm_is_bidirectional_inside_the_prefix_only() -> None:
    text = torch.randint(0, 10, (2, 5))
    codes = torch.randint(0, 12, (2, 6))
    last_code = codes.clone()
    last_code[:, -1] = (last_code[:, -1] + 1) % 12
    later_text = text.clone()
    later_text[:, 3] = (later_text[:, 3] + 1) % 10
    prefix_model = tiny(attention="prefix")
    causal_model = tiny(attention="causal")
    causal_model.load_state_dict(prefix_model.state_dict())

    def run(m, c, t):
        return m(image_codes=c, text_tokens=t).hidden

    # the last image code reaches the first image position only in prefix-LM mode
    assert (
        run(prefix_model, codes, text)[:, 0] - run(prefix_model, last_code, text)[:, 0]
    ).abs().amax() > 1e-3
    torch.testing.assert_close(
        run(causal_model, codes, text)[:, :5], run(causal_model, last_code, text)[:, :5], rtol=0, atol=1e-6
    )
    # text stays causal: text token 3 changes nothing before position 6 + 3
    torch.testing.assert_close(
        run(prefix_model, codes, text)[:, :9], run(prefix_model, codes, later_text)[:, :9], rtol=0, atol=1e-6
    )
    # an explicit prefix_length=0 turns prefix mode into causal mode
    torch.testing.assert_close(
        prefix_model(image_codes=codes, text_tokens=text, prefix_length=0).hidden,
        run(causal_model, codes, text),
        rtol=0,
        atol=1e-6,
    )


def test_bidirectional_and_padding_mask() -> None:
    model = tiny(attention="bidirectional")
    codes, text = torch.randint(0, 12, (2, 6)), torch.randint(0, 10, (2, 5))
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    changed = text.clone()
    changed[0, 4] = (changed[0, 4] + 1) % 10  # a padded position of row 0
    a = model(image_codes=codes, text_tokens=text, text_mask=mask).hidden
    b = model(image_codes=codes, text_tokens=changed, text_mask=mask).hidden
    torch.testing.assert_close(a[0, :9], b[0, :9], rtol=0, atol=1e-6)  # real positions of row 0 unaffected
    c = model(image_codes=codes, text_tokens=changed).hidden  # unmasked: the change reaches position 0
    assert (a[0, 0] - c[0, 0]).abs().amax() > 1e-3


# ------------------------------------------------------------------------------------------ cache / sampling


@pytest.mark.parametrize("attention", ["causal", "prefix"])
def test_incremental_hidden_states_equal_full_forward(attention: str) -> None:
    model = tiny(attention=attention)
    codes, text = torch.randint(0, 12, (2, 6)), torch.randint(0, 10, (2, 5))
    prefix = torch.randn(2, 3, 32)
    full = model(prefix_embeds=prefix, image_codes=codes, text_tokens=text[:, :1]).hidden
    cache = model.new_cache()
    first = model(prefix_embeds=prefix, image_codes=codes, text_tokens=text[:, :1], cache=cache).hidden
    torch.testing.assert_close(first, full, rtol=0, atol=1e-5)
    full = model(prefix_embeds=prefix, image_codes=codes, text_tokens=text, prefix_length=9).hidden
    for t in range(1, 5):
        step = model(text_tokens=text[:, t : t + 1], cache=cache).hidden
        torch.testing.assert_close(step[:, 0], full[:, 9 + t], rtol=0, atol=1e-5)
    assert cache.length == 3 + 6 + 5


@pytest.mark.parametrize("attention", ["causal", "prefix"])
def test_kv_cache_greedy_equals_full_recompute(attention: str) -> None:
    model = tiny(attention=attention)
    x = inputs()
    cached = generate(model, **x, max_new_tokens=12, temperature=0.0)
    full = generate(model, **x, max_new_tokens=12, temperature=0.0, use_cache=False)
    assert cached.shape == (3, 13)
    assert torch.equal(cached, full)
    assert cached[:, 1:].unique().numel() > 2, "degenerate test model: greedy output is constant"


@pytest.mark.parametrize(
    "kwargs", [{"top_k": 4}, {"top_p": 0.8}, {"temperature": 1.5, "top_k": 5, "top_p": 0.9}]
)
def test_kv_cache_sampling_equals_full_recompute(kwargs: dict) -> None:
    model = tiny()
    x = inputs(batch=4)
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(123)
        outs.append(generate(model, **x, max_new_tokens=10, use_cache=use_cache, generator=gen, **kwargs))
    assert torch.equal(outs[0], outs[1])
    greedy = generate(model, **x, max_new_tokens=10, temperature=0.0)
    assert not torch.equal(outs[0], greedy), "sampling returned the greedy sequence for every row"


def test_image_generation_with_text_first_and_prefix_embeddings() -> None:
    model = tiny(segment_order="text_image")
    text, sos = torch.randint(0, 10, (2, 4)), torch.full((2, 1), 11)
    prefix = torch.randn(2, 2, 32)
    kwargs = dict(modality="image", prefix_embeds=prefix, text_tokens=text, image_codes=sos, max_new_tokens=8)
    cached = generate(model, **kwargs, temperature=0.0, suppress_ids=[11])
    full = generate(model, **kwargs, temperature=0.0, suppress_ids=[11], use_cache=False)
    assert torch.equal(cached, full) and cached.shape == (2, 9)
    assert not (cached[:, 1:] == 11).any()
    with pytest.raises(ValueError, match="must be last"):
        generate(model, image_codes=sos, text_tokens=text, max_new_tokens=2)  # text is not last here


def test_eos_stops_rows_and_pads() -> None:
    model = tiny()
    x = inputs()
    free = generate(model, **x, max_new_tokens=12, temperature=0.0)
    eos = int(free[0, 3])  # row 0 emits this at step 3 (or earlier)
    out = generate(model, **x, max_new_tokens=12, temperature=0.0, eos_id=eos, pad_id=0)
    for row in out:
        hits = (row[1:] == eos).nonzero()
        if len(hits):
            assert (row[2 + int(hits[0]) :] == 0).all()
    assert (out[0, 1:] == eos).any()


def test_filter_logits_top_k_and_top_p() -> None:
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).sum() == 2
    kept = torch.isfinite(filter_logits(logits, top_p=0.8))[0].tolist()
    assert kept == [True, True, True, False, False]  # 0.5 + 0.2 < 0.8 ≤ 0.5 + 0.2 + 0.15
    assert torch.isfinite(filter_logits(logits, top_p=0.3))[0].tolist() == [True, False, False, False, False]


# ----------------------------------------------------------------------------------------------- beam search


def test_beam_one_equals_greedy_with_and_without_eos() -> None:
    model = tiny()
    x = inputs()
    greedy = generate(model, **x, max_new_tokens=10, temperature=0.0)
    assert torch.equal(beam_search(model, **x, beam_size=1, max_new_tokens=10).tokens, greedy)
    eos = int(greedy[1, 4])
    greedy_eos = generate(model, **x, max_new_tokens=10, temperature=0.0, eos_id=eos, pad_id=0)
    beam = beam_search(model, **x, beam_size=1, max_new_tokens=10, eos_id=eos, pad_id=0)
    assert torch.equal(beam.tokens, greedy_eos)


def test_beam_search_finds_the_exact_best_sequence() -> None:
    model = tiny(text_vocab_size=5)
    x = inputs(batch=2)
    steps = 3
    beam = beam_search(model, **x, beam_size=5 ** (steps - 1), max_new_tokens=steps, length_penalty=0.0)
    # brute force over all 5^3 continuations
    seqs = torch.tensor(list(itertools.product(range(5), repeat=steps)))
    for b in range(2):
        text = torch.cat([torch.full((len(seqs), 1), BOS), seqs], dim=1)
        with torch.no_grad():
            out = model(image_codes=x["image_codes"][b : b + 1].expand(len(seqs), -1), text_tokens=text)
            logp = model.text_logits(out.segment("text")[:, :-1]).log_softmax(-1)
        total = logp.gather(-1, seqs[..., None]).squeeze(-1).sum(-1)
        assert torch.equal(beam.tokens[b, 1:], seqs[total.argmax()])
        assert beam.scores[b] == pytest.approx(float(total.max()), abs=1e-4)
        assert total.max() > total.median() + 1.0  # the search problem is not trivially flat


def _reference_beam(model: CodeTransformer, codes: torch.Tensor, beam: int, steps: int) -> list[int]:
    """Plain beam search that recomputes the full sequence for every hypothesis (no cache, no EOS)."""
    hyps: list[tuple[list[int], float]] = [([], 0.0)]
    for _ in range(steps):
        candidates = []
        for seq, score in hyps:
            with torch.no_grad():
                out = model(image_codes=codes, text_tokens=torch.tensor([[BOS, *seq]]))
                logp = model.text_logits(out.hidden[:, -1]).log_softmax(-1)[0]
            candidates += [(seq + [tok], score + float(logp[tok])) for tok in range(logp.numel())]
        hyps = sorted(candidates, key=lambda h: -h[1])[:beam]
    return hyps[0][0]


def test_cached_beam_search_equals_recomputing_reference() -> None:
    model = tiny()
    x = inputs(batch=4)
    out = beam_search(model, **x, beam_size=3, max_new_tokens=6, length_penalty=0.0)
    greedy = generate(model, **x, max_new_tokens=6, temperature=0.0)
    for b in range(4):
        assert out.tokens[b, 1:].tolist() == _reference_beam(model, x["image_codes"][b : b + 1], 3, 6)
    assert not torch.equal(out.tokens, greedy), "beam search never left the greedy path: weak test"


def test_beam_search_prefers_finished_hypotheses_by_normalised_score() -> None:
    model = tiny()
    x = inputs(batch=2)
    out = beam_search(model, **x, beam_size=3, max_new_tokens=8, eos_id=2, pad_id=0, length_penalty=1.0)
    assert out.tokens.shape[0] == 2 and out.tokens.shape[1] <= 9
    for row in out.tokens:
        hits = (row[1:] == 2).nonzero()
        if len(hits):
            assert (row[2 + int(hits[0]) :] == 0).all()
    assert torch.isfinite(out.scores).all() and (out.scores <= 0).all()


# ------------------------------------------------------------------------------------------------- init / io


def test_codebook_init_copies_projected_codebook() -> None:
    codebook = torch.randn(10, 6)
    model = tiny(init_from_codebook=True, codebook_dim=6)
    reserved_before = model.image_embed.weight[10:].clone()
    model.init_image_embeddings(codebook)
    idx = torch.tensor([[0, 3, 9, 9]])
    assert isinstance(model.image_proj, nn.Linear) and model.image_proj.in_features == 6
    torch.testing.assert_close(model.embed_image(idx), model.image_proj(codebook[idx]))
    assert torch.equal(model.image_embed.weight[:10], codebook)
    assert torch.equal(model.image_embed.weight[10:], reserved_before)  # reserved ids untouched

    same = tiny(init_from_codebook=True, codebook_dim=32)
    wide = torch.randn(10, 32)
    same.init_image_embeddings(wide)
    assert torch.equal(same.embed_image(idx), wide[idx])  # D == width: no projection
    with pytest.raises(ValueError, match="codebook_dim=6"):
        tiny().init_image_embeddings(codebook)
    with pytest.raises(ValueError, match="13 codes"):
        model.init_image_embeddings(torch.randn(13, 6))


def test_save_load_round_trip(tmp_path) -> None:
    model = tiny(init_from_codebook=True, codebook_dim=6, attention="prefix", tie_text_embeddings=False)
    x = inputs()
    target = tmp_path / "ct"
    model.save_pretrained(target)
    model.save_pretrained(target)  # overwriting an existing directory works
    loaded = CodeTransformer.from_pretrained(target).eval()
    assert loaded.config == model.config
    assert torch.equal(loaded(**x).hidden, model(**x).hidden)
    assert torch.equal(
        generate(loaded, **x, max_new_tokens=5, temperature=0.0),
        generate(model, **x, max_new_tokens=5, temperature=0.0),
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ct"]  # no temporary leftovers

    meta = json.loads((target / "config.json").read_text())
    meta["config"]["width"] = 64
    (target / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="does not match"):
        CodeTransformer.from_pretrained(target)
    meta["config"]["colour"] = "red"
    (target / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="unknown key"):
        CodeTransformer.from_pretrained(target)


def test_config_validation_and_round_trip() -> None:
    config = CodeTransformerConfig(width=64, heads=4, attention="prefix")
    assert CodeTransformerConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="heads"):
        CodeTransformerConfig(width=30, heads=4)
    with pytest.raises(ConfigError, match="codebook_dim"):
        CodeTransformerConfig(init_from_codebook=True)
    with pytest.raises(ConfigError):
        CodeTransformerConfig.from_dict({**config.to_dict(), "attention": "sideways"})
    with pytest.raises(ValueError, match="max_positions"):
        tiny(max_positions=8)(**inputs(codes=8))


# -------------------------------------------------------------------------------------------------- training


def test_tiny_model_overfits_a_copy_task() -> None:
    """Caption = BOS + (each image code + 2) + EOS; 16 examples learned in 150 steps."""
    torch.manual_seed(0)
    model = CodeTransformer(
        CodeTransformerConfig(
            image_vocab_size=8, text_vocab_size=12, width=32, layers=2, heads=4, max_positions=16
        )
    )
    codes = torch.randint(0, 8, (16, 4))
    eos = 11
    text = torch.cat([torch.full((16, 1), BOS), codes + 2, torch.full((16, 1), eos)], dim=1)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(150):
        loss = model.next_token_loss(model(image_codes=codes, text_tokens=text), text, "text")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[0] > 2.0 and losses[-1] < 0.05, losses[::15]
    model.eval()
    out = generate(
        model, image_codes=codes, text_tokens=text[:, :1], max_new_tokens=6, temperature=0.0, eos_id=eos
    )
    assert (out[:, : text.shape[1]] == text).float().mean() > 0.95
