"""Several mask draws per caption: L_mtp is the token-weighted mean of the single-draw losses."""

from __future__ import annotations

import pytest
import torch
from lg_helpers import captioned_batch, make_base

from lgvq_core.guidance import GuidanceConfig, LanguageGuided
from lgvq_core.guidance.masking import exact_token_mask


def test_two_draws_give_the_token_weighted_mean_of_their_losses(tiny_clip) -> None:
    torch.manual_seed(0)
    config = GuidanceConfig(mode="fixed", context_length=12, decoder_dropout=0.0, masks_per_caption=2)
    model = LanguageGuided(make_base("vqvae"), tiny_clip, config).eval()
    batch = captioned_batch()
    captions = list(batch["captions"])
    with torch.no_grad():
        quantized = model.base(batch["images"]).quant.quantized
        text = model.text_features(captions)
        first = exact_token_mask(text.attention_mask, text.special_mask, 1, torch.Generator().manual_seed(1))
        second = exact_token_mask(text.attention_mask, text.special_mask, 2, torch.Generator().manual_seed(2))
        one = model.alignment_losses(quantized, captions, first)
        two = model.alignment_losses(quantized, captions, second)
        both = model.alignment_losses(quantized, captions, torch.cat([first, second]))
    n1, n2 = int(first.sum()), int(second.sum())
    expected = (n1 * one.lmtp + n2 * two.lmtp) / (n1 + n2)
    torch.testing.assert_close(both.lmtp, expected, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(both.lgsa, one.lgsa)  # L_gsa and L_ras see each caption once
    torch.testing.assert_close(both.lras, one.lras)
    assert both.masked.shape[0] == 2 * len(captions)


def test_sampled_draws_tile_the_batch(tiny_clip) -> None:
    torch.manual_seed(0)
    config = GuidanceConfig(mode="fixed", context_length=12, masks_per_caption=3)
    model = LanguageGuided(make_base("vqvae"), tiny_clip, config)
    batch = captioned_batch()
    out = model.alignment_losses(model.base(batch["images"]).quant.quantized, list(batch["captions"]))
    b = len(batch["captions"])
    assert out.masked.shape[0] == 3 * b
    assert torch.equal(out.text.token_ids[:b], out.text.token_ids[2 * b :])
    with pytest.raises(ValueError, match="rows for"):
        model.alignment_losses(
            model.base(batch["images"]).quant.quantized, list(batch["captions"]), out.masked[: b + 1]
        )


def test_masks_per_caption_must_be_positive() -> None:
    from lgvq_core.config import ConfigError

    with pytest.raises(ConfigError, match="masks_per_caption"):
        GuidanceConfig(masks_per_caption=0)
