"""Errors of the downstream tasks; each message names where the problem is (file, row, field) or both values
that disagree."""

from __future__ import annotations

from lgvq_downstream.codes.errors import CodeShardError, TokenizerMismatchError

__all__ = ["CheckpointMismatchError", "TaskDataError"]


class TaskDataError(CodeShardError):
    """A code-shard row whose annotation a task cannot use (missing, empty or over-long text).

    Attributes:
        file: the code-shard file; row: row number inside it; row_id: its ``id``; field: the column (with an
        item index, e.g. ``captions[2]``); reason: what is wrong.
    """

    def __init__(self, file: str, row: int, row_id: str, field: str, reason: str) -> None:
        super().__init__(f"{file}, row {row} (id {row_id!r}), field {field!r}: {reason}")
        self.file = file
        self.row = row
        self.row_id = row_id
        self.field = field
        self.reason = reason


class CheckpointMismatchError(TokenizerMismatchError):
    """A task checkpoint evaluated on codes of another tokenizer (the message names both)."""
