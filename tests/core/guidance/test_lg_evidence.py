"""The evidence the LG diagnostics rest on: no masked-word leak by default, controls that remove the image,
retrieval's chance level, and the β placement warning."""

from __future__ import annotations

import dataclasses
import logging

import pytest
import torch
from lg_helpers import make_base, tiny_tokenizer_config

from lgvq_core.config import ConfigError
from lgvq_core.guidance import GuidanceConfig, LanguageGuided
from lgvq_core.guidance.diagnostics import (
    control_images,
    fit_probe,
    masked_word_recall,
    retrieval_chance,
)


def test_switches_follow_the_mode_unless_set() -> None:
    paper, fixed = GuidanceConfig(mode="paper"), GuidanceConfig(mode="fixed")
    assert (paper.masking, paper.infonce, paper.ras_reduction) == (
        "encoder_output",
        "one_way_unit_temperature",
        "all",
    )
    assert (fixed.masking, fixed.infonce, fixed.ras_reduction) == (
        "encoder_input",
        "symmetric_learned_temperature",
        "valid",
    )
    ablation = GuidanceConfig(mode="paper", infonce="symmetric_learned_temperature")
    assert ablation.masking == "encoder_output" and ablation.learns_temperature
    assert GuidanceConfig.from_dict(ablation.to_dict()) == ablation
    with pytest.raises(ConfigError, match="masking must be one of"):
        GuidanceConfig(masking="before")


def test_output_masking_is_refused_for_a_bidirectional_encoder(minilm, caplog) -> None:
    assert not minilm.causal
    config = GuidanceConfig(mode="paper", context_length=16)
    with pytest.raises(ValueError, match="leaks every masked word"):
        LanguageGuided(make_base("vqvae"), minilm, config)
    with caplog.at_level(logging.WARNING, logger="lgvq_core.guidance.language_guided"):
        LanguageGuided(make_base("vqvae"), minilm, dataclasses.replace(config, allow_leaky_masking=True))
    assert any("leaks into every position" in r.getMessage() for r in caplog.records)
    LanguageGuided(make_base("vqvae"), minilm, GuidanceConfig(mode="fixed", context_length=16))


def test_output_masking_is_accepted_for_the_causal_clip_tower(tiny_clip, caplog) -> None:
    assert tiny_clip.causal
    with caplog.at_level(logging.WARNING, logger="lgvq_core.guidance.language_guided"):
        model = LanguageGuided(make_base("vqvae"), tiny_clip, GuidanceConfig(mode="paper", context_length=12))
    assert not any("leak" in r.getMessage() for r in caplog.records)
    assert model.temperature == 1.0 and not hasattr(model, "logit_scale")


def test_beta_placement_warning_names_the_official_placement(tiny_clip, caplog) -> None:
    from lgvq_core.models import builders

    config = tiny_tokenizer_config("vqvae")
    wrong = dataclasses.replace(config, quantizer=dataclasses.replace(config.quantizer, legacy=True))
    with caplog.at_level(logging.WARNING, logger="lgvq_core.guidance.language_guided"):
        LanguageGuided(builders.build(config), tiny_clip, GuidanceConfig(context_length=12))
        assert not caplog.records
        LanguageGuided(builders.build(wrong), tiny_clip, GuidanceConfig(context_length=12))
    assert "commitment term" in caplog.records[-1].getMessage()


def _colour_batches(count: int, size: int = 16) -> list[dict]:
    """Batches of 8 alternating red / blue images captioned with their colour (the colour word is only
    predictable from the image)."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        images, captions = [], []
        for i in range(8):
            colour = ("red", "blue")[i % 2]
            rgb = torch.tensor([0.9, -0.8, -0.8]) if colour == "red" else torch.tensor([-0.8, -0.6, 0.9])
            image = rgb[:, None, None].expand(3, size, size).clone()
            image += 0.05 * torch.randn(3, size, size, generator=generator)
            images.append(image.clamp(-1, 1))
            captions.append(f"a {colour} square")
        batches.append({"images": torch.stack(images), "captions": captions})
    return batches


def test_recall_control_removes_what_comes_from_the_image(minilm) -> None:
    """Heads fitted on a frozen base read the colour from the codes: with real images they recall it; with
    each caption paired with the other colour's image, or with zero images, that recall is gone."""
    config = tiny_tokenizer_config("vqvae")
    config = dataclasses.replace(config, quantizer=dataclasses.replace(config.quantizer, kmeans_init=True))
    from lgvq_core.models import builders

    torch.manual_seed(0)
    base = builders.build(config)
    train = _colour_batches(4)
    base.train()
    with torch.no_grad():
        base(torch.cat([b["images"] for b in train]))  # k-means initialisation of the codebook
    base.eval()
    guidance = GuidanceConfig(
        mode="fixed",
        context_length=16,
        decoder_dropout=0.0,
        decoder_heads=6,
        decoder_norm_first=True,
        prediction_vocabulary="captions",
    )
    torch.manual_seed(0)
    probe = fit_probe(base, minilm, train, steps=60, config=guidance, lr=1e-3)
    assert probe.vocabulary_ids.numel() == 4  # "a", "red", "blue", "square": the captions of the batches
    test = _colour_batches(2)
    classes = {"colour": {"red", "blue"}}
    recall = {
        images: masked_word_recall(probe, test, num_masked=3, images=images, word_classes=classes)
        for images in ("real", "shuffled", "zeros")
    }
    assert recall["real"]["masked_tokens_colour"] == 16
    assert recall["real"]["recall_at_1_colour"] >= 0.9
    assert recall["shuffled"]["recall_at_1_colour"] <= 0.1  # every caption met the other colour
    assert recall["zeros"]["recall_at_1_colour"] <= 0.6  # one colour guessed for every caption at most
    template = recall["real"]["recall_at_1_template"] - recall["shuffled"]["recall_at_1_template"]
    assert abs(template) <= 0.1  # "a" and "square" need no image


def test_control_images() -> None:
    images = torch.arange(3.0)[:, None, None, None].expand(3, 3, 2, 2)
    assert torch.equal(control_images(images, "real"), images)
    assert torch.equal(control_images(images, "shuffled")[:, 0, 0, 0], torch.tensor([2.0, 0.0, 1.0]))
    assert not control_images(images, "zeros").any()
    with pytest.raises(ValueError, match="at least 2"):
        control_images(images[:1], "shuffled")


def test_retrieval_chance_by_hand() -> None:
    captions = ["a", "a", "b", "c"]
    assert retrieval_chance(captions, 1) == pytest.approx((2 / 4 + 2 / 4 + 1 / 4 + 1 / 4) / 4)
    # k = 2: 1 - C(N - c, 2) / C(N, 2) = 5/6 for c = 2 and 1/2 for c = 1
    assert retrieval_chance(captions, 2) == pytest.approx((5 / 6 + 5 / 6 + 1 / 2 + 1 / 2) / 4)
    assert retrieval_chance(["x", "y"], 5) == 1.0
