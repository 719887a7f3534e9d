"""PatchGAN discriminator (pix2pix ``NLayerDiscriminator``, BASELINES §2.5), with taming's parameter names."""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["PatchDiscriminator"]


class PatchDiscriminator(nn.Module):
    """Images B×C×H×W → patch logits B×1×h'×w' (30×30 for 256² with 3 layers).

    Layers: conv4×4 s2 + LReLU(0.2); ``n_layers − 1`` × [conv4×4 s2, BN, LReLU] with channels ×2 (≤ 8×ndf);
    conv4×4 s1, BN, LReLU; conv4×4 s1 → 1. Init: conv N(0, 0.02), BN weight N(1, 0.02), bias 0.
    """

    def __init__(self, in_channels: int = 3, ndf: int = 64, n_layers: int = 3) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers):
            prev, mult = mult, min(2**n, 8)
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, 2, 1, bias=False),
                nn.BatchNorm2d(ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
        prev, mult = mult, min(2**n_layers, 8)
        layers += [
            nn.Conv2d(ndf * prev, ndf * mult, 4, 1, 1, bias=False),
            nn.BatchNorm2d(ndf * mult),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * mult, 1, 4, 1, 1),
        ]
        self.main = nn.Sequential(*layers)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, 0.02)
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.normal_(module.weight, 1.0, 0.02)
                nn.init.zeros_(module.bias)

    def forward(self, images: Tensor) -> Tensor:
        return self.main(images)
