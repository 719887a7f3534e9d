"""Image→text retrieval on code shards with LG heads (f_vt [CLS] vs the sentence embedding), or with probe
heads fitted on a tokenizer without LG.

    from lgvq_downstream.tasks.retrieval import RetrievalConfig, RetrievalDataset, build, train, evaluate
    model = build(model_dir, config)                            # LG heads, or fresh probe heads
    train(model, RetrievalDataset(codes_dir, "train", seed=config.seed), config)   # probes only
    report = evaluate(model, RetrievalDataset(codes_dir, "test", seed=config.seed), config)

CLI: ``lgvq-downstream retrieve`` (:mod:`.cli`).
"""

from lgvq_downstream.tasks.retrieval.config import RetrievalConfig
from lgvq_downstream.tasks.retrieval.data import RetrievalDataset, collate_retrieval
from lgvq_downstream.tasks.retrieval.evaluate import evaluate, similarity_matrix
from lgvq_downstream.tasks.retrieval.model import CodeInput, RetrievalModel, build
from lgvq_downstream.tasks.retrieval.ranking import (
    caption_ranks,
    chance_median_rank,
    chance_recall,
    median_rank,
    recall_at_k,
)
from lgvq_downstream.tasks.retrieval.train import probe_batches, train, train_step

__all__ = [
    "CodeInput",
    "RetrievalConfig",
    "RetrievalDataset",
    "RetrievalModel",
    "build",
    "caption_ranks",
    "chance_median_rank",
    "chance_recall",
    "collate_retrieval",
    "evaluate",
    "median_rank",
    "probe_batches",
    "recall_at_k",
    "similarity_matrix",
    "train",
    "train_step",
]
