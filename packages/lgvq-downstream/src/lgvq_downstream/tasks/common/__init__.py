"""Pieces every task shares: the training loop and its config, the text vocabulary, row iteration with the
bad-input policy, the codebook loader, the shuffled-codes control, checkpoints and example figures."""

from lgvq_downstream.tasks.common.checkpoint import check_codes, read_checkpoint, write_checkpoint
from lgvq_downstream.tasks.common.codebook import load_codebook
from lgvq_downstream.tasks.common.config import TrainLoopConfig
from lgvq_downstream.tasks.common.controls import derangement
from lgvq_downstream.tasks.common.errors import CheckpointMismatchError, TaskDataError
from lgvq_downstream.tasks.common.loop import run_training
from lgvq_downstream.tasks.common.plot import save_examples_png
from lgvq_downstream.tasks.common.rows import RowRef, SkipReport, iter_rows, require_column
from lgvq_downstream.tasks.common.text import TextVocab, load_text_tokenizer

__all__ = [
    "CheckpointMismatchError",
    "RowRef",
    "SkipReport",
    "TaskDataError",
    "TextVocab",
    "TrainLoopConfig",
    "check_codes",
    "derangement",
    "iter_rows",
    "load_codebook",
    "load_text_tokenizer",
    "read_checkpoint",
    "require_column",
    "run_training",
    "save_examples_png",
    "write_checkpoint",
]
