"""``ConditionEmbedder``: a ``Condition`` → transformer inputs, with a learned null embedding per condition.

* text: frozen token states B×T×D → LayerNorm → linear D→C, as prefix tokens padded to ``max_text_tokens``
  (padding hidden from attention). Null: one learned token (the other prefix positions are padding).
* mask: class map B×H×W → per-cell majority class B×h×w → an embedding table, added to the image positions
  (``image_extra`` B×N×C, N = h·w, raster order). Null: a learned class id ``mask_classes``.

A condition the model was built with but not given, or dropped (``drop``), takes its null embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from lgvq_downstream.generation.condition import Condition, pool_class_map
from lgvq_downstream.generation.config import GeneratorConfig

__all__ = ["ConditionEmbedder", "EmbeddedCondition", "check_condition"]


@dataclass
class EmbeddedCondition:
    """``prefix`` B×P×C and ``prefix_mask`` B×P (True = real), or ``None`` without a text condition;
    ``image_extra`` B×N×C added to the image positions, or ``None`` without a mask condition."""

    prefix: Tensor | None = None
    prefix_mask: Tensor | None = None
    image_extra: Tensor | None = None


def check_condition(config: GeneratorConfig, condition: Condition) -> None:
    """Raise ``ValueError`` when ``condition`` does not fit a model built with ``config``."""
    if condition.text_features is not None:
        if "text" not in config.conditions:
            raise ValueError(
                f"got a text condition but the model was built with conditions={list(config.conditions)}; "
                "build it with 'text' in conditions"
            )
        d = condition.text_features.shape[-1]
        if d != config.text_feature_dim:
            raise ValueError(
                f"text_features have width {d}; expected text_feature_dim={config.text_feature_dim}"
            )
        mask = _text_mask(condition)
        empty = torch.nonzero(mask.sum(dim=1) == 0).flatten().tolist()
        if empty:
            raise ValueError(f"text condition rows {empty} have zero valid tokens; expected at least one")
        if _last_valid(mask) > config.max_text_tokens:
            raise ValueError(
                f"text condition has up to {_last_valid(mask)} tokens; expected at most "
                f"max_text_tokens={config.max_text_tokens}"
            )
    if condition.mask is not None:
        if "mask" not in config.conditions:
            raise ValueError(
                f"got a mask condition but the model was built with conditions={list(config.conditions)}; "
                "build it with 'mask' in conditions"
            )
        low, high = int(condition.mask.min()), int(condition.mask.max())
        if low < 0 or high >= config.mask_classes:
            raise ValueError(
                f"mask class ids must be in [0, {config.mask_classes}) (mask_classes={config.mask_classes}), "
                f"got values in [{low}, {high}]"
            )
        pool_class_map(condition.mask[:1], config.grid, config.mask_classes)  # H, W multiples of the grid


def _text_mask(condition: Condition) -> Tensor:
    assert condition.text_features is not None
    if condition.text_mask is None:
        b, t, _ = condition.text_features.shape
        return torch.ones(b, t, dtype=torch.bool, device=condition.text_features.device)
    return condition.text_mask.to(torch.bool)


def _last_valid(mask: Tensor) -> int:
    """1 + the last column holding a real token in any row (0 when none)."""
    columns = torch.nonzero(mask.any(dim=0)).flatten()
    return int(columns[-1]) + 1 if columns.numel() else 0


class ConditionEmbedder(nn.Module):
    """See the module docstring."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config.width
        self.text_norm: nn.Module | None = None
        self.text_proj: nn.Module | None = None
        self.text_null: nn.Parameter | None = None
        self.mask_embed: nn.Embedding | None = None
        if "text" in config.conditions:
            self.text_norm = nn.LayerNorm(config.text_feature_dim)
            self.text_proj = nn.Linear(config.text_feature_dim, c)
            self.text_null = nn.Parameter(torch.randn(c) * 0.02)
            nn.init.normal_(self.text_proj.weight, std=0.02)
            nn.init.zeros_(self.text_proj.bias)
        if "mask" in config.conditions:
            self.mask_embed = nn.Embedding(config.mask_classes + 1, c)
            nn.init.normal_(self.mask_embed.weight, std=0.02)

    def forward(
        self,
        condition: Condition | None,
        batch: int,
        *,
        device: torch.device,
        drop: dict[str, Tensor] | None = None,
    ) -> EmbeddedCondition:
        """Embed ``condition`` (batch ``batch``; ``None``: every condition null); check it first with
        ``check_condition``.

        Args:
            drop: per condition name, B bool (True = use the null embedding for that row).
        """
        if condition is not None and condition.batch_size() != batch:
            raise ValueError(f"condition has batch size {condition.batch_size()}; expected {batch}")
        drop = drop or {}
        out = EmbeddedCondition()
        if self.text_proj is not None and self.text_norm is not None and self.text_null is not None:
            p, c = self.config.max_text_tokens, self.config.width
            prefix = torch.zeros(batch, p, c, device=device)
            prefix_mask = torch.zeros(batch, p, dtype=torch.bool, device=device)
            null = torch.ones(batch, dtype=torch.bool, device=device)
            if condition is not None and condition.text_features is not None:
                features = condition.text_features.to(device)
                mask = _text_mask(condition).to(device)
                t = min(features.shape[1], _last_valid(mask))
                projected = self.text_proj(self.text_norm(features[:, :t].to(prefix.dtype)))
                prefix[:, :t] = projected * mask[:, :t, None]
                prefix_mask[:, :t] = mask[:, :t]
                null = drop.get("text", torch.zeros_like(null)).to(device)
            prefix = torch.where(null[:, None, None], torch.zeros_like(prefix), prefix)
            prefix[:, 0] = torch.where(null[:, None], self.text_null.expand(batch, c), prefix[:, 0])
            prefix_mask = torch.where(null[:, None], torch.arange(p, device=device)[None] == 0, prefix_mask)
            out.prefix, out.prefix_mask = prefix, prefix_mask
        if self.mask_embed is not None:
            null_id = self.config.mask_classes
            ids = torch.full((batch, self.config.num_tokens), null_id, dtype=torch.long, device=device)
            if condition is not None and condition.mask is not None:
                pooled = pool_class_map(condition.mask.to(device), self.config.grid, self.config.mask_classes)
                ids = pooled.reshape(batch, -1)
                if "mask" in drop:
                    ids = ids.masked_fill(drop["mask"].to(device)[:, None], null_id)
            out.image_extra = self.mask_embed(ids)
        return out
