"""The tokenizer objective: weighted sum of the terms and a named breakdown (BASELINES §2.4).

Generator:  rec_w·rec + perc_w·perceptual + q_w·Σ quantizer terms + λ·disc_weight·factor(step)·(−mean D(x̂)),
with λ the adaptive weight on the decoder's last layer (1 when disabled) and factor 0 before ``disc_start``.
Discriminator: factor(step)·hinge(D(x), D(sg x̂)).
Breakdown keys are stable from step 0 (GAN keys are present, as zeros, before ``disc_start`` when a GAN is
used).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lgvq_core.config import LossConfig
from lgvq_core.losses.adversarial import adaptive_weight, disc_factor, discriminator_loss, generator_loss
from lgvq_core.losses.reconstruction import reconstruction_loss
from lgvq_core.outputs import TokenizerOutput

__all__ = ["generator_objective", "discriminator_objective"]


def generator_objective(
    images: Tensor,
    output: TokenizerOutput,
    step: int,
    *,
    config: LossConfig,
    last_layer: Tensor,
    perceptual: nn.Module | None = None,
    discriminator: nn.Module | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Total generator loss and its breakdown (detached scalars, unweighted terms plus ``disc_weight``)."""
    rec = output.reconstruction
    rec_loss = reconstruction_loss(images, rec, config.reconstruction)
    nll = config.reconstruction_weight * rec_loss
    breakdown: dict[str, Tensor] = {"reconstruction": rec_loss.detach()}
    if config.uses_perceptual:
        if perceptual is None:
            raise ValueError("loss.perceptual_weight > 0 but no perceptual network was given")
        p_loss = perceptual(images, rec)
        nll = nll + config.perceptual_weight * p_loss
        breakdown["perceptual"] = p_loss.detach()
    total = nll
    for name, term in output.quant.losses.items():
        total = total + config.quantizer_weight * term
        breakdown[name] = term.detach()
    if config.uses_gan and discriminator is not None:
        factor = disc_factor(step, config.disc_start)
        g_loss = torch.zeros((), device=rec.device)
        d_weight = torch.zeros((), device=rec.device)
        if factor > 0:
            g_loss = generator_loss(discriminator(rec))
            if config.adaptive_weight and torch.is_grad_enabled() and last_layer.requires_grad:
                lam = adaptive_weight(
                    nll, g_loss, last_layer, delta=config.adaptive_delta, max_weight=config.adaptive_max
                )
            else:
                lam = torch.ones((), device=rec.device)
            d_weight = lam * config.disc_weight
            total = total + d_weight * factor * g_loss
        breakdown["generator_adv"] = g_loss.detach()
        breakdown["disc_weight"] = d_weight.detach()
    breakdown["total"] = total.detach()
    return total, breakdown


def discriminator_objective(
    images: Tensor, reconstruction: Tensor, step: int, *, config: LossConfig, discriminator: nn.Module
) -> tuple[Tensor, dict[str, Tensor]]:
    """Discriminator loss on real images and detached reconstructions, with its breakdown."""
    factor = disc_factor(step, config.disc_start)
    logits_real = discriminator(images.to(reconstruction.dtype).detach())
    logits_fake = discriminator(reconstruction.detach())
    d_loss = factor * discriminator_loss(logits_real, logits_fake, config.disc_loss)
    breakdown = {
        "disc_loss": d_loss.detach(),
        "logits_real": logits_real.detach().float().mean(),
        "logits_fake": logits_fake.detach().float().mean(),
    }
    return d_loss, breakdown
