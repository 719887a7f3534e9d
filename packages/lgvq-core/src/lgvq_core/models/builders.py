"""Builders for the four base tokenizers: ``vqvae()``, ``vqgan()``, ``cvq()``, ``vqct()`` and
``build(config)``.

Each builder takes keyword-only sub-configs (defaults: the f16 taming setting of BASELINES §6) or a whole
``TokenizerConfig``. Defaults per base:

| base  | quantizer | β on (``legacy``)  | reconstruction | perceptual | GAN |
|-------|-----------|--------------------|----------------|------------|-----|
| vqvae | vq        | commitment (False) | L1 + L2        | none       | none |
| vqgan | vq        | codebook (True)    | L1             | EffLite0 (LPIPS stand-in) | PatchGAN hinge |
| cvq   | cvq       | commitment (False) | as vqgan       | as vqgan   | as vqgan |
| vqct  | vqct      | codebook (True)    | as vqgan       | as vqgan   | as vqgan |

(GAN: start 10k, ×0.8 adaptive weight.) β placement follows each base's own official code
(``official_legacy(base)``): VQ-VAE paper, taming ``VectorQuantizer2`` default, official CVQ, official VQCT.
With β = ``commitment_weight`` = 0.25 and ``codebook_weight`` = 1, ``legacy=True`` gives
``‖sg[e] − z‖² + 0.25·‖e − sg[z]‖²`` (taming; VQCT per branch) and ``legacy=False`` gives
``0.25·‖sg[e] − z‖² + ‖e − sg[z]‖²`` (VQ-VAE, CVQ). With ``codebook_update="ema"`` there is no codebook
term and ``legacy`` has no effect. A ``quantizer=`` passed to a builder is used as given (its ``legacy``
field wins); a config merged over ``default_config(base)`` keeps the base's placement unless it sets
``legacy`` itself.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from torch import nn

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig, TokenizerConfig
from lgvq_core.models.decoder import Decoder
from lgvq_core.models.discriminator import PatchDiscriminator
from lgvq_core.models.encoder import Encoder
from lgvq_core.models.tokenizer import VQTokenizer

__all__ = [
    "vqvae",
    "vqgan",
    "cvq",
    "vqct",
    "build",
    "build_discriminator",
    "default_config",
    "official_legacy",
    "BUILDERS",
]

_GAN_LOSS = LossConfig()
_VQVAE_LOSS = LossConfig(
    reconstruction="l1+l2",
    perceptual_weight=0.0,
    perceptual_net="none",
    disc_weight=0.0,
    adaptive_weight=False,
)


# β placement of each base's official code: True = taming legacy (β on the codebook term).
_OFFICIAL_LEGACY = {"vqvae": False, "vqgan": True, "cvq": False, "vqct": True}


def official_legacy(base: str) -> bool:
    """``QuantizerConfig.legacy`` of ``base``'s official code (see the module table).

    vqgan: taming ``VectorQuantizer2`` default (True); vqct: official VQCT, taming form per branch (True);
    vqvae: VQ-VAE paper, β on commitment (False); cvq: official CVQ, β on commitment (False).
    """
    try:
        return _OFFICIAL_LEGACY[base]
    except KeyError:
        raise ValueError(f"unknown base {base!r}; expected one of {sorted(_OFFICIAL_LEGACY)}") from None


def default_config(base: str) -> TokenizerConfig:
    """The default ``TokenizerConfig`` of a base (see the module table)."""
    if base == "vqvae":
        quantizer, loss = QuantizerConfig(kind="vq", legacy=official_legacy(base)), _VQVAE_LOSS
    elif base == "vqgan":
        quantizer, loss = QuantizerConfig(kind="vq", legacy=official_legacy(base)), _GAN_LOSS
    elif base == "cvq":
        quantizer, loss = QuantizerConfig(kind="cvq", legacy=official_legacy(base)), _GAN_LOSS
    elif base == "vqct":
        quantizer, loss = QuantizerConfig(kind="vqct", legacy=official_legacy(base)), _GAN_LOSS
    else:
        raise ValueError(f"unknown base {base!r}; expected one of {sorted(BUILDERS)}")
    return TokenizerConfig(base=base, quantizer=quantizer, loss=loss)


def _resolve(
    base: str,
    config: TokenizerConfig | None,
    encoder: EncoderConfig | None,
    quantizer: QuantizerConfig | None,
    loss: LossConfig | None,
) -> TokenizerConfig:
    if config is not None:
        if any(x is not None for x in (encoder, quantizer, loss)):
            raise ValueError("pass either config= or encoder=/quantizer=/loss=, not both")
        if config.base != base:
            raise ValueError(f"config.base is {config.base!r}, but this builder builds {base!r}")
        return config
    cfg = default_config(base)
    if quantizer is not None and quantizer.kind != cfg.quantizer.kind:
        raise ValueError(f"{base} needs quantizer kind {cfg.quantizer.kind!r}, got {quantizer.kind!r}")
    return dataclasses.replace(
        cfg, encoder=encoder or cfg.encoder, quantizer=quantizer or cfg.quantizer, loss=loss or cfg.loss
    )


def build(
    config: TokenizerConfig,
    *,
    perceptual: nn.Module | None = None,
    word_spec: Any = None,
    extra: dict[str, Any] | None = None,
) -> VQTokenizer:
    """Build the tokenizer a ``TokenizerConfig`` describes.

    Args:
        perceptual: injected perceptual loss module (default: built lazily from ``config.loss`` when needed).
        word_spec: VQCT only: the ``WordCodebookSpec``; without it, placeholder buffers of the configured
        sizes are
            created (to be filled by ``load_state_dict``, as ``from_pretrained`` does) using
            ``extra["vocabulary"]``.
        extra: data saved by ``VQTokenizer.extra_config`` (VQCT vocabulary).
    """
    q = config.quantizer
    if q.kind == "vq":
        from lgvq_core.quantizers.vq import VectorQuantizer

        quantizer: nn.Module = VectorQuantizer.from_config(q)
    elif q.kind == "cvq":
        from lgvq_core.quantizers.cvq import ClusteredVectorQuantizer

        quantizer = ClusteredVectorQuantizer.from_config(q)
    elif q.kind == "vqct":
        from lgvq_core.quantizers.vqct import VQCTQuantizer

        quantizer = VQCTQuantizer.from_config(q, spec=word_spec, extra=extra)
    else:  # pragma: no cover - guarded by the config's Literal
        raise ValueError(f"unknown quantizer kind {q.kind!r}")
    return VQTokenizer(
        config,
        encoder=Encoder(config.encoder),
        decoder=Decoder(config.encoder),
        quantizer=quantizer,
        perceptual=perceptual,
    )


def vqvae(
    *,
    config: TokenizerConfig | None = None,
    encoder: EncoderConfig | None = None,
    quantizer: QuantizerConfig | None = None,
    loss: LossConfig | None = None,
    perceptual: nn.Module | None = None,
) -> VQTokenizer:
    """VQ-VAE baseline (taming f16 backbone, L1+L2, no GAN)."""
    return build(_resolve("vqvae", config, encoder, quantizer, loss), perceptual=perceptual)


def vqgan(
    *,
    config: TokenizerConfig | None = None,
    encoder: EncoderConfig | None = None,
    quantizer: QuantizerConfig | None = None,
    loss: LossConfig | None = None,
    perceptual: nn.Module | None = None,
) -> VQTokenizer:
    """VQ-GAN (taming): L1 + perceptual + PatchGAN hinge with adaptive weight."""
    return build(_resolve("vqgan", config, encoder, quantizer, loss), perceptual=perceptual)


def cvq(
    *,
    config: TokenizerConfig | None = None,
    encoder: EncoderConfig | None = None,
    quantizer: QuantizerConfig | None = None,
    loss: LossConfig | None = None,
    perceptual: nn.Module | None = None,
) -> VQTokenizer:
    """VQ-GAN with CVQ's online clustered codebook (BASELINES §3)."""
    return build(_resolve("cvq", config, encoder, quantizer, loss), perceptual=perceptual)


def vqct(
    *,
    spec: Any,
    config: TokenizerConfig | None = None,
    encoder: EncoderConfig | None = None,
    quantizer: QuantizerConfig | None = None,
    loss: LossConfig | None = None,
    perceptual: nn.Module | None = None,
) -> VQTokenizer:
    """VQ-GAN with VQCT's codebook transfer over a ``WordCodebookSpec`` (BASELINES §4).

    The vocabulary sizes in ``quantizer.vqct`` are filled from ``spec`` (given sizes must agree).
    """
    cfg = _resolve("vqct", config, encoder, quantizer, loss)
    sizes = {
        "num_adjectives": len(spec.adjectives),
        "num_nouns": len(spec.nouns),
        "word_dim": int(spec.adjective_vectors.shape[1]),
        "num_edges": int(spec.edge_index.shape[1]),
    }
    current = cfg.quantizer.vqct
    for name, value in sizes.items():
        if getattr(current, name) not in (0, value):
            raise ValueError(
                f"quantizer.vqct.{name}={getattr(current, name)} disagrees with the spec ({value})"
            )
    vqct_cfg = dataclasses.replace(current, **sizes)
    cfg = dataclasses.replace(cfg, quantizer=dataclasses.replace(cfg.quantizer, vqct=vqct_cfg))
    return build(cfg, perceptual=perceptual, word_spec=spec)


def build_discriminator(config: TokenizerConfig) -> PatchDiscriminator | None:
    """The PatchGAN for a config (None when the config uses no GAN)."""
    if not config.loss.uses_gan:
        return None
    return PatchDiscriminator(config.encoder.in_channels, config.loss.disc_channels, config.loss.disc_layers)


BUILDERS = {"vqvae": vqvae, "vqgan": vqgan, "cvq": cvq, "vqct": vqct}
