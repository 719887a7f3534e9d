"""Image captioning on tokenizer codes (ClipCap-style; METHOD-LGVQ §8, Table 11).

- :func:`build` (config, training code shards, text tokenizer) → :class:`Captioner`;
- :func:`train` (shared loop over :func:`train_step`) → history;
- :func:`evaluate` → coco-caption metrics with the most-frequent-caption baseline and the shuffled-codes
  control; :func:`save_caption_examples` draws the examples;
- ``Captioner.save_pretrained`` / ``Captioner.from_pretrained``; CLI ``lgvq-downstream caption``.
"""

from lgvq_downstream.tasks.captioning.config import CaptionConfig
from lgvq_downstream.tasks.captioning.data import CaptionImages, CaptionPairs, collect_images
from lgvq_downstream.tasks.captioning.evaluate import caption_codes, evaluate, save_caption_examples
from lgvq_downstream.tasks.captioning.mapper import MLPMapper, TransformerMapper, build_mapper
from lgvq_downstream.tasks.captioning.model import Captioner
from lgvq_downstream.tasks.captioning.train import build, train, train_step

__all__ = [
    "CaptionConfig",
    "CaptionImages",
    "CaptionPairs",
    "Captioner",
    "MLPMapper",
    "TransformerMapper",
    "build",
    "build_mapper",
    "caption_codes",
    "collect_images",
    "evaluate",
    "save_caption_examples",
    "train",
    "train_step",
]
