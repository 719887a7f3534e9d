"""Full-state training checkpoints: weights as safetensors, small state as JSON, written atomically.

Layout of a checkpoint directory::

    model.safetensors           the trained model's state dict (quantizer EMA buffers and init flags included)
    discriminator.safetensors   (when a discriminator is trained)
    optimizers.safetensors      tensor entries of every optimizer's state ("<name>/<param index>/<key>")
    rng.safetensors             torch CPU (and CUDA) generator states
    trainer.json                step, counters, optimizer param groups and scalar state, GradScaler state,
                                python/numpy RNG states, the train config and a config hash

The directory is written under a temporary name next to the target and renamed into place, so a crash never
leaves
a partial checkpoint; an existing checkpoint is replaced only after the new one is complete.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lgvq_core.models.tokenizer import _replace_dir, check_state_dict

__all__ = ["TrainState", "save_checkpoint", "load_checkpoint", "config_hash"]

TRAINER_FILE = "trainer.json"
FORMAT_NAME = "lgvq-train-checkpoint"


@dataclass
class TrainState:
    """Counters of a training run. ``step`` counts optimizer steps taken (skipped steps excluded)."""

    step: int = 0
    epoch: int = 0
    batches_seen: int = 0
    skipped_nonfinite: int = 0
    consecutive_nonfinite: int = 0


def config_hash(data: Any) -> str:
    """sha256 of the canonical JSON of ``data`` (first 16 hex digits)."""
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def _optimizer_split(
    name: str, optimizer: torch.optim.Optimizer
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in sd["state"].items():
        for key, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{name}/{pid}/{key}"] = value.detach().contiguous().cpu()
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def _optimizer_join(name: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    prefix = f"{name}/"
    for key, value in tensors.items():
        if key.startswith(prefix):
            pid, field = key[len(prefix) :].split("/", 1)
            state.setdefault(int(pid), {})[field] = value
    for pid, entry in meta["scalars"].items():
        state.setdefault(int(pid), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def save_checkpoint(
    directory: str | os.PathLike[str],
    *,
    model: nn.Module,
    state: TrainState,
    optimizers: dict[str, torch.optim.Optimizer],
    discriminator: nn.Module | None = None,
    scaler: torch.amp.GradScaler | None = None,
    train_config: dict[str, Any] | None = None,
    model_config: dict[str, Any] | None = None,
) -> Path:
    """Write a full-state checkpoint to ``directory`` atomically (see module docstring)."""
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
            str(tmp / "model.safetensors"),
        )
        if discriminator is not None:
            save_file(
                {k: v.detach().contiguous().cpu() for k, v in discriminator.state_dict().items()},
                str(tmp / "discriminator.safetensors"),
            )
        opt_tensors: dict[str, torch.Tensor] = {}
        opt_meta: dict[str, Any] = {}
        for name, opt in optimizers.items():
            if "/" in name:
                raise ValueError(f"optimizer name {name!r} may not contain '/'")
            tensors, meta = _optimizer_split(name, opt)
            opt_tensors.update(tensors)
            opt_meta[name] = meta
        save_file(opt_tensors, str(tmp / "optimizers.safetensors"))
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"torch_cuda_{i}"] = s
        save_file(rng, str(tmp / "rng.safetensors"))
        np_state = np.random.get_state()
        py_state = random.getstate()
        meta = {
            "format": FORMAT_NAME,
            "state": asdict(state),
            "optimizers": opt_meta,
            "scaler": scaler.state_dict() if scaler is not None and scaler.is_enabled() else None,
            "python_rng": [py_state[0], list(py_state[1]), py_state[2]],
            "numpy_rng": [
                np_state[0],
                np_state[1].tolist(),
                int(np_state[2]),
                int(np_state[3]),
                float(np_state[4]),
            ],
            "train_config": train_config,
            "model_config": model_config,
            "config_hash": config_hash({"train": train_config, "model": model_config}),
            "has_discriminator": discriminator is not None,
        }
        (tmp / TRAINER_FILE).write_text(json.dumps(meta, indent=1))
        _replace_dir(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def load_checkpoint(
    directory: str | os.PathLike[str],
    *,
    model: nn.Module,
    optimizers: dict[str, torch.optim.Optimizer] | None = None,
    discriminator: nn.Module | None = None,
    scaler: torch.amp.GradScaler | None = None,
    restore_rng: bool = True,
) -> TrainState:
    """Restore everything ``save_checkpoint`` wrote into the given objects; returns the ``TrainState``.

    Raises ``ValueError`` (naming the file) on any key/shape mismatch, a missing file or a corrupt JSON.
    """
    directory = Path(directory)
    trainer_path = directory / TRAINER_FILE
    if not trainer_path.is_file():
        raise FileNotFoundError(f"{trainer_path}: not found (not a checkpoint directory)")
    try:
        meta = json.loads(trainer_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{trainer_path}: invalid JSON ({err})") from err
    if meta.get("format") != FORMAT_NAME:
        raise ValueError(f"{trainer_path}: not an {FORMAT_NAME} file (field 'format')")
    device = next(model.parameters()).device
    weights = load_file(str(directory / "model.safetensors"), device=str(device))
    check_state_dict(model.state_dict(), weights, source=str(directory / "model.safetensors"))
    model.load_state_dict(weights, strict=True)
    if discriminator is not None:
        if not meta.get("has_discriminator"):
            raise ValueError(f"{trainer_path}: checkpoint has no discriminator, but one was passed")
        path = directory / "discriminator.safetensors"
        d_weights = load_file(str(path), device=str(next(discriminator.parameters()).device))
        check_state_dict(discriminator.state_dict(), d_weights, source=str(path))
        discriminator.load_state_dict(d_weights, strict=True)
    if optimizers:
        opt_tensors = load_file(str(directory / "optimizers.safetensors"))
        for name, opt in optimizers.items():
            if name not in meta["optimizers"]:
                raise ValueError(f"{trainer_path}: no state for optimizer {name!r}")
            opt.load_state_dict(_optimizer_join(name, opt_tensors, meta["optimizers"][name]))
    if scaler is not None and meta.get("scaler") is not None:
        scaler.load_state_dict(meta["scaler"])
    if restore_rng:
        rng = load_file(str(directory / "rng.safetensors"))
        torch.set_rng_state(rng["torch_cpu"])
        if torch.cuda.is_available():
            states = [rng[k] for k in sorted(k for k in rng if k.startswith("torch_cuda_"))]
            if len(states) == torch.cuda.device_count():
                torch.cuda.set_rng_state_all(states)
        py = meta["python_rng"]
        random.setstate((py[0], tuple(py[1]), py[2]))
        npr = meta["numpy_rng"]
        np.random.set_state((npr[0], np.array(npr[1], dtype=np.uint32), npr[2], npr[3], npr[4]))
    return TrainState(**meta["state"])
