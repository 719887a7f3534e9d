"""Per-caption cache of frozen text features.

The text encoder is frozen, so the features of an *unmasked* caption never change: they can be computed once
and reused every epoch. (In ``fixed`` mode the masked caption is encoded every step — its mask is random — so
only the unmasked features used by L_gsa and L_ras are cached.)
"""

from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from torch import Tensor

from lgvq_core.guidance.text_encoder import TextEncoder, TextFeatures

logger = logging.getLogger(__name__)


class TextFeatureCache:
    """LRU cache caption → one row of :class:`TextFeatures`, kept on the CPU.

    Token states are stored up to the caption's last real token only: memory per entry ≈ n·E·4 bytes
    (n real tokens; ≈ 18 KB for a 12-token caption with MiniLM's E = 384).

    Args:
        encoder: the frozen encoder that fills misses (one batched call per :meth:`encode`).
        max_entries: capacity; the least recently used captions are evicted beyond it. 0 disables caching.
    """

    def __init__(self, encoder: TextEncoder, max_entries: int) -> None:
        if max_entries < 0:
            raise ValueError(f"max_entries must be >= 0, got {max_entries}")
        self.encoder = encoder
        self.max_entries = int(max_entries)
        self._rows: OrderedDict[str, tuple[Tensor, ...]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        self._rows.clear()
        self.hits = self.misses = 0

    def encode(self, captions: list[str]) -> TextFeatures:
        """Features of ``captions`` (B rows, CPU), encoding only the captions not cached yet."""
        if self.max_entries == 0:
            self.misses += len(captions)
            return self.encoder.encode(captions).to("cpu")
        missing = list(dict.fromkeys(c for c in captions if c not in self._rows))
        self.misses += len(missing)
        self.hits += len(captions) - len(missing)
        if missing:
            fresh = self.encoder.encode(missing).to("cpu")
            lengths = _attended_lengths(fresh.attention_mask)
            for i, caption in enumerate(missing):
                row = [t[i] for t in fresh._tensors()]
                row[3] = row[3][: lengths[i]].clone()  # states past the last real token are zeros: not stored
                self._rows[caption] = tuple(row)
        rows = []
        for caption in captions:
            self._rows.move_to_end(caption)
            rows.append(self._rows[caption])
        ids, attention, special, states, sentence = zip(*rows, strict=False)
        context = ids[0].shape[0]
        padded = [torch.nn.functional.pad(s, (0, 0, 0, context - s.shape[0])) for s in states]
        features = TextFeatures(
            torch.stack(ids),
            torch.stack(attention),
            torch.stack(special),
            torch.stack(padded),
            torch.stack(sentence),
        )
        while len(self._rows) > self.max_entries:
            self._rows.popitem(last=False)
        return features


def _attended_lengths(attention_mask: Tensor) -> list[int]:
    """Per row: index of the last attended position + 1 (0 for an empty row)."""
    positions = torch.arange(1, attention_mask.shape[1] + 1)
    return (attention_mask.cpu().long() * positions).max(dim=1).values.tolist()
