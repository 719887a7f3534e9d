"""Image-code generation: ``CodeGenerator`` (autoregressive or MaskGIT) on one ``CodeTransformer``, its
config, conditions (text features, class maps) and samplers (KV-cached raster order, MaskGIT,
classifier-free guidance)."""

from lgvq_downstream.generation.condition import Condition, encode_captions, pool_class_map
from lgvq_downstream.generation.config import GeneratorConfig
from lgvq_downstream.generation.model import NLL_MASK_RATIOS, CodeGenerator

__all__ = [
    "NLL_MASK_RATIOS",
    "CodeGenerator",
    "Condition",
    "GeneratorConfig",
    "encode_captions",
    "pool_class_map",
]
