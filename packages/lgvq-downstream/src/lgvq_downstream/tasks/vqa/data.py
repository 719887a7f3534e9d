"""VQA data from a code-shard set: every (image, question, answer) of the ``qa`` column
(:func:`collect_questions`) and the tokenized training examples (:class:`VQAExamples`).

Bad input, under the ``on_error`` policy of a :class:`SkipReport`: a set without a ``qa`` column is always an
error; a row whose ``qa`` is null or empty, an empty question or answer, or a question longer than
``max_question_tokens`` model tokens raises ``TaskDataError`` naming the shard file, row and field — or, with
``"skip"``, that pair (a row without pairs: that row) is dropped and counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from lgvq_data.schema import COL_QA
from lgvq_downstream.codes.reader import CodeShardSet
from lgvq_downstream.tasks.common.rows import RowRef, SkipReport, iter_rows, require_column
from lgvq_downstream.tasks.common.text import TextVocab, pad_sequences
from lgvq_downstream.tasks.vqa.answers import AnswerVocab
from lgvq_downstream.tasks.vqa.question_types import question_type

__all__ = ["VQABatchCollator", "VQAExamples", "VQAQuestions", "collect_questions"]


@dataclass
class VQAQuestions:
    """The usable questions of a split: ``codes`` N_img×h×w int64 with per-image ``ids``/``rows``, and per
    question its image index, text, answer, type and item index in the row's ``qa`` list."""

    codes: Tensor
    ids: list[str] = field(default_factory=list)
    rows: list[RowRef] = field(default_factory=list)
    image: list[int] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)
    types: list[str] = field(default_factory=list)
    items: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.questions)


def _problem(pair: Any, j: int, tokenizer: Any, max_tokens: int) -> tuple[str, str] | None:
    """(field, reason) of what is wrong with ``qa[j]``, or None."""
    if not isinstance(pair, dict):
        return f"{COL_QA}[{j}]", "expected a question/answer struct"
    question, answer = pair.get("question"), pair.get("answer")
    if not isinstance(question, str) or not question.strip():
        return f"{COL_QA}[{j}].question", "empty question"
    if not isinstance(answer, str) or not answer.strip():
        return f"{COL_QA}[{j}].answer", "empty answer"
    n = len(TextVocab.wordpieces_of(tokenizer, question)) + 2
    if n > max_tokens:
        return f"{COL_QA}[{j}].question", f"{n} tokens (BOS/EOS included) > max_question_tokens {max_tokens}"
    return None


def collect_questions(
    dataset: CodeShardSet, skips: SkipReport, tokenizer: Any, max_tokens: int
) -> VQAQuestions:
    """Codes and usable QA pairs of every row of ``dataset`` (see module docstring for bad input)."""
    require_column(dataset, COL_QA, "VQA")
    codes: list[Tensor] = []
    out = VQAQuestions(codes=torch.empty(0, *dataset.grid, dtype=torch.long))
    for ref, sample in iter_rows(dataset):
        pairs = sample.get(COL_QA)
        if not pairs:
            skips.handle(ref.error(COL_QA, "no question-answer pairs (null or empty list)"))
            continue
        kept = []
        for j, pair in enumerate(pairs):
            problem = _problem(pair, j, tokenizer, max_tokens)
            if problem is not None:
                skips.handle(ref.error(*problem))
                continue
            kept.append((j, pair["question"], pair["answer"]))
        if not kept:
            continue
        image = len(codes)
        codes.append(sample["indices"])
        out.ids.append(ref.row_id)
        out.rows.append(ref)
        for j, question, answer in kept:
            out.image.append(image)
            out.questions.append(question)
            out.answers.append(answer)
            out.types.append(question_type(question))
            out.items.append(j)
    if codes:
        out.codes = torch.stack(codes)
    return out


class VQAExamples(Dataset[dict[str, Any]]):
    """Tokenized questions with an in-vocabulary answer: item → ``{"codes": h×w, "question": [BOS … EOS],
    "answer": class id}``. ``out_of_vocab`` counts the questions left out (answer not among the classes)."""

    def __init__(self, data: VQAQuestions, vocab: TextVocab, answers: AnswerVocab) -> None:
        self.codes = data.codes
        self.examples: list[tuple[int, list[int], int]] = []
        self.out_of_vocab = 0
        for image, question, answer in zip(data.image, data.questions, data.answers, strict=True):
            label = answers.index(answer)
            if label is None:
                self.out_of_vocab += 1
                continue
            self.examples.append((image, vocab.encode(question), label))

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image, question, label = self.examples[index]
        return {"codes": self.codes[image], "question": question, "answer": label}


class VQABatchCollator:
    """Items → ``{"codes": B×h×w, "question": B×T, "mask": B×T bool, "answer": B}`` (right-padded)."""

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, items: list[dict[str, Any]]) -> dict[str, Tensor]:
        question, mask = pad_sequences([item["question"] for item in items], self.pad_id)
        return {
            "codes": torch.stack([item["codes"] for item in items]),
            "question": question,
            "mask": mask,
            "answer": torch.as_tensor([item["answer"] for item in items], dtype=torch.long),
        }
