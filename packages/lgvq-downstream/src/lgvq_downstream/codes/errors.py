"""Errors raised while writing or reading code shards; each message names the file (and row/field or the two
disagreeing values)."""

from __future__ import annotations


class CodeShardError(RuntimeError):
    """A code-shard directory, manifest or tokenizer folder that cannot be used."""


class TokenizerMismatchError(CodeShardError):
    """A tokenizer that does not match an existing code-shard set (grid, codebook size, config or weights)."""


class BadImageError(CodeShardError):
    """A source row whose image cannot be decoded or preprocessed.

    Attributes:
        file: the source shard file; row: row number inside it; row_id: its ``id``; field: the column.
    """

    def __init__(self, file: str, row: int, row_id: str, field: str, reason: str) -> None:
        super().__init__(f"{file}, row {row} (id {row_id!r}), field {field!r}: {reason}")
        self.file = file
        self.row = row
        self.row_id = row_id
        self.field = field
        self.reason = reason
