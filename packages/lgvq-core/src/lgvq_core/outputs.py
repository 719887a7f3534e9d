"""Output dataclasses shared by every quantizer and tokenizer.

These are the contract between the quantizers, the tokenizers, the language-guided wrapper and the training
step:
every base (VQ-VAE, VQ-GAN, CVQ, VQCT) returns exactly these types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class QuantizerOutput:
    """What a quantizer returns for a latent grid ``z`` of shape B×D×h×w.

    Attributes:
        quantized: B×D×h×w, the selected codes with a straight-through gradient to ``z``
            (``z + (z_q - z).detach()``), fed to the decoder.
        indices: B×h×w int64 code indices in ``[0, codebook_size)``.
        losses: named scalar loss terms owned by the quantizer (e.g. ``codebook``, ``commitment``,
            ``contrastive``); already multiplied by their weights, so the objective sums them.
        usage: K float32 counts of how often each code was selected in this batch (all ranks under
            ``torch.distributed`` when the quantizer all-reduces; otherwise local).
        codes: B×D×h×w selected code vectors *without* the straight-through path (``z_q``), for
            modules that need the code vectors themselves (gradient reaches the codebook only if used).
    """

    quantized: Tensor
    indices: Tensor
    losses: dict[str, Tensor] = field(default_factory=dict)
    usage: Tensor | None = None
    codes: Tensor | None = None

    @property
    def perplexity(self) -> Tensor:
        """exp(entropy) of the batch code distribution; K means uniform use, 1 means collapse."""
        if self.usage is None:
            raise ValueError("this quantizer output carries no usage counts")
        p = self.usage.float() / self.usage.sum().clamp_min(1.0)
        return torch.exp(-(p * torch.log(p.clamp_min(1e-10))).sum())


@dataclass
class TokenizerOutput:
    """What a tokenizer's ``forward(images)`` returns.

    Attributes:
        reconstruction: B×C×H×W in the input's range ([-1, 1]).
        quant: the quantizer's output for the latent grid (h = H/f, w = W/f).
        latent: B×D×h×w pre-quantization encoder output ``z``.
    """

    reconstruction: Tensor
    quant: QuantizerOutput
    latent: Tensor


@dataclass
class StepLosses:
    """What ``training_losses`` returns for one batch.

    Attributes:
        total: the scalar to back-propagate.
        breakdown: named terms (scalars) for logging; keys are stable across steps.
        output: the forward pass the losses were computed from, reused by the discriminator step.
    """

    total: Tensor
    breakdown: dict[str, Tensor]
    output: TokenizerOutput
