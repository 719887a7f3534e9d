"""VQA accuracy (exact match after normalisation), per question type, plus WUPS when WordNet is available.

COCO-QA has one single-word answer per question, so accuracy is plain exact match. A ground-truth answer
outside the training answer vocabulary can never be produced by an answer classifier: it counts as wrong, and
its share is reported as ``out_of_vocab_fraction``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Collection, Sequence
from typing import Any

from lgvq_downstream.metrics.wordnet import WUPS, WordNetUnavailable

__all__ = ["normalize_answer", "vqa_accuracy", "vqa_metrics"]

_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


def normalize_answer(answer: str) -> str:
    """Lower-case, collapse whitespace, strip punctuation at both ends (``" Red. "`` → ``"red"``)."""
    return _PUNCT_EDGES.sub("", " ".join(answer.lower().split()))


def vqa_accuracy(
    predictions: Sequence[str],
    answers: Sequence[str],
    *,
    question_types: Sequence[str] | None = None,
    answer_vocab: Collection[str] | None = None,
) -> dict[str, Any]:
    """Exact-match accuracy in [0, 1].

    Returns:
        ``accuracy``, ``num_questions``, ``per_type`` ({type: {accuracy, num_questions}}, when
        ``question_types`` is given) and ``out_of_vocab_fraction`` (when ``answer_vocab`` is given).
    """
    if len(predictions) != len(answers) or not answers:
        raise ValueError(
            f"need equally many predictions and answers (> 0), got {len(predictions)}/{len(answers)}"
        )
    if question_types is not None and len(question_types) != len(answers):
        raise ValueError("question_types must have one entry per question")
    correct = [normalize_answer(p) == normalize_answer(a) for p, a in zip(predictions, answers, strict=True)]
    result: dict[str, Any] = {"accuracy": sum(correct) / len(correct), "num_questions": len(correct)}
    if question_types is not None:
        groups: dict[str, list[bool]] = defaultdict(list)
        for kind, ok in zip(question_types, correct, strict=True):
            groups[kind].append(ok)
        result["per_type"] = {
            kind: {"accuracy": sum(v) / len(v), "num_questions": len(v)} for kind, v in sorted(groups.items())
        }
    if answer_vocab is not None:
        vocab = {normalize_answer(a) for a in answer_vocab}
        result["out_of_vocab_fraction"] = sum(normalize_answer(a) not in vocab for a in answers) / len(
            answers
        )
    return result


def vqa_metrics(
    predictions: Sequence[str],
    answers: Sequence[str],
    *,
    question_types: Sequence[str] | None = None,
    answer_vocab: Collection[str] | None = None,
    wups_thresholds: Sequence[float] = (0.9, 0.0),
    wordnet: Any | None = None,
) -> dict[str, Any]:
    """``vqa_accuracy`` plus ``WUPS@t`` for each threshold (``None`` with ``wups_status`` "absent: …" when
    WordNet is not installed)."""
    result = vqa_accuracy(predictions, answers, question_types=question_types, answer_vocab=answer_vocab)
    preds = [normalize_answer(p) for p in predictions]
    truths = [normalize_answer(a) for a in answers]
    try:
        scorer = WUPS(wordnet)
    except WordNetUnavailable as err:
        result["wups_status"] = f"absent: {err}"
        result.update({f"WUPS@{t}": None for t in wups_thresholds})
        return result
    result["wups_status"] = "available"
    result.update({f"WUPS@{t}": scorer(preds, truths, threshold=t) for t in wups_thresholds})
    return result
