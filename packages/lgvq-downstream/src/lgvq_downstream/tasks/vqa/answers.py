"""``AnswerVocab``: the classifier's classes — normalised training answers, most frequent first — and the
majority-answer-per-question-type baseline fitted on the same training questions."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from lgvq_downstream.metrics.vqa import normalize_answer

__all__ = ["AnswerVocab", "MajorityBaseline"]


class AnswerVocab:
    """Answers ↔ class ids (answers are stored normalised; ids by decreasing training frequency, ties in
    first-seen order)."""

    def __init__(self, answers: Sequence[str]) -> None:
        if not answers:
            raise ValueError("empty answer vocabulary")
        self.answers = list(answers)
        self._index = {a: i for i, a in enumerate(self.answers)}
        if len(self._index) != len(self.answers):
            raise ValueError("duplicate answers in the vocabulary")

    @classmethod
    def build(cls, answers: Iterable[str], max_answers: int = 0) -> AnswerVocab:
        """The most frequent ``max_answers`` (0 = all) normalised answers."""
        counts = Counter(normalize_answer(a) for a in answers)
        ranked = [a for a, _ in counts.most_common(max_answers or None)]
        return cls(ranked)

    def __len__(self) -> int:
        return len(self.answers)

    def index(self, answer: str) -> int | None:
        """Class id of ``answer`` (normalised first), None when out of vocabulary."""
        return self._index.get(normalize_answer(answer))

    def to_list(self) -> list[str]:
        return list(self.answers)


class MajorityBaseline:
    """The most frequent training answer of each question type (ties: first seen), and the overall most
    frequent answer for a type never seen in training."""

    def __init__(self, per_type: dict[str, str], overall: str) -> None:
        self.per_type = dict(per_type)
        self.overall = overall

    @classmethod
    def fit(cls, types: Sequence[str], answers: Sequence[str]) -> MajorityBaseline:
        if not answers:
            raise ValueError("no training answers to fit the baseline on")
        groups: dict[str, Counter[str]] = defaultdict(Counter)
        for kind, answer in zip(types, answers, strict=True):
            groups[kind][normalize_answer(answer)] += 1
        overall = Counter(normalize_answer(a) for a in answers).most_common(1)[0][0]
        return cls({k: c.most_common(1)[0][0] for k, c in sorted(groups.items())}, overall)

    def predict(self, types: Iterable[str]) -> list[str]:
        return [self.per_type.get(kind, self.overall) for kind in types]

    def to_dict(self) -> dict[str, Any]:
        return {"per_type": self.per_type, "overall": self.overall}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MajorityBaseline:
        return cls(dict(data["per_type"]), str(data["overall"]))
