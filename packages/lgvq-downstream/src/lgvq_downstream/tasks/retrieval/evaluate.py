"""Evaluate image→text retrieval on one split: R@k, median and mean rank, and their exact chance levels.

Protocol: every image of the split is a query; the gallery is the split's captions, *one per image* (chosen
by seed, see :mod:`.data`); a query hits at k when a caption with the same text as its own is among the k most
similar (cosine of f_vt's [CLS] in the sentence space vs the text encoder's sentence embedding). Chance
levels are those of a uniformly random ranking of the same gallery, duplicates counted.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.retrieval.config import RetrievalConfig
from lgvq_downstream.tasks.retrieval.data import RetrievalDataset
from lgvq_downstream.tasks.retrieval.model import RetrievalModel
from lgvq_downstream.tasks.retrieval.ranking import (
    caption_ranks,
    chance_median_rank,
    chance_recall,
    median_rank,
    recall_at_k,
)

__all__ = ["evaluate", "similarity_matrix"]

logger = logging.getLogger(__name__)

TOP = 5  # captions listed per example


@torch.no_grad()
def similarity_matrix(model: RetrievalModel, dataset: RetrievalDataset, batch_size: int = 64) -> torch.Tensor:
    """Cosine similarities N×N (image i vs the caption of image j) on the CPU."""
    model.eval()
    images, texts = [], []
    for start in range(0, len(dataset), batch_size):
        stop = min(start + batch_size, len(dataset))
        images.append(model.image_embeddings(dataset.images[start:stop]).float().cpu())
        texts.append(model.text_embeddings(dataset.captions[start:stop]).float().cpu())
    return torch.cat(images) @ torch.cat(texts).t()


def evaluate(
    model: RetrievalModel, dataset: RetrievalDataset, config: RetrievalConfig | None = None
) -> dict[str, Any]:
    """Retrieval metrics of ``model`` on ``dataset`` (see the module docstring).

    Raises ``CheckpointMismatchError`` (naming both tokenizers) for codes of another tokenizer, and
    ``ValueError`` for probe heads that were never fitted.

    Returns:
        ``{"task", "split", "heads", "images", "protocol", "recall@k"…, "median_rank", "mean_rank",
        "chance": {"recall@k"…, "median_rank"}, "probe", "data", "examples"}``.
    """
    config = config or RetrievalConfig()
    check_codes(model.tokenizer_info, dataset.codes, None)
    if not model.trained:
        raise ValueError("the probe heads are not fitted yet: run train(model, train_set, config) first")
    similarity = similarity_matrix(model, dataset, config.batch_size)
    captions = dataset.captions
    ranks = caption_ranks(similarity, captions, captions)
    n = len(dataset)
    result: dict[str, Any] = {
        "task": "retrieval",
        "split": dataset.split,
        "heads": model.heads,
        "images": n,
        "protocol": (
            "image→text: each image ranks the split's captions (one per image, chosen by seed "
            f"{dataset.seed}); a hit at k = a caption with the image's own text among the k most similar "
            "(cosine of f_vt [CLS] → sentence space vs the text encoder's sentence embedding); median rank = "
            "floor(median(rank − 1)) + 1; chance = a uniformly random ranking, identical texts counted"
        ),
    }
    for k in config.ks:
        result[f"recall@{k}"] = recall_at_k(ranks, k)
    result["median_rank"] = median_rank(ranks)
    result["mean_rank"] = float(ranks.double().mean())
    result["chance"] = {f"recall@{k}": chance_recall(captions, k) for k in config.ks}
    result["chance"]["median_rank"] = chance_median_rank(captions)
    result["probe"] = model.probe
    result["data"] = dataset.report()
    chosen = torch.randperm(n, generator=torch.Generator().manual_seed(config.seed))[: config.num_examples]
    examples = []
    for i in sorted(chosen.tolist()):
        top = similarity[i].sort(descending=True, stable=True).indices[:TOP].tolist()
        examples.append(
            {
                "id": dataset.ids[i],
                "caption": captions[i],
                "rank": int(ranks[i]),
                "top": [{"caption": captions[j], "similarity": float(similarity[i, j])} for j in top],
                "indices": dataset.images[i].tolist(),
            }
        )
    result["examples"] = examples
    first = config.ks[0]
    logger.info(
        "retrieval (%s heads) on %s, %d images: R@%d %.3f (chance %.3f), median rank %g (chance %d)",
        model.heads,
        dataset.split,
        n,
        first,
        result[f"recall@{first}"],
        result["chance"][f"recall@{first}"],
        result["median_rank"],
        result["chance"]["median_rank"],
    )
    return result
