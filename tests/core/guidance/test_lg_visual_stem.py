"""``visual_stem: conv``: residual 3×3 convolutions over the code grid before f_vt's transformer."""

from __future__ import annotations

import pytest
import torch
from lg_helpers import captioned_batch, make_base

from lgvq_core.config import ConfigError
from lgvq_core.guidance import GuidanceConfig, LanguageGuided
from lgvq_core.guidance.visual_encoder import ConvStem, VisualTokenEncoder


def test_the_default_has_no_stem_and_the_official_parameter_names() -> None:
    plain = VisualTokenEncoder(16, 64, 32)
    assert not any(name.startswith("stem.") for name in plain.state_dict())
    stemmed = VisualTokenEncoder(16, 64, 32, stem="conv")
    extra = set(stemmed.state_dict()) - set(plain.state_dict())
    assert extra == {f"stem.body.{i}.{p}" for i in (0, 2) for p in ("weight", "bias")}


def test_the_stem_is_residual_and_sees_neighbours() -> None:
    torch.manual_seed(0)
    stem = ConvStem(8)
    x = torch.randn(2, 8, 6, 6)
    for conv in (stem.body[0], stem.body[2]):
        torch.nn.init.zeros_(conv.weight)
        torch.nn.init.zeros_(conv.bias)
    torch.testing.assert_close(stem(x), x)  # zero convolutions: identity
    torch.manual_seed(1)
    stem = ConvStem(8)
    y = x.clone()
    y[:, :, 3, 3] += 1.0  # one position changes ...
    moved = (stem(y) - stem(x)).abs().sum(dim=(0, 1)) > 0
    assert moved[2:5, 2:5].sum() > 1 and not moved[0, 0]  # ... its neighbours (two 3×3 hops) and no further


def test_an_unknown_stem_is_refused() -> None:
    with pytest.raises(ValueError, match="stem must be one of"):
        VisualTokenEncoder(16, 64, 32, stem="resnet")
    with pytest.raises(ConfigError, match="visual_stem"):
        GuidanceConfig(mode="fixed", visual_stem="resnet")


def test_a_stemmed_model_trains_and_round_trips(tmp_path, tiny_clip) -> None:
    torch.manual_seed(0)
    config = GuidanceConfig(mode="fixed", context_length=12, visual_stem="conv")
    model = LanguageGuided(make_base("vqgan"), tiny_clip, config)
    batch = captioned_batch()
    model.training_losses(batch, 0).total.backward()
    assert model.visual.stem.body[0].weight.grad.abs().sum() > 0  # L_gsa / L_mtp reach the stem
    model.save_pretrained(tmp_path / "lg")
    loaded = LanguageGuided.from_pretrained(tmp_path / "lg", tiny_clip)
    assert loaded.config.visual_stem == "conv"
    for name, tensor in model.state_dict().items():
        torch.testing.assert_close(tensor, loaded.state_dict()[name], msg=name)
