"""Question types from the question text (the data carry none): COCO-QA's four (``color``, ``count``,
``object``, ``location``) plus ``size``, ``shape`` and ``yes/no``, which the synthetic scenes ask.

Rules, first match wins (lower-cased question):

- ``how many`` → ``count``;
- ``colo(u)r`` → ``color``;
- ``what size`` / ``how big`` → ``size``;
- ``where`` or ``what is`` + a spatial relation (left of, right of, above, below, under, over, beneath,
  next to, behind, in front of, on top of) → ``location``;
- ``what shape`` / ``what item`` → ``shape``;
- starts with is/are/does/do/can/was/were/has/have → ``yes/no``;
- otherwise ``object``.
"""

from __future__ import annotations

import re

__all__ = ["QUESTION_TYPES", "question_type"]

QUESTION_TYPES = ("count", "color", "size", "location", "shape", "yes/no", "object")
_RELATION = re.compile(
    r"\b(left of|right of|above|below|under|over|beneath|next to|behind|in front of|on top of)\b"
)
_YES_NO = ("is", "are", "does", "do", "can", "was", "were", "has", "have")


def question_type(question: str) -> str:
    """One of :data:`QUESTION_TYPES` (rules in the module docstring)."""
    q = " ".join(question.lower().split())
    words = q.split()
    if q.startswith("how many"):
        return "count"
    if re.search(r"\bcolou?rs?\b", q):
        return "color"
    if q.startswith("what size") or q.startswith("how big"):
        return "size"
    if q.startswith("where") or (q.startswith("what is") and _RELATION.search(q)):
        return "location"
    if q.startswith("what shape") or q.startswith("what item"):
        return "shape"
    if words and words[0] in _YES_NO:
        return "yes/no"
    return "object"
