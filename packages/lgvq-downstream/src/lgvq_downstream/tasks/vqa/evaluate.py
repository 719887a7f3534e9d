"""Evaluate a :class:`VQAModel` on one split: accuracy, per-question-type accuracy and WUPS@0.9/@0.0
(``metrics.vqa_metrics``; WUPS is None with its reason when WordNet is absent), next to two reference points
scored the same way —

- the trivial baseline: the majority training answer of each question type;
- the shuffled-codes control: each question asked about the codes of another image of the split (a seeded
  derangement of the images); a model that ignores the image scores the same with and without shuffling.

Answers outside the training answer classes count as wrong (their share: ``out_of_vocab_fraction``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from torch import Tensor, nn
from tqdm import tqdm

from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.metrics.vqa import vqa_accuracy, vqa_metrics
from lgvq_downstream.tasks.common.checkpoint import check_codes
from lgvq_downstream.tasks.common.controls import derangement
from lgvq_downstream.tasks.common.plot import save_examples_png
from lgvq_downstream.tasks.common.rows import OnError, SkipReport
from lgvq_downstream.tasks.vqa.data import collect_questions
from lgvq_downstream.tasks.vqa.model import VQAModel

__all__ = ["answer_questions", "evaluate", "save_vqa_examples"]

logger = logging.getLogger(__name__)


def answer_questions(
    model: VQAModel,
    codes: Tensor,
    questions: list[str],
    *,
    batch_size: int = 128,
    progress: bool = False,
    desc: str = "answers",
) -> list[str]:
    """Answers for question i about the codes ``codes[i]`` (N×h×w), in batches."""
    out: list[str] = []
    for start in tqdm(range(0, len(questions), batch_size), desc=desc, disable=not progress):
        stop = start + batch_size
        out += model.answer(codes[start:stop], questions[start:stop])
    return out


def _scores(
    model: VQAModel, predictions: list[str], answers: list[str], types: list[str], wups: bool
) -> dict[str, Any]:
    vocab = model.answers.answers
    if wups:
        return vqa_metrics(predictions, answers, question_types=types, answer_vocab=vocab)
    result = vqa_accuracy(predictions, answers, question_types=types, answer_vocab=vocab)
    return {**result, "wups_status": "not computed (wups=False)"}


def _example_questions(images: list[int], keep: int) -> list[int]:
    """One question from each of the first ``keep`` images, cycling through the question positions (image k
    shows its k-th question), so a figure shows different images and question types."""
    groups: dict[int, list[int]] = {}
    for i, image in enumerate(images):
        groups.setdefault(image, []).append(i)
    return [qs[k % len(qs)] for k, qs in enumerate(list(groups.values())[:keep])]


def evaluate(
    model: VQAModel,
    dataset: CodeShardSet,
    *,
    on_error: OnError | None = None,
    num_examples: int | None = None,
    wups: bool = True,
    control_seed: int = 0,
    batch_size: int = 128,
    progress: bool = False,
) -> dict[str, Any]:
    """Metrics of ``model`` on ``dataset`` with the baseline and the shuffled-codes control.

    Args:
        on_error: bad-input policy; default ``model.config.train.on_error``.
        num_examples: examples kept in the report; default ``model.config.num_examples``.
        wups: compute WUPS (loads WordNet once per process, several seconds).

    Returns:
        ``metrics`` / ``baseline.metrics`` / ``shuffled_codes.metrics`` (each ``vqa_metrics``' output:
        ``accuracy``, ``per_type``, ``WUPS@0.9``, ``WUPS@0.0``, ``out_of_vocab_fraction``, …),
        ``image_dependence`` and ``gain_over_baseline`` (accuracy differences), ``num_questions``,
        ``num_images``, ``examples``, ``skipped``.

    Raises:
        CheckpointMismatchError: ``dataset`` holds codes of another tokenizer than the model was trained on.
    """
    check_codes(model.tokenizer_info, dataset, model.source)
    config = model.config
    skips = SkipReport(on_error or config.train.on_error)
    data = collect_questions(dataset, skips, model.vocab.tokenizer, config.max_question_tokens)
    if len(data) == 0:
        raise ValueError(f"{dataset.root}: no usable questions in split {dataset.split!r}")
    model.eval()
    codes = data.codes[data.image]
    predictions = answer_questions(model, codes, data.questions, batch_size=batch_size, progress=progress)
    order = derangement(len(data.ids), control_seed)
    shuffled_image = order[data.image]
    shuffled = answer_questions(
        model,
        data.codes[shuffled_image],
        data.questions,
        batch_size=batch_size,
        progress=progress,
        desc="control",
    )
    guesses = model.baseline.predict(data.types)
    scores = _scores(model, predictions, data.answers, data.types, wups)
    baseline = _scores(model, guesses, data.answers, data.types, wups)
    control = _scores(model, shuffled, data.answers, data.types, wups)
    keep = config.num_examples if num_examples is None else num_examples
    examples = [
        {
            "id": data.ids[data.image[i]],
            "indices": codes[i].tolist(),
            "question": data.questions[i],
            "type": data.types[i],
            "answer": data.answers[i],
            "prediction": predictions[i],
            "shuffled_codes": shuffled[i],
            "baseline": guesses[i],
        }
        for i in _example_questions(data.image, keep)
    ]
    report = {
        "task": "vqa",
        "codes": str(dataset.root),
        "split": dataset.split,
        "checkpoint": str(model.source) if model.source is not None else None,
        "num_questions": len(data),
        "num_images": len(data.ids),
        "metrics": scores,
        "baseline": {
            "name": "majority training answer per question type",
            "per_type": model.baseline.per_type,
            "metrics": baseline,
        },
        "shuffled_codes": {
            "name": "each question asked about the codes of another image of the split",
            "seed": control_seed,
            "metrics": control,
        },
        "image_dependence": scores["accuracy"] - control["accuracy"],
        "gain_over_baseline": scores["accuracy"] - baseline["accuracy"],
        "examples": examples,
        "skipped": skips.to_dict(),
    }
    logger.info(
        "VQA on %s (%s, %d questions): accuracy %.3f | baseline %.3f | shuffled codes %.3f",
        dataset.root,
        dataset.split,
        len(data),
        scores["accuracy"],
        baseline["accuracy"],
        control["accuracy"],
    )
    return report


def save_vqa_examples(
    report: dict[str, Any], path: str | os.PathLike[str], *, tokenizer: nn.Module | None = None
) -> Path:
    """PNG of the report's examples: image decoded by ``tokenizer`` (else the code grid) with the question,
    the answer, the prediction and the shuffled-codes prediction beneath."""

    def lines(example: dict[str, Any]) -> list[str]:
        return [
            f"Q: {example['question']}",
            f"answer: {example['answer']}  model: {example['prediction']}",
            f"shuffled: {example['shuffled_codes']}  baseline: {example['baseline']}",
        ]

    return save_examples_png(report["examples"], path, lines, tokenizer=tokenizer)
