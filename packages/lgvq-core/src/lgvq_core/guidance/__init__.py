"""Language guidance (LG-VQ): frozen text encoders, semantic and relation alignment, the LanguageGuided
wrapper.

Public API::

    from lgvq_core.guidance import LanguageGuided, GuidanceConfig, AlignmentWeights, default_text_encoder
    encoder = default_text_encoder(context_length=30)          # all-MiniLM-L6-v2, offline
    model = LanguageGuided(base_tokenizer, encoder, GuidanceConfig.paper())
    step = model.training_losses(batch, step=0)                # .total, .breakdown["lgsa"|"lmtp"|"lras"]
    tokenizer = model.export()                                 # the base alone
"""

from lgvq_core.guidance.config import MODES, AlignmentWeights, GuidanceConfig
from lgvq_core.guidance.language_guided import AlignmentOutput, LanguageGuided
from lgvq_core.guidance.text_cache import TextFeatureCache
from lgvq_core.guidance.text_encoder import (
    HFTextEncoder,
    TextEncoder,
    TextFeatures,
    default_text_encoder,
    load_text_encoder,
)

__all__ = [
    "MODES",
    "AlignmentOutput",
    "AlignmentWeights",
    "GuidanceConfig",
    "HFTextEncoder",
    "LanguageGuided",
    "TextEncoder",
    "TextFeatureCache",
    "TextFeatures",
    "default_text_encoder",
    "load_text_encoder",
]
