"""GAN terms of the VQ-GAN objective (BASELINES §2.4): hinge / vanilla losses, adaptive weight, start step."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "hinge_d_loss",
    "vanilla_d_loss",
    "discriminator_loss",
    "generator_loss",
    "adaptive_weight",
    "disc_factor",
]


def hinge_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½[mean(relu(1 − D(x))) + mean(relu(1 + D(x̂)))]."""
    return 0.5 * (F.relu(1.0 - logits_real).mean() + F.relu(1.0 + logits_fake).mean())


def vanilla_d_loss(logits_real: Tensor, logits_fake: Tensor) -> Tensor:
    """½[mean(softplus(−D(x))) + mean(softplus(D(x̂)))]."""
    return 0.5 * (F.softplus(-logits_real).mean() + F.softplus(logits_fake).mean())


def discriminator_loss(logits_real: Tensor, logits_fake: Tensor, kind: str = "hinge") -> Tensor:
    if kind == "hinge":
        return hinge_d_loss(logits_real, logits_fake)
    if kind == "vanilla":
        return vanilla_d_loss(logits_real, logits_fake)
    raise ValueError(f"unknown discriminator loss {kind!r}; expected 'hinge' or 'vanilla'")


def generator_loss(logits_fake: Tensor) -> Tensor:
    """−mean(D(x̂)) (taming uses this for both hinge and vanilla discriminators)."""
    return -logits_fake.mean()


def adaptive_weight(
    nll_loss: Tensor, g_loss: Tensor, last_layer: Tensor, *, delta: float = 1e-4, max_weight: float = 1e4
) -> Tensor:
    """λ = ‖∇_L nll‖ / (‖∇_L g‖ + δ), clamped to [0, max_weight] and detached (taming: δ = 1e-4).

    Both losses must depend on ``last_layer`` (the decoder's ``conv_out.weight``); graphs are retained.
    """
    nll_grad = torch.autograd.grad(nll_loss, last_layer, retain_graph=True)[0]
    g_grad = torch.autograd.grad(g_loss, last_layer, retain_graph=True)[0]
    weight = nll_grad.float().norm() / (g_grad.float().norm() + delta)
    return weight.clamp(0.0, max_weight).detach()


def disc_factor(step: int, start: int) -> float:
    """1 from ``start`` on, 0 before (taming's ``adopt_weight``)."""
    return 1.0 if step >= start else 0.0
