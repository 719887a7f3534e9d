"""One second-stage transformer for every downstream task: ``CodeTransformer`` over
``[prefix | image codes | text]``, its config, KV cache, samplers and beam search."""

from lgvq_downstream.transformer.attention import attention_mask
from lgvq_downstream.transformer.beam import BeamSearchOutput, beam_search
from lgvq_downstream.transformer.cache import KVCache
from lgvq_downstream.transformer.config import CodeTransformerConfig
from lgvq_downstream.transformer.model import CodeTransformer, CodeTransformerOutput
from lgvq_downstream.transformer.sampling import filter_logits, generate, sample_next_token

__all__ = [
    "BeamSearchOutput",
    "CodeTransformer",
    "CodeTransformerConfig",
    "CodeTransformerOutput",
    "KVCache",
    "attention_mask",
    "beam_search",
    "filter_logits",
    "generate",
    "sample_next_token",
]
