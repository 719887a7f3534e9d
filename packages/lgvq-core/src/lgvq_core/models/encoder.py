"""Taming encoder (BASELINES §2.2): conv_in → levels of ResBlocks(+attention) with downsampling → mid →
conv_out."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.config import EncoderConfig
from lgvq_core.models.blocks import AttnBlock, Downsample, ResnetBlock, normalize

__all__ = ["Encoder"]


class _Level(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = nn.ModuleList()
        self.attn = nn.ModuleList()


class _Mid(nn.Module):
    def __init__(self, channels: int, *, dropout: float, norm_groups: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels, dropout=dropout, norm_groups=norm_groups)
        self.attn_1 = AttnBlock(channels, norm_groups=norm_groups)
        self.block_2 = ResnetBlock(channels, channels, dropout=dropout, norm_groups=norm_groups)

    def forward(self, h: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(h)))


class Encoder(nn.Module):
    """Images B×in_channels×H×W → latents B×z_channels×(H/f)×(W/f), f = ``config.downsample_factor``."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        groups, dropout = config.norm_groups, config.dropout
        self.conv_in = nn.Conv2d(config.in_channels, config.ch, 3, padding=1)
        in_mult = (1,) + tuple(config.ch_mult)
        resolution = config.resolution
        self.down = nn.ModuleList()
        block_out = config.ch
        for level, mult in enumerate(config.ch_mult):
            stage = _Level()
            block_in, block_out = config.ch * in_mult[level], config.ch * mult
            for _ in range(config.num_res_blocks):
                stage.block.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=groups))
                block_in = block_out
                if resolution in config.attn_resolutions:
                    stage.attn.append(AttnBlock(block_in, norm_groups=groups))
            if level != len(config.ch_mult) - 1:
                stage.downsample = Downsample(block_in)
                resolution //= 2
            self.down.append(stage)
        self.mid = _Mid(block_out, dropout=dropout, norm_groups=groups)
        self.norm_out = normalize(block_out, groups)
        self.conv_out = nn.Conv2d(block_out, config.z_channels, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        """x: B×C×H×W (H, W multiples of f) → B×z_channels×H/f×W/f."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(f"expected images B×{self.config.in_channels}×H×W, got shape {tuple(x.shape)}")
        self.config.latent_grid(x.shape[-2], x.shape[-1])
        h = self.conv_in(x)
        for stage in self.down:
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "downsample"):
                h = stage.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))
