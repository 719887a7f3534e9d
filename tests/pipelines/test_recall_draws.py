"""Masked-word recall pooled over several mask draws (``eval.recall_draws``): hits over masked tokens summed
across the draws, the same as combining the single draws by hand."""

from __future__ import annotations

import pytest
import torch
from downstream_helpers import CONTEXT, save_runs
from pipeline_helpers import tiny_shards

from lgvq_core.guidance.diagnostics import masked_word_recall
from lgvq_core.guidance.text_encoder import default_text_encoder
from pipelines.evaluate import EvalBatches, EvalParams, pooled_recall
from pipelines.models import load_run
from pipelines.params import ParamsError

CLASSES = {"colour": {"red", "green", "blue", "yellow"}}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory):
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("draws")
    shards = tiny_shards(root)
    model, _ = load_run(save_runs(root) / "vqgan-on-s0", text_encoder=default_text_encoder(CONTEXT))
    the = model.text_encoder.tokenizer.convert_tokens_to_ids("the")
    with torch.no_grad():  # predict "the" everywhere: a draw's recall is its share of masked "the"s
        model.semantic.head.bias[the] += 1e4
    return model, EvalBatches(shards, "train", 16, 8, 0, 16)


def test_pooled_recall_is_hits_over_tokens_summed_across_draws(scored) -> None:
    model, batches = scored
    seeds = [0, 1, 2]
    draws = [masked_word_recall(model, batches, 1, seed, "real", CLASSES) for seed in seeds]
    pooled = pooled_recall(model, batches, 1, seeds, word_classes=CLASSES)
    for suffix in ("", "_content", "_colour", "_template"):
        tokens = sum(d.get(f"masked_tokens{suffix}", 0) for d in draws)
        hits = sum(d.get(f"recall_at_1{suffix}", 0.0) * d.get(f"masked_tokens{suffix}", 0) for d in draws)
        if tokens:
            assert pooled[f"masked_tokens{suffix}"] == tokens
            assert pooled[f"recall_at_1{suffix}"] == pytest.approx(hits / tokens)
    assert pooled["masked_tokens"] == 3 * draws[0]["masked_tokens"]  # one masked token per caption and draw
    assert 0.0 < pooled["recall_at_1"] < 1.0 and pooled["recall_at_1_colour"] == 0.0


def test_one_draw_is_the_single_call_and_draws_differ(scored) -> None:
    model, batches = scored
    single = masked_word_recall(model, batches, 3, 5, "shuffled", CLASSES)
    assert pooled_recall(model, batches, 3, [5], images="shuffled", word_classes=CLASSES) == pytest.approx(
        single
    )
    # different seeds mask different tokens: the pooled recall is not one draw repeated
    per_seed = {masked_word_recall(model, batches, 1, s)["recall_at_1"] for s in range(6)}
    assert len(per_seed) > 1


def test_recall_draws_must_be_positive() -> None:
    with pytest.raises(ParamsError, match="eval.recall_draws"):
        EvalParams(recall_draws=0)
    with pytest.raises(ValueError, match="at least one mask seed"):
        pooled_recall(None, [], 1, [])  # type: ignore[arg-type]
