"""Ranks, R@k and median rank of image→text retrieval, and their exact chance levels.

Image i's query is scored against the gallery of captions (one per image); its *rank* is the 1-based position
of the first gallery caption whose text equals image i's own caption (identical texts count as hits, as in
``lgvq_core.guidance.diagnostics.image_text_retrieval``). Equal similarities keep gallery order (stable sort).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from lgvq_core.guidance.diagnostics import retrieval_chance

__all__ = ["caption_ranks", "chance_median_rank", "chance_recall", "median_rank", "recall_at_k"]


def caption_ranks(similarity: Tensor, gallery: Sequence[str], own: Sequence[str]) -> Tensor:
    """similarity N×M (image i vs gallery caption j), the M gallery texts, the N images' own texts → N int64
    ranks in 1..M. ``ValueError`` when an image's own text is not in the gallery."""
    if similarity.shape != (len(own), len(gallery)):
        raise ValueError(
            f"similarity {tuple(similarity.shape)} != {len(own)} images × {len(gallery)} captions"
        )
    ids = {text: i for i, text in enumerate(dict.fromkeys(gallery))}
    missing = [text for text in own if text not in ids]
    if missing:
        raise ValueError(f"{len(missing)} images' captions are not in the gallery, e.g. {missing[0]!r}")
    gallery_ids = torch.tensor([ids[t] for t in gallery], dtype=torch.long)
    own_ids = torch.tensor([ids[t] for t in own], dtype=torch.long)
    order = torch.sort(similarity, dim=1, descending=True, stable=True).indices
    hits = gallery_ids[order] == own_ids[:, None]
    return hits.to(torch.int8).argmax(dim=1) + 1


def recall_at_k(ranks: Tensor, k: int) -> float:
    """Fraction of images whose rank is ≤ k."""
    return float((ranks <= k).double().mean())


def median_rank(ranks: Tensor) -> float:
    """``floor(median(rank − 1)) + 1`` (the VSE++ / CLIP-benchmark convention: an even count takes the lower
    middle)."""
    return float(np.floor(np.median(ranks.numpy() - 1)) + 1)


def chance_recall(captions: Sequence[str], k: int) -> float:
    """Exact R@k of a uniformly random ranking of the gallery ``captions`` (one per image), identical texts
    counted: mean_i [1 − C(N − c_i, k) / C(N, k)] (``lgvq_core``'s ``retrieval_chance``)."""
    return retrieval_chance(list(captions), k)


def chance_median_rank(captions: Sequence[str]) -> int:
    """Median of the rank a uniformly random ranking gives, pooled over images: the smallest r with
    chance R@r ≥ 0.5. O(N · distinct counts)."""
    n = len(captions)
    if n == 0:
        raise ValueError("no captions")
    multiplicity = Counter(Counter(captions).values())  # c → number of distinct texts occurring c times
    miss = {c: 1.0 for c in multiplicity}
    for r in range(1, n + 1):
        for c in miss:  # P(no hit in the first r) = prod_{j<r} (N − c − j) / (N − j)
            miss[c] *= max(n - c - (r - 1), 0) / (n - (r - 1))
        hit = 1.0 - sum(multiplicity[c] * c * miss[c] for c in miss) / n
        if hit >= 0.5 - 1e-12:
            return r
    return n  # pragma: no cover - r = N always hits
