"""Samplers of ``CodeGenerator``: autoregressive (raster order, KV cache), MaskGIT (parallel decoding), and
classifier-free guidance for both."""

from lgvq_downstream.generation.samplers.autoregressive import NextLogits, sample_autoregressive
from lgvq_downstream.generation.samplers.guidance import combine_guidance, guided
from lgvq_downstream.generation.samplers.maskgit import TokenLogits, sample_maskgit

__all__ = [
    "NextLogits",
    "TokenLogits",
    "combine_guidance",
    "guided",
    "sample_autoregressive",
    "sample_maskgit",
]
