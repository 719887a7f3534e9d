"""Load taming-transformers ``VQModel`` checkpoints into a ``VQTokenizer`` (and back).

The encoder/decoder/quant-conv parameter names are identical by construction; the codebook moves from
``quantize.embedding.weight`` to ``quantizer.codebook``; ``loss.discriminator.*`` becomes the PatchGAN's state
dict;
taming's frozen LPIPS (``loss.perceptual_loss.*``) and ``loss.logvar`` are dropped. Anything else is refused.
Use a ``vqgan`` config with taming's settings (``QuantizerConfig(legacy=True)`` for its β placement)::

    sd = torch.load("last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    tok = vqgan(encoder=EncoderConfig(...), quantizer=QuantizerConfig(codebook_size=1024, embed_dim=256,
    legacy=True))
    load_taming_state_dict(tok, sd, discriminator=disc)
"""

from __future__ import annotations

from torch import Tensor, nn

from lgvq_core.models.tokenizer import check_state_dict

__all__ = ["from_taming_state_dict", "to_taming_state_dict", "load_taming_state_dict"]

_SAME_PREFIXES = ("encoder.", "decoder.", "quant_conv.", "post_quant_conv.")
_DROPPED_PREFIXES = ("loss.perceptual_loss.", "loss.logvar")
_CODEBOOK_TAMING = "quantize.embedding.weight"
_CODEBOOK_OURS = "quantizer.codebook"
_DISC_PREFIX = "loss.discriminator."


def from_taming_state_dict(state: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """taming ``VQModel`` state dict → (tokenizer entries, discriminator state dict). Unknown keys raise."""
    tokenizer: dict[str, Tensor] = {}
    discriminator: dict[str, Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key.startswith(_SAME_PREFIXES):
            tokenizer[key] = value
        elif key == _CODEBOOK_TAMING:
            tokenizer[_CODEBOOK_OURS] = value
        elif key.startswith(_DISC_PREFIX):
            discriminator[key[len(_DISC_PREFIX) :]] = value
        elif key.startswith(_DROPPED_PREFIXES):
            continue
        else:
            unknown.append(key)
    if unknown:
        raise ValueError(f"unrecognised taming keys ({len(unknown)}): {', '.join(sorted(unknown)[:10])}")
    if _CODEBOOK_OURS not in tokenizer:
        raise ValueError(f"taming state dict has no {_CODEBOOK_TAMING!r} (not a VQModel?)")
    return tokenizer, discriminator


def to_taming_state_dict(
    tokenizer_state: dict[str, Tensor], discriminator_state: dict[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Inverse of ``from_taming_state_dict`` (our quantizer buffers, which taming lacks, are dropped)."""
    out: dict[str, Tensor] = {}
    for key, value in tokenizer_state.items():
        if key.startswith(_SAME_PREFIXES):
            out[key] = value
        elif key == _CODEBOOK_OURS:
            out[_CODEBOOK_TAMING] = value
    for key, value in (discriminator_state or {}).items():
        out[_DISC_PREFIX + key] = value
    return out


def load_taming_state_dict(
    tokenizer: nn.Module, state: dict[str, Tensor], *, discriminator: nn.Module | None = None
) -> None:
    """Load a taming ``VQModel`` state dict into a vq-based ``VQTokenizer`` (and optionally its
    discriminator).

    Quantizer buffers taming does not have (usage, init flag, EMA state) keep the tokenizer's current values.
    Raises ``ValueError`` listing missing/unexpected keys or shape mismatches.
    """
    tok_state, disc_state = from_taming_state_dict(state)
    expected = tokenizer.state_dict()
    merged = {k: v for k, v in expected.items() if k.startswith("quantizer.") and k != _CODEBOOK_OURS}
    merged.update(tok_state)
    check_state_dict(expected, merged, source="taming state dict")
    tokenizer.load_state_dict(merged, strict=True)
    if discriminator is not None:
        if not disc_state:
            raise ValueError("taming state dict has no loss.discriminator.* entries")
        check_state_dict(discriminator.state_dict(), disc_state, source="taming state dict (discriminator)")
        discriminator.load_state_dict(disc_state, strict=True)
