"""``GenerationModel``: a :class:`~lgvq_downstream.generation.CodeGenerator` with what the tasks need around
it — the frozen text encoder that turns captions into its condition, the tokenizer fingerprint of its training
codes, the class count of its masks and the code frequencies of the unigram baseline.

Checkpoint folder: ``generator/`` (``CodeGenerator.save_pretrained``) + ``task.json``; written to a
temporary sibling and renamed into place.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import lgvq_downstream
from lgvq_downstream.codes.tokenizer_folder import TokenizerInfo
from lgvq_downstream.generation import CodeGenerator, Condition
from lgvq_downstream.tasks.common.checkpoint import FORMAT, FORMAT_VERSION, TASK_NAME, read_task_record
from lgvq_downstream.tasks.generation.config import GenerationConfig
from lgvq_downstream.transformer.model import _replace_dir

__all__ = ["GenerationModel"]

TASK = "generation"
GENERATOR_DIR = "generator"


class GenerationModel(nn.Module):
    """``forward(codes, captions, masks)`` → the generator's training loss (conditions it was not built with
    are ignored). The text encoder is loaded on first use and is not part of the weights."""

    def __init__(
        self,
        config: GenerationConfig,
        generator: CodeGenerator,
        tokenizer_info: TokenizerInfo,
        mask_classes: int,
        code_frequencies: Tensor,
    ) -> None:
        super().__init__()
        self.config = config
        self.generator = generator
        self.tokenizer_info = tokenizer_info
        self.mask_classes = mask_classes
        self.register_buffer("code_frequencies", code_frequencies.float(), persistent=False)
        self.source: Path | None = None
        self._text_encoder: Any = None

    # ------------------------------------------------------------------------------------ conditions

    @property
    def text_encoder(self) -> Any:
        """The frozen text encoder of ``config.text_encoder`` (loaded once, kept out of ``state_dict``)."""
        if self._text_encoder is None:
            from lgvq_core.guidance.text_encoder import load_text_encoder

            self._text_encoder = load_text_encoder(
                self.config.text_encoder, context_length=self.config.max_text_tokens
            )
        return self._text_encoder

    def condition(
        self, captions: list[str] | None = None, masks: Tensor | None = None, *, drop: bool = False
    ) -> Condition | None:
        """The generator's condition for captions (B strings) and/or masks (B×H×W class ids); only the
        kinds the model was trained with are used. ``ValueError`` for an empty caption."""
        device = next(self.generator.parameters()).device
        text_features = text_mask = mask = None
        if captions is not None and "text" in self.config.conditions:
            empty = [i for i, c in enumerate(captions) if not c or not c.strip()]
            if empty:
                raise ValueError(f"caption {empty[0]} is empty; text-to-image needs a non-empty caption")
            with torch.no_grad():
                features = self.text_encoder.encode(list(captions))
            text_features = features.token_states.to(device)
            text_mask = features.attention_mask.to(device=device, dtype=torch.bool)
        if masks is not None and "mask" in self.config.conditions:
            mask = masks.to(device=device, dtype=torch.long)
        if text_features is None and mask is None:
            return None
        return Condition(text_features=text_features, text_mask=text_mask, mask=mask)

    def forward(
        self, codes: Tensor, captions: list[str] | None = None, masks: Tensor | None = None
    ) -> Tensor:
        """Training loss of a batch: codes B×h×w int64, captions B strings, masks B×H×W."""
        device = next(self.generator.parameters()).device
        return self.generator.loss(codes.to(device), self.condition(captions, masks))

    # ------------------------------------------------------------------------------------ checkpoint

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """``generator/`` + ``task.json`` (config, tokenizer fingerprint, mask classes, code frequencies)."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            self.generator.save_pretrained(tmp / GENERATOR_DIR)
            record = {
                "format": FORMAT,
                "format_version": FORMAT_VERSION,
                "task": TASK,
                "config": self.config.to_dict(),
                "tokenizer": self.tokenizer_info.to_dict(),
                "mask_classes": self.mask_classes,
                "code_frequencies": [round(float(f), 8) for f in self.code_frequencies.cpu()],
                "version": lgvq_downstream.__version__,
            }
            (tmp / TASK_NAME).write_text(
                json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8"
            )
            _replace_dir(tmp, target)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str = "cpu"
    ) -> GenerationModel:
        """Load a folder written by :meth:`save_pretrained`; ``ValueError`` naming the file when it is not
        one."""
        root = Path(directory)
        record = read_task_record(root, TASK)
        generator = CodeGenerator.from_pretrained(root / GENERATOR_DIR, map_location=map_location)
        model = cls(
            GenerationConfig.from_dict(record["config"], fill_defaults=True),
            generator,
            TokenizerInfo.from_dict(record["tokenizer"]),
            int(record["mask_classes"]),
            torch.tensor(record["code_frequencies"], dtype=torch.float32),
        )
        model.source = root
        return model.to(map_location).eval()
