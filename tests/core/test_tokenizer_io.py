"""save_pretrained/from_pretrained round trips, strict refusals, taming VQModel key mapping."""

from __future__ import annotations

import json

import pytest
import torch
from core_helpers import QUANTIZER_KINDS, TINY_ENCODER, make_tokenizer
from safetensors.torch import load_file, save_file

from lgvq_core.models.builders import build_discriminator
from lgvq_core.models.taming import from_taming_state_dict, load_taming_state_dict, to_taming_state_dict
from lgvq_core.models.tokenizer import VQTokenizer


@pytest.mark.parametrize("kind", QUANTIZER_KINDS)
def test_save_load_round_trip_is_exact(kind, word_spec, images, tmp_path):
    tok = make_tokenizer(kind, word_spec)
    tok.train()
    tok(images)  # move EMA / usage / CVQ buffers away from their initial values
    tok.save_pretrained(tmp_path / "tok")
    loaded = VQTokenizer.from_pretrained(tmp_path / "tok")
    assert loaded.config == tok.config
    original, restored = tok.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    assert all(torch.equal(original[k], restored[k]) for k in original)
    tok.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(tok.encode(images), loaded.encode(images))
        assert torch.equal(tok(images).reconstruction, loaded(images).reconstruction)
    if kind == "vqct":
        assert loaded.quantizer.vocabulary == {"adjectives": word_spec.adjectives, "nouns": word_spec.nouns}


def test_save_replaces_an_existing_directory_atomically(tmp_path, images):
    tok = make_tokenizer("vq")
    tok.save_pretrained(tmp_path / "tok")
    with torch.no_grad():
        tok.post_quant_conv.bias.add_(1.0)
    tok.save_pretrained(tmp_path / "tok")
    assert torch.equal(
        VQTokenizer.from_pretrained(tmp_path / "tok").post_quant_conv.bias, tok.post_quant_conv.bias
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tok"]  # no temp or old directories left


def test_missing_unexpected_and_mismatched_keys_are_refused(tmp_path):
    tok = make_tokenizer("vq")
    path = tok.save_pretrained(tmp_path / "tok")
    weights = load_file(str(path / "model.safetensors"))
    bad = dict(weights)
    del bad["decoder.conv_out.bias"]
    bad["extra.weight"] = torch.zeros(1)
    bad["quantizer.codebook"] = torch.zeros(5, 8)
    save_file(bad, str(path / "model.safetensors"))
    with pytest.raises(ValueError) as err:
        VQTokenizer.from_pretrained(path)
    message = str(err.value)
    assert "model.safetensors" in message
    assert "missing keys (1): decoder.conv_out.bias" in message
    assert "unexpected keys (1): extra.weight" in message
    assert "quantizer.codebook: expected (32, 8), found (5, 8)" in message


def test_bad_config_is_refused_with_the_file_and_key(tmp_path):
    path = make_tokenizer("vq").save_pretrained(tmp_path / "tok")
    meta = json.loads((path / "config.json").read_text())
    meta["config"]["encoder"]["chanels"] = 3
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"config\.json.*encoder\.chanels"):
        VQTokenizer.from_pretrained(path)
    (path / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match="invalid JSON"):
        VQTokenizer.from_pretrained(path)


def _taming_keys(ch: int, ch_mult: tuple[int, ...], num_res_blocks: int, attn_levels: set[int]) -> set[str]:
    """Parameter names of a taming VQModel, written from taming's module structure (not from our model)."""
    keys = {"quantize.embedding.weight"}
    conv = ("weight", "bias")
    keys |= {
        f"{m}.{p}"
        for m in (
            "encoder.conv_in",
            "encoder.conv_out",
            "decoder.conv_in",
            "decoder.conv_out",
            "encoder.norm_out",
            "decoder.norm_out",
            "quant_conv",
            "post_quant_conv",
        )
        for p in conv
    }

    def resblock(prefix: str, cin: int, cout: int) -> set[str]:
        names = ["norm1", "conv1", "norm2", "conv2"] + (["nin_shortcut"] if cin != cout else [])
        return {f"{prefix}.{n}.{p}" for n in names for p in conv}

    def attn(prefix: str) -> set[str]:
        return {f"{prefix}.{n}.{p}" for n in ("norm", "q", "k", "v", "proj_out") for p in conv}

    mult_in = (1,) + ch_mult
    for i, m in enumerate(ch_mult):
        cin = ch * mult_in[i]
        for j in range(num_res_blocks):
            keys |= resblock(f"encoder.down.{i}.block.{j}", cin, ch * m)
            cin = ch * m
            if i in attn_levels:
                keys |= attn(f"encoder.down.{i}.attn.{j}")
        if i != len(ch_mult) - 1:
            keys |= {f"encoder.down.{i}.downsample.conv.{p}" for p in conv}
    top = ch * ch_mult[-1]
    for side in ("encoder", "decoder"):
        keys |= resblock(f"{side}.mid.block_1", top, top) | resblock(f"{side}.mid.block_2", top, top)
        keys |= attn(f"{side}.mid.attn_1")
    cin = top
    for i in reversed(range(len(ch_mult))):
        for j in range(num_res_blocks + 1):
            keys |= resblock(f"decoder.up.{i}.block.{j}", cin, ch * ch_mult[i])
            cin = ch * ch_mult[i]
            if i in attn_levels:
                keys |= attn(f"decoder.up.{i}.attn.{j}")
        if i != 0:
            keys |= {f"decoder.up.{i}.upsample.conv.{p}" for p in conv}
    return keys


def test_taming_state_dict_round_trip():
    tok = make_tokenizer("vq", legacy=True)
    disc = build_discriminator(tok.config)
    # the tiny config: ch 16, ch_mult (1, 2), 1 res block, attention at 8 px = level 1
    expected = _taming_keys(TINY_ENCODER.ch, TINY_ENCODER.ch_mult, TINY_ENCODER.num_res_blocks, {1})
    ours = to_taming_state_dict(tok.state_dict())
    assert set(ours) == expected
    # a randomly initialised taming-shaped checkpoint, with LPIPS and logvar entries taming carries
    generator = torch.Generator().manual_seed(3)
    taming = {k: torch.randn(v.shape, generator=generator) for k, v in ours.items()}
    taming |= {
        f"loss.discriminator.{k}": torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
        for k, v in disc.state_dict().items()
    }
    taming["loss.perceptual_loss.lin0.model.1.weight"] = torch.zeros(1, 64, 1, 1)
    taming["loss.logvar"] = torch.zeros(())
    fresh = make_tokenizer("vq", legacy=True)
    fresh_disc = build_discriminator(fresh.config)
    load_taming_state_dict(fresh, taming, discriminator=fresh_disc)
    back = to_taming_state_dict(fresh.state_dict(), fresh_disc.state_dict())
    original = {k: v for k, v in taming.items() if not k.startswith(("loss.perceptual_loss", "loss.logvar"))}
    assert back.keys() == original.keys()
    assert all(torch.equal(back[k], original[k]) for k in original)


def test_taming_unknown_keys_are_refused():
    with pytest.raises(ValueError, match="unrecognised taming keys"):
        from_taming_state_dict(
            {"quantize.embedding.weight": torch.zeros(2, 2), "first_stage_model.x": torch.zeros(1)}
        )
