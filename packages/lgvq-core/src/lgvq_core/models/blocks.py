"""Building blocks of the taming encoder/decoder (BASELINES §2.2), with taming's parameter names.

Parameter names match ``taming/modules/diffusionmodules/model.py`` so taming ``VQModel`` state dicts map 1:1.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["normalize", "ResnetBlock", "AttnBlock", "Downsample", "Upsample"]


def normalize(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with taming's eps (1e-6) and affine parameters."""
    return nn.GroupNorm(num_groups=groups, num_channels=channels, eps=1e-6, affine=True)


class ResnetBlock(nn.Module):
    """GN → swish → conv3×3 → GN → swish → dropout → conv3×3, plus a 1×1 shortcut when channels change."""

    def __init__(self, in_channels: int, out_channels: int, *, dropout: float, norm_groups: int) -> None:
        super().__init__()
        self.norm1 = normalize(in_channels, norm_groups)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = normalize(out_channels, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.nin_shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else None

    def forward(self, x: Tensor) -> Tensor:
        """x: B×C_in×H×W → B×C_out×H×W."""
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        shortcut = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return shortcut + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all h·w positions with a residual connection."""

    def __init__(self, channels: int, *, norm_groups: int) -> None:
        super().__init__()
        self.norm = normalize(channels, norm_groups)
        self.q = nn.Conv2d(channels, channels, 1)
        self.k = nn.Conv2d(channels, channels, 1)
        self.v = nn.Conv2d(channels, channels, 1)
        self.proj_out = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """x: B×C×H×W → B×C×H×W."""
        b, c, height, width = x.shape
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)  # B×HW×C
        k = self.k(h).flatten(2).transpose(1, 2)
        v = self.v(h).flatten(2).transpose(1, 2)
        out = F.scaled_dot_product_attention(q.unsqueeze(1), k.unsqueeze(1), v.unsqueeze(1)).squeeze(1)
        out = out.transpose(1, 2).reshape(b, c, height, width)
        return x + self.proj_out(out)


class Downsample(nn.Module):
    """Zero-pad right/bottom by one, then a stride-2 3×3 conv (halves each side)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)))


class Upsample(nn.Module):
    """Nearest-neighbour ×2, then a 3×3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))
