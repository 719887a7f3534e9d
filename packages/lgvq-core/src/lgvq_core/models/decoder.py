"""Taming decoder (BASELINES §2.2): mirror of the encoder with ``num_res_blocks + 1`` ResBlocks per level."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.config import EncoderConfig
from lgvq_core.models.blocks import AttnBlock, ResnetBlock, Upsample, normalize
from lgvq_core.models.encoder import _Level, _Mid

__all__ = ["Decoder"]


class Decoder(nn.Module):
    """Latents B×z_channels×h×w → images B×in_channels×(h·f)×(w·f) (unbounded; targets are in [-1, 1])."""

    def __init__(self, config: EncoderConfig) -> None:
        super().__init__()
        self.config = config
        groups, dropout = config.norm_groups, config.dropout
        levels = len(config.ch_mult)
        block_in = config.ch * config.ch_mult[-1]
        resolution = config.resolution // config.downsample_factor
        self.conv_in = nn.Conv2d(config.z_channels, block_in, 3, padding=1)
        self.mid = _Mid(block_in, dropout=dropout, norm_groups=groups)
        stages: list[_Level] = []
        for level in reversed(range(levels)):
            stage = _Level()
            block_out = config.ch * config.ch_mult[level]
            for _ in range(config.num_res_blocks + 1):
                stage.block.append(ResnetBlock(block_in, block_out, dropout=dropout, norm_groups=groups))
                block_in = block_out
                if resolution in config.attn_resolutions:
                    stage.attn.append(AttnBlock(block_in, norm_groups=groups))
            if level != 0:
                stage.upsample = Upsample(block_in)
                resolution *= 2
            stages.insert(0, stage)
        self.up = nn.ModuleList(stages)  # up[i] is level i, as in taming
        self.norm_out = normalize(block_in, groups)
        self.conv_out = nn.Conv2d(block_in, config.in_channels, 3, padding=1)

    @property
    def last_layer(self) -> nn.Parameter:
        """``conv_out.weight``: the layer the adaptive GAN weight is computed on."""
        return self.conv_out.weight

    def forward(self, z: Tensor) -> Tensor:
        """z: B×z_channels×h×w → B×C×(h·f)×(w·f)."""
        if z.ndim != 4 or z.shape[1] != self.config.z_channels:
            raise ValueError(f"expected latents B×{self.config.z_channels}×h×w, got shape {tuple(z.shape)}")
        h = self.mid(self.conv_in(z))
        for stage in reversed(self.up):
            for i, block in enumerate(stage.block):
                h = block(h)
                if len(stage.attn) > 0:
                    h = stage.attn[i](h)
            if hasattr(stage, "upsample"):
                h = stage.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))
