"""Quantizers: one file per kind, one output type (:class:`lgvq_core.outputs.QuantizerOutput`)."""

from lgvq_core.quantizers.cvq import ClusteredVectorQuantizer
from lgvq_core.quantizers.vq import VectorQuantizer
from lgvq_core.quantizers.vqct import VQCTQuantizer
from lgvq_core.quantizers.vqct_vocabulary import WordCodebookSpec, build_word_codebook

__all__ = [
    "ClusteredVectorQuantizer",
    "VQCTQuantizer",
    "VectorQuantizer",
    "WordCodebookSpec",
    "build_word_codebook",
]
