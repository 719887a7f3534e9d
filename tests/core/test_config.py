from __future__ import annotations

import json

import pytest

from lgvq_core.config import (
    ConfigError,
    EncoderConfig,
    QuantizerConfig,
    TokenizerConfig,
    TrainConfig,
)
from lgvq_core.models.builders import default_config


@pytest.mark.parametrize("base", ["vqvae", "vqgan", "cvq", "vqct"])
def test_round_trip_through_json_is_exact(base):
    cfg = default_config(base)
    again = TokenizerConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


def test_unknown_key_names_its_path():
    data = default_config("vqgan").to_dict()
    data["quantizer"]["cvq"]["anchr"] = "closest"
    with pytest.raises(ConfigError, match=r"quantizer\.cvq\.anchr"):
        TokenizerConfig.from_dict(data)


def test_missing_key_names_its_path_unless_defaults_are_filled():
    data = default_config("vqgan").to_dict()
    del data["encoder"]["ch_mult"]
    with pytest.raises(ConfigError, match=r"encoder\.ch_mult"):
        TokenizerConfig.from_dict(data)
    assert TokenizerConfig.from_dict(data, fill_defaults=True).encoder.ch_mult == (1, 1, 2, 2, 4)


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (("quantizer", "codebook_update"), "emma", "not one of"),
        (("encoder", "ch"), 12.5, "expected an integer"),
        (("loss", "adaptive_weight"), 1, "expected a boolean"),
        (("quantizer", "codebook_size"), 0, "codebook_size"),
    ],
)
def test_bad_values_are_refused(path, value, message):
    data = default_config("vqgan").to_dict()
    data[path[0]][path[1]] = value
    with pytest.raises(ConfigError, match=message):
        TokenizerConfig.from_dict(data)


def test_latent_grid_is_validated():
    cfg = EncoderConfig(resolution=32, ch=32, ch_mult=(1, 2, 2), z_channels=32)
    assert cfg.latent_grid(32, 48) == (8, 12)
    with pytest.raises(ValueError, match="multiple of the downsampling factor 4"):
        cfg.latent_grid(30, 32)
    with pytest.raises(ConfigError, match="resolution"):
        EncoderConfig(resolution=30, ch=32, ch_mult=(1, 2, 2), z_channels=32)
    with pytest.raises(ConfigError, match="norm_groups"):
        EncoderConfig(ch=16)


def test_base_and_quantizer_kind_must_agree():
    with pytest.raises(ConfigError, match="quantizer kind"):
        TokenizerConfig(base="cvq", quantizer=QuantizerConfig(kind="vq"))


def test_train_config_round_trip():
    cfg = TrainConfig(steps=3, betas=(0.5, 0.9), amp="bf16")
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
