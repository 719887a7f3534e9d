"""Training step, loop and checkpoints (pure PyTorch; works under any torch.distributed launcher)."""

from lgvq_core.training.checkpoint import TrainState, load_checkpoint, save_checkpoint
from lgvq_core.training.loop import Callback, FitResult, build_optimizers, fit
from lgvq_core.training.step import StepResult, train_step

__all__ = [
    "Callback",
    "FitResult",
    "StepResult",
    "TrainState",
    "build_optimizers",
    "fit",
    "load_checkpoint",
    "save_checkpoint",
    "train_step",
]
