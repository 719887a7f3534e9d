"""Bad inputs raise ValueError naming the value and what was expected; save/load round trip."""

from __future__ import annotations

import json

import pytest
import torch

from lgvq_downstream.generation import CodeGenerator, Condition
from tests.downstream.generation.helpers import CLASSES, GRID, TEXT_DIM, K, random_condition, tiny


def test_bad_code_ids_and_shapes() -> None:
    model = tiny("autoregressive")
    codes = torch.randint(0, K, (2, *GRID))
    codes[1, 2, 3] = K
    with pytest.raises(
        ValueError, match=r"codes ids must be in \[0, 16\) \(codebook_size=16\), got values in \[\d+, 16\]"
    ):
        model.loss(codes)
    with pytest.raises(ValueError, match=r"codes must be B×4×4 \(the code grid\), got shape \(2, 4, 5\)"):
        model.nll(torch.zeros(2, 4, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="integer code ids"):
        model.loss(torch.zeros(2, *GRID))
    keep = torch.ones(GRID, dtype=torch.bool)
    with pytest.raises(ValueError, match=r"kept code ids must be in \[0, 16\)"):
        model.complete(codes, keep)
    codes[1, 2, 3] = -1
    with pytest.raises(ValueError, match=r"got values in \[-1, "):
        model.loss(codes)


@pytest.mark.parametrize("n", [0, -2, 1.5])
def test_bad_sample_count(n) -> None:
    with pytest.raises(ValueError, match=rf"n must be an integer ≥ 1, got {n}"):
        tiny("maskgit").sample(n)


def test_bad_keep_mask() -> None:
    model = tiny("maskgit")
    codes = torch.zeros(2, *GRID, dtype=torch.long)
    with pytest.raises(
        ValueError,
        match=r"keep_mask must be a bool tensor of shape 4×4 or 2×4×4, got torch.bool of shape 3×3",
    ):
        model.complete(codes, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"shape 4×4 or 2×4×4, got torch.bool of shape 3×4×4"):
        model.complete(codes, torch.ones(3, *GRID, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"got torch.int64 of shape 4×4"):
        model.complete(codes, torch.ones(GRID, dtype=torch.long))


def test_autoregressive_completion_needs_a_raster_prefix() -> None:
    model = tiny("autoregressive")
    codes = torch.zeros(2, *GRID, dtype=torch.long)
    left = torch.zeros(GRID, dtype=torch.bool)
    left[:, :2] = True  # the left half is not a raster prefix
    with pytest.raises(ValueError, match=r"raster-order prefix.*sampler='maskgit'"):
        model.complete(codes, left)
    rows = torch.zeros(2, *GRID, dtype=torch.bool)
    rows[0, :1] = True
    rows[1, :2] = True  # prefixes of different lengths
    with pytest.raises(ValueError, match="raster-order prefix of the same length in every row"):
        model.complete(codes, rows)


def test_guidance_needs_a_conditional_model_and_a_condition() -> None:
    with pytest.raises(ValueError, match=r"guidance_scale=2.0 needs a conditional model.*conditions=\(\)"):
        tiny("maskgit").sample(2, guidance_scale=2.0)
    with pytest.raises(ValueError, match=r"guidance_scale=3.0 needs a condition; got condition=None"):
        tiny("autoregressive", conditions=("mask",)).sample(2, guidance_scale=3.0)


def test_conditions_the_model_was_not_built_with() -> None:
    with pytest.raises(
        ValueError, match=r"got a text condition but the model was built with conditions=\[\]"
    ):
        tiny("maskgit").sample(1, random_condition(1, ("text",)))
    with pytest.raises(
        ValueError, match=r"got a mask condition but the model was built with conditions=\['text'\]"
    ):
        tiny("maskgit", conditions=("text",)).loss(
            torch.zeros(1, *GRID, dtype=torch.long), random_condition(1, ("mask",))
        )


def test_bad_mask_condition() -> None:
    model = tiny("autoregressive", conditions=("mask",))
    bad = torch.zeros(1, 8, 8, dtype=torch.long)
    bad[0, 0, 0] = CLASSES
    with pytest.raises(
        ValueError, match=r"mask class ids must be in \[0, 4\) \(mask_classes=4\), got values in \[0, 4\]"
    ):
        model.sample(1, Condition(mask=bad))
    bad[0, 0, 0] = -1
    with pytest.raises(ValueError, match=r"got values in \[-1, 0\]"):
        model.sample(1, Condition(mask=bad))
    with pytest.raises(ValueError, match=r"mask is 6×8; expected integer multiples of the code grid 4×4"):
        model.sample(1, Condition(mask=torch.zeros(1, 6, 8, dtype=torch.long)))
    with pytest.raises(ValueError, match=r"condition has batch size 2; expected 1 or 3"):
        model.sample(3, random_condition(2, ("mask",)))


def test_bad_text_condition() -> None:
    model = tiny("maskgit", conditions=("text",))
    features = torch.randn(2, 3, TEXT_DIM)
    empty = torch.tensor([[True, True, False], [False, False, False]])
    with pytest.raises(
        ValueError, match=r"text condition rows \[1\] have zero valid tokens; expected at least one"
    ):
        model.sample(2, Condition(text_features=features, text_mask=empty))
    with pytest.raises(ValueError, match=r"text_features have width 5; expected text_feature_dim=8"):
        model.sample(1, Condition(text_features=torch.randn(1, 2, 5)))
    with pytest.raises(
        ValueError, match=r"text condition has up to 6 tokens; expected at most max_text_tokens=4"
    ):
        model.sample(1, Condition(text_features=torch.randn(1, 6, TEXT_DIM)))
    # trailing padding beyond max_text_tokens is fine
    mask = torch.zeros(1, 6, dtype=torch.bool)
    mask[0, :3] = True
    assert model.sample(1, Condition(text_features=torch.randn(1, 6, TEXT_DIM), text_mask=mask)).shape == (
        1,
        *GRID,
    )


def test_text_padding_is_hidden() -> None:
    """Padded text positions (whatever their features) do not change the model's outputs."""
    model = tiny("maskgit", conditions=("text",))
    features = torch.randn(1, 3, TEXT_DIM)
    mask = torch.tensor([[True, True, False]])
    other = features.clone()
    other[0, 2] = 100.0
    tokens = torch.full((1, GRID[0] * GRID[1]), K)
    a = model.image_logits(tokens, model._embed(Condition(text_features=features, text_mask=mask), 1))
    b = model.image_logits(tokens, model._embed(Condition(text_features=other, text_mask=mask), 1))
    c = model.image_logits(tokens, model._embed(Condition(text_features=features[:, :2]), 1))
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(a, c, rtol=1e-5, atol=1e-5)


def test_bad_sampling_arguments() -> None:
    with pytest.raises(ValueError, match="temperature must be ≥ 0, got -1"):
        tiny("maskgit").sample(1, temperature=-1)
    with pytest.raises(ValueError, match="temperature must be ≥ 0, got -1"):
        tiny("autoregressive").sample(1, temperature=-1)
    with pytest.raises(ValueError, match="steps must be ≥ 1, got 0"):
        tiny("maskgit").sample(1, steps=0)


@pytest.mark.parametrize("sampler", ["autoregressive", "maskgit"])
def test_save_load_round_trip_gives_identical_samples(sampler: str, tmp_path) -> None:
    conditions = ("text", "mask")
    model = tiny(sampler, conditions=conditions)
    condition = random_condition(2, conditions)
    path = model.save_pretrained(tmp_path / "generator")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    loaded = CodeGenerator.from_pretrained(path)
    assert loaded.config == model.config
    for kwargs in ({}, {"guidance_scale": 2.0, "top_k": 4}):
        assert torch.equal(
            loaded.sample(2, condition, seed=9, **kwargs), model.sample(2, condition, seed=9, **kwargs)
        )
    codes = torch.randint(0, K, (2, *GRID))
    torch.testing.assert_close(loaded.nll(codes, condition), model.nll(codes, condition), rtol=0, atol=0)
    model.save_pretrained(path)  # overwriting an existing directory works
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["layers"] = 3
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="state dict does not match the config"):
        CodeGenerator.from_pretrained(path)
    meta["format"] = "something-else"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not an lgvq-code-generator config"):
        CodeGenerator.from_pretrained(path)
    with pytest.raises(FileNotFoundError, match="expected a directory written by save_pretrained"):
        CodeGenerator.from_pretrained(tmp_path / "missing")


def test_init_from_codebook() -> None:
    codebook = torch.randn(K, 6)
    model = tiny("maskgit", init_from_codebook=True, codebook_dim=6, scramble=False)  # K×D table + projection
    model.init_image_embeddings(codebook)
    torch.testing.assert_close(model.transformer.image_embed.weight[:K], codebook)
    assert model.sample(1).shape == (1, *GRID)
    model = tiny("maskgit", init_from_codebook=True, scramble=False)  # K×width table (width 32)
    model.init_image_embeddings(codebook)  # D < width: zero-padded
    torch.testing.assert_close(model.transformer.image_embed.weight[:K, :6], codebook)
    assert float(model.transformer.image_embed.weight.detach()[:K, 6:].abs().max()) == 0.0
    wide = torch.randn(K, 5) @ torch.randn(
        5, 48
    )  # D > width, rank 5: the principal directions keep distances
    model.init_image_embeddings(wide)
    torch.testing.assert_close(
        torch.cdist(model.transformer.image_embed.weight[:K], model.transformer.image_embed.weight[:K]),
        torch.cdist(wide, wide),
        rtol=1e-3,
        atol=1e-3,
    )
    with pytest.raises(ValueError, match=r"codebook must be K×D with K = codebook_size = 16, got \(15, 6\)"):
        model.init_image_embeddings(torch.randn(15, 6))
