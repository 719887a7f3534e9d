"""Each sampler's model, trained briefly on codes that are a function of position and condition, beats the
uniform baseline ln K by far, uses its condition, and samples codes that follow it."""

from __future__ import annotations

import pytest
import torch

from lgvq_downstream.generation import CodeGenerator
from tests.downstream.generation.helpers import (
    CLASSES,
    LN_K,
    TEXT_DIM,
    structured_batch,
    text_batch,
    tiny,
    train,
)

STEPS = 150


def trained(sampler: str, conditions: tuple[str, ...], make_batch) -> CodeGenerator:
    torch.manual_seed(0)
    model = tiny(sampler, conditions=conditions, width=64, scramble=False)
    train(model, make_batch, steps=STEPS)
    return model.eval()


@pytest.mark.parametrize("sampler", ["autoregressive", "maskgit"])
def test_class_map_condition_is_learned(sampler: str) -> None:
    model = trained(sampler, ("mask",), structured_batch)
    codes, condition = structured_batch(64, torch.Generator().manual_seed(123))  # held-out draws
    untrained = tiny(sampler, conditions=("mask",), width=64, scramble=False)
    assert abs(float(untrained.nll(codes, condition).mean()) - LN_K) < 0.1  # the uniform baseline
    nll = float(model.nll(codes, condition).mean())
    without = float(model.nll(codes, None).mean())  # null condition: 4 codes per cell remain possible
    assert nll < 0.25 * LN_K, (nll, LN_K)
    assert without > nll + 0.5, (without, nll)
    # samples follow the class map (code_i = (i + 5·class_i) mod K)
    samples = model.sample(8, condition.select(range(8)), temperature=1.0, seed=3)
    assert (samples == codes[:8]).float().mean() > 0.9
    guided = model.sample(8, condition.select(range(8)), guidance_scale=2.0, seed=3)
    assert (guided == codes[:8]).float().mean() > 0.9


@pytest.mark.parametrize("sampler", ["autoregressive", "maskgit"])
def test_text_condition_is_learned(sampler: str) -> None:
    table = torch.randn(CLASSES, 2, TEXT_DIM, generator=torch.Generator().manual_seed(7))

    def make_batch(batch: int, generator: torch.Generator):
        return text_batch(batch, generator, table)

    model = trained(sampler, ("text",), make_batch)
    codes, condition = make_batch(64, torch.Generator().manual_seed(123))
    nll = float(model.nll(codes, condition).mean())
    assert nll < 0.25 * LN_K, (nll, LN_K)
    # samples follow the text (without it, 1 in 4 would match)
    samples = model.sample(8, condition.select(range(8)), guidance_scale=1.5, seed=1)
    assert (samples == codes[:8]).float().mean() > 0.9
