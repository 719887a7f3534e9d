"""LPIPS-VGG (Zhang et al. 2018, as used by taming, BASELINES §2.6) from local weight files — no download.

Needs two files from the user (neither ships in a registry package, OFFLINE-ASSETS Q3):
- the torchvision ImageNet VGG16 state dict (``vgg16-397923af.pth``; only ``features.*`` is used),
- the LPIPS linear heads (``vgg.pth``, md5 d507d7349b931f0638a25a48a722f98a; keys
``lin{0..4}.model.1.weight``).
Pass a directory holding both names, or a single ``.safetensors`` file with both key sets. The sha256 of every
file
read is kept in ``weights_sha256`` so results can record which weights they used. The heads' dropout is not
used
(eval mode always; taming's training effectively kept it active — a deliberate, documented difference).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.checksum import file_sha256

__all__ = ["LPIPSVGG", "load_lpips_vgg", "VGG_FILE", "HEADS_FILE"]

VGG_FILE = "vgg16-397923af.pth"
HEADS_FILE = "vgg.pth"
_CONV_LAYERS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)  # torchvision vgg16.features conv indices
_CHANNELS = (64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512)
_TAPS = (3, 8, 15, 22, 29)  # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
_TAP_CHANNELS = (64, 128, 256, 512, 512)


class LPIPSVGG(nn.Module):
    """LPIPS distance with a VGG16 trunk: ``forward(images, reconstruction)`` → scalar mean over the batch.

    Inputs B×3×H×W in [-1, 1]; scaled by LPIPS's shift/scale; per tap: channel-unit-normalise, squared
    difference,
    1×1 linear head, spatial mean; summed over the five taps.
    """

    name = "LPIPS-VGG"

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch, conv_i = 3, 0
        for idx in range(30):
            if idx in _CONV_LAYERS:
                layers.append(nn.Conv2d(in_ch, _CHANNELS[conv_i], 3, padding=1))
                in_ch = _CHANNELS[conv_i]
                conv_i += 1
            elif idx in (4, 9, 16, 23):
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in _TAP_CHANNELS)
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.weights_sha256: dict[str, str] = {}
        for p in self.parameters():
            p.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True) -> LPIPSVGG:  # noqa: ARG002 - always frozen
        return super().train(False)

    def _taps(self, x: Tensor) -> list[Tensor]:
        out = []
        h = (x - self.shift) / self.scale
        for idx, layer in enumerate(self.features):
            h = layer(h)
            if idx in _TAPS:
                out.append(h)
        return out

    def forward(self, images: Tensor, reconstruction: Tensor) -> Tensor:
        total = reconstruction.new_zeros((), dtype=torch.float32)
        for lin, fr, ff in zip(
            self.lins, self._taps(images.to(reconstruction.dtype)), self._taps(reconstruction), strict=True
        ):
            fr = F.normalize(fr.float(), dim=1, eps=1e-10)
            ff = F.normalize(ff.float(), dim=1, eps=1e-10)
            total = total + lin((fr.detach() - ff) ** 2).mean(dim=(1, 2, 3)).mean()
        return total


def _read(path: Path) -> dict[str, Tensor]:
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)  # tensors only; no arbitrary objects


def load_lpips_vgg(path: str | os.PathLike[str]) -> LPIPSVGG:
    """Build ``LPIPSVGG`` from a directory (``vgg16-397923af.pth`` + ``vgg.pth``) or one ``.safetensors``
    file."""
    path = Path(path)
    files = [path] if path.is_file() else [path / VGG_FILE, path / HEADS_FILE]
    for f in files:
        if not f.is_file():
            raise FileNotFoundError(f"{f}: LPIPS-VGG weights not found (see lgvq_core.losses.lpips_vgg)")
    state: dict[str, Tensor] = {}
    for f in files:
        state.update(_read(f))
    model = LPIPSVGG()
    wanted: dict[str, Tensor] = {}
    for idx in _CONV_LAYERS:
        for p in ("weight", "bias"):
            key = f"features.{idx}.{p}"
            if key not in state:
                raise ValueError(f"{files[0]}: missing VGG16 key {key!r}")
            wanted[key] = state[key]
    for i in range(5):
        key = f"lin{i}.model.1.weight"
        if key not in state:
            raise ValueError(f"{files[-1]}: missing LPIPS head key {key!r}")
        wanted[f"lins.{i}.weight"] = state[key]
    expected = {k: v for k, v in model.state_dict().items() if k not in ("shift", "scale")}
    mismatched = [k for k in expected if tuple(expected[k].shape) != tuple(wanted[k].shape)]
    if mismatched:
        raise ValueError(f"{path}: LPIPS-VGG shape mismatch for {', '.join(mismatched)}")
    model.load_state_dict(wanted, strict=False)
    model.weights_sha256 = {f.name: file_sha256(f) for f in files}
    return model
