"""Samplers: KV cache vs full recompute, completion keeps the given codes, guidance at s = 1, the MaskGIT loss
counts masked positions only, no leak of later codes into the autoregressive model's predictions."""

from __future__ import annotations

import pytest
import torch

from lgvq_downstream.generation import Condition
from lgvq_downstream.generation.masking import cosine_schedule, random_token_mask, token_mask
from lgvq_downstream.generation.samplers import (
    combine_guidance,
    guided,
    sample_autoregressive,
    sample_maskgit,
)
from tests.downstream.generation.helpers import GRID, K, random_condition, tiny

BOTH = ["autoregressive", "maskgit"]
CONDITIONS = [(), ("text",), ("mask",), ("text", "mask")]


# --------------------------------------------------------------------------------------------- autoregressive


@pytest.mark.parametrize("conditions", CONDITIONS)
@pytest.mark.parametrize("kwargs", [{}, {"top_k": 5}, {"top_p": 0.8, "temperature": 0.7}, {"temperature": 0}])
def test_kv_cache_sampling_equals_uncached(conditions: tuple[str, ...], kwargs: dict) -> None:
    model = tiny("autoregressive", conditions=conditions)
    condition = random_condition(3, conditions) if conditions else None
    cached = model.sample(3, condition, seed=5, use_cache=True, **kwargs)
    uncached = model.sample(3, condition, seed=5, use_cache=False, **kwargs)
    assert cached.shape == (3, *GRID) and cached.dtype == torch.long
    assert torch.equal(cached, uncached)
    assert int(cached.min()) >= 0 and int(cached.max()) < K
    if kwargs.get("temperature") != 0:
        assert len(torch.unique(cached)) > 3  # not degenerate


def test_kv_cache_with_guidance_equals_uncached() -> None:
    model = tiny("autoregressive", conditions=("text", "mask"))
    condition = random_condition(2, ("text", "mask"))
    a = model.sample(2, condition, guidance_scale=2.5, seed=1, use_cache=True)
    b = model.sample(2, condition, guidance_scale=2.5, seed=1, use_cache=False)
    assert torch.equal(a, b)


def test_seed_reproducible_and_varies() -> None:
    model = tiny("autoregressive")
    assert torch.equal(model.sample(2, seed=3), model.sample(2, seed=3))
    assert not torch.equal(model.sample(2, seed=3), model.sample(2, seed=4))


def test_autoregressive_cached_logits_match_full_sequence() -> None:
    model = tiny("autoregressive", conditions=("text", "mask"))
    condition = random_condition(2, ("text", "mask"))
    codes = torch.randint(0, K, (2, GRID[0] * GRID[1]))
    embedded = model._embed(condition, 2)
    inputs = torch.cat([model._start_tokens(2), codes[:, :-1]], dim=1)
    full = model.image_logits(inputs, embedded)
    cache = model.transformer.new_cache()
    steps = [model.image_logits(inputs[:, :3], embedded, cache)]
    steps += [model.image_logits(inputs[:, i : i + 1], embedded, cache) for i in range(3, inputs.shape[1])]
    torch.testing.assert_close(torch.cat(steps, dim=1), full, rtol=1e-4, atol=1e-5)


def test_autoregressive_predictions_see_no_later_code_and_the_target_cell_class() -> None:
    model = tiny("autoregressive", conditions=("mask",))
    n = GRID[0] * GRID[1]
    codes = torch.randint(0, K, (1, n))
    cells = torch.randint(0, 4, (1, *GRID))
    inputs = torch.cat([model._start_tokens(1), codes[:, :-1]], dim=1)

    def logits(code_row: torch.Tensor, cell_map: torch.Tensor) -> torch.Tensor:
        embedded = model._embed(Condition(mask=cell_map), 1)
        return model.image_logits(torch.cat([model._start_tokens(1), code_row[:, :-1]], dim=1), embedded)

    base = model.image_logits(inputs, model._embed(Condition(mask=cells), 1))
    j = 6
    later_code = codes.clone()
    later_code[0, j] = (later_code[0, j] + 1) % K  # code j is the target at position j, an input from j + 1
    changed = logits(later_code, cells)
    torch.testing.assert_close(changed[:, : j + 1], base[:, : j + 1], rtol=0, atol=1e-6)
    assert (changed[:, j + 1 :] - base[:, j + 1 :]).abs().amax() > 1e-3
    later_cell = cells.clone().view(1, -1)
    later_cell[0, j] = (later_cell[0, j] + 1) % 4  # cell j's class: visible when predicting code j
    changed = logits(codes, later_cell.view(1, *GRID))
    torch.testing.assert_close(changed[:, :j], base[:, :j], rtol=0, atol=1e-6)
    assert (changed[:, j] - base[:, j]).abs().amax() > 1e-3


def test_autoregressive_completion_keeps_the_top_half() -> None:
    model = tiny("autoregressive", conditions=("mask",))
    given = torch.randint(0, K, (3, *GRID))
    keep = torch.zeros(GRID, dtype=torch.bool)
    keep[: GRID[0] // 2] = True
    condition = random_condition(3, ("mask",))
    for kwargs in ({}, {"use_cache": False}, {"guidance_scale": 3.0}):
        out = model.complete(given, keep, condition, seed=2, **kwargs)
        assert torch.equal(out[:, : GRID[0] // 2], given[:, : GRID[0] // 2])
        assert not torch.equal(out, given)
    cached = model.complete(given, keep, condition, seed=2)
    assert torch.equal(cached, model.complete(given, keep, condition, seed=2, use_cache=False))
    # a raster prefix that ends inside a row works too; keeping everything returns the input
    keep_flat = torch.zeros(GRID[0] * GRID[1], dtype=torch.bool)
    keep_flat[:5] = True
    out = model.complete(given, keep_flat.view(GRID).expand(3, *GRID).clone(), condition)
    assert torch.equal(out.view(3, -1)[:, :5], given.view(3, -1)[:, :5])
    assert torch.equal(model.complete(given, torch.ones(GRID, dtype=torch.bool), condition), given)


# ---------------------------------------------------------------------------------------------------- maskgit


def test_maskgit_with_every_code_given_returns_them_unchanged() -> None:
    model = tiny("maskgit", conditions=("text",))
    given = torch.randint(0, K, (4, *GRID))
    out = model.complete(given, torch.ones(GRID, dtype=torch.bool), random_condition(4, ("text",)))
    assert torch.equal(out, given)


@pytest.mark.parametrize("steps", [1, 3, 8, 40])
def test_maskgit_completion_never_changes_given_codes(steps: int) -> None:
    model = tiny("maskgit", conditions=("mask",))
    g = torch.Generator().manual_seed(steps)
    given = torch.randint(0, K, (4, *GRID), generator=g)
    keep = torch.rand(4, *GRID, generator=g) < 0.4  # a different random keep mask per row
    keep[0] = False  # and one row with nothing given
    out = model.complete(given, keep, random_condition(4, ("mask",)), steps=steps, seed=steps)
    assert torch.equal(out[keep], given[keep])
    assert int(out.min()) >= 0 and int(out.max()) < K  # no [MASK] id left
    assert not torch.equal(out[~keep], given[~keep])


def test_maskgit_sampler_decodes_on_the_cosine_schedule() -> None:
    """Unknown positions left masked after each step: ⌊U·cos(π/2·t/T)⌋ (at least one decided per step)."""
    n, steps, mask_id = 16, 4, K
    seen: list[int] = []

    def logits_fn(tokens: torch.Tensor) -> torch.Tensor:
        seen.append(int((tokens == mask_id).sum()))
        return torch.randn(tokens.shape[0], n, K)

    tokens = torch.zeros(1, n, dtype=torch.long)
    known = torch.zeros(1, n, dtype=torch.bool)
    known[0, :4] = True  # U = 12 unknown
    out = sample_maskgit(logits_fn, tokens, known, mask_id=mask_id, steps=steps)
    expected = [12] + [int(12 * float(cosine_schedule(t / steps))) for t in range(1, steps)]
    assert seen == expected
    assert int((out == mask_id).sum()) == 0


def test_maskgit_loss_counts_masked_positions_only() -> None:
    model = tiny("maskgit").train()
    codes = torch.randint(0, K, (6, *GRID))
    captured: dict[str, torch.Tensor] = {}

    def capture_inputs(module, args, kwargs):
        captured["inputs"] = kwargs["image_codes"]

    def perturb_unmasked(module, args, output):
        unmasked = captured["inputs"] != K
        return output + 50.0 * torch.randn_like(output) * unmasked[..., None]

    def loss() -> float:
        with torch.no_grad():
            return float(model.loss(codes, generator=torch.Generator().manual_seed(0)))

    reference = loss()
    pre = model.transformer.register_forward_pre_hook(capture_inputs, with_kwargs=True)
    post = model.transformer.image_head.register_forward_hook(perturb_unmasked)
    try:
        assert loss() == pytest.approx(reference, rel=1e-6)
        inputs = captured["inputs"]
        assert bool((inputs == K).any()) and bool((inputs != K).any())  # some masked, some not
        post.remove()

        def perturb_masked(module, args, output):
            return output + 50.0 * torch.randn_like(output) * (captured["inputs"] == K)[..., None]

        post = model.transformer.image_head.register_forward_hook(perturb_masked)
        assert abs(loss() - reference) > 1.0
    finally:
        pre.remove()
        post.remove()


def test_training_masks() -> None:
    g = torch.Generator().manual_seed(0)
    masks = random_token_mask(2000, 16, generator=g)
    counts = masks.sum(dim=1)
    assert int(counts.min()) >= 1 and int(counts.max()) <= 16
    # ratio cos(π/2·u), u ~ U(0, 1]: mean ratio 2/π
    assert abs(float(counts.float().mean()) / 16 - 2 / torch.pi) < 0.04
    fixed = token_mask(torch.tensor([0.0, 0.5, 1.0]), 16, generator=g)
    assert fixed.sum(dim=1).tolist() == [1, 8, 16]


# --------------------------------------------------------------------------------------------------- guidance


def test_combine_guidance() -> None:
    cond, uncond = torch.randn(3, 5), torch.randn(3, 5)
    assert combine_guidance(cond, uncond, 1.0) is cond
    torch.testing.assert_close(combine_guidance(cond, uncond, 0.0), uncond)
    torch.testing.assert_close(combine_guidance(cond, uncond, 3.0), uncond + 3.0 * (cond - uncond))


@pytest.mark.parametrize("sampler", BOTH)
def test_guidance_scale_one_equals_conditional_sampling(sampler: str) -> None:
    conditions = ("text", "mask")
    model = tiny(sampler, conditions=conditions)
    condition = random_condition(3, conditions)
    plain = model.sample(3, condition, seed=7)
    assert torch.equal(model.sample(3, condition, guidance_scale=1.0, seed=7), plain)
    # the batch-doubling path at s = 1 (conditional rows next to null rows) samples the same codes
    doubled = model._embed(condition, 3, guidance=True)
    generator = torch.Generator().manual_seed(7)
    if sampler == "autoregressive":

        def next_logits(tokens, cache):
            return model.image_logits(tokens, doubled, cache)[:, -1]

        out = sample_autoregressive(
            guided(next_logits, 1.0),
            model._start_tokens(3),
            GRID[0] * GRID[1],
            new_cache=model.transformer.new_cache,
            generator=generator,
        )
    else:
        out = sample_maskgit(
            guided(lambda tokens: model.image_logits(tokens, doubled), 1.0),
            torch.zeros(3, GRID[0] * GRID[1], dtype=torch.long),
            torch.zeros(3, GRID[0] * GRID[1], dtype=torch.bool),
            mask_id=K,
            steps=model.config.maskgit_steps,
            generator=generator,
        )
    assert torch.equal(out.view(3, *GRID), plain)
    assert not torch.equal(model.sample(3, condition, guidance_scale=3.0, seed=7), plain)


def test_guided_logits_follow_the_formula() -> None:
    model = tiny("maskgit", conditions=("mask",))
    condition = random_condition(2, ("mask",))
    tokens = torch.full((2, GRID[0] * GRID[1]), K)
    cond = model.image_logits(tokens, model._embed(condition, 2))
    uncond = model.image_logits(tokens, model._embed(None, 2))
    doubled = model._embed(condition, 2, guidance=True)
    out = guided(lambda t: model.image_logits(t, doubled), 2.0)(tokens)
    torch.testing.assert_close(out, uncond + 2.0 * (cond - uncond), rtol=1e-4, atol=1e-5)


def test_condition_of_batch_one_is_shared() -> None:
    model = tiny("maskgit", conditions=("mask",))
    one = random_condition(1, ("mask",))
    shared = model.sample(3, one, seed=0)
    tiled = model.sample(3, one.select([0, 0, 0]), seed=0)
    assert torch.equal(shared, tiled)


def test_gumbel_noise_is_finite_with_the_standard_moments() -> None:
    from lgvq_downstream.generation.samplers.maskgit import _gumbel

    g = _gumbel(torch.Size([200_000]), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert bool(torch.isfinite(g).all())
    assert abs(float(g.mean()) - 0.5772) < 0.01  # Euler–Mascheroni
    assert abs(float(g.var()) - torch.pi**2 / 6) < 0.03
