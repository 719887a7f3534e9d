"""Encoder/decoder, discriminator, the ``VQTokenizer`` and the builders ``vqvae()``, ``vqgan()``, ``cvq()``,
``vqct()``."""

from lgvq_core.models.builders import (
    BUILDERS,
    build,
    build_discriminator,
    cvq,
    default_config,
    vqct,
    vqgan,
    vqvae,
)
from lgvq_core.models.discriminator import PatchDiscriminator
from lgvq_core.models.tokenizer import VQTokenizer

__all__ = [
    "BUILDERS",
    "PatchDiscriminator",
    "VQTokenizer",
    "build",
    "build_discriminator",
    "cvq",
    "default_config",
    "vqct",
    "vqgan",
    "vqvae",
]
