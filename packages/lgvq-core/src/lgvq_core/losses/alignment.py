"""The three language-guided alignment losses of LG-VQ (METHOD-LGVQ §4.2).

* :func:`global_alignment_loss` — L_gsa, InfoNCE between the visual [CLS] token and the sentence embedding.
* :func:`masked_token_loss` — L_mtp, label-smoothed cross-entropy on the masked text positions.
* :func:`relation_alignment_loss` — L_ras, MSE between word–word and matched code–code cosine similarities.

All three are plain functions of tensors; the modules in :mod:`lgvq_core.guidance` produce their inputs.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor


def global_alignment_loss(
    visual: Tensor,
    text: Tensor,
    logit_scale: Tensor | None = None,
    symmetric: bool = False,
    eps: float = 1e-6,
) -> Tensor:
    """L_gsa: InfoNCE between visual global tokens and sentence embeddings of the same batch.

    Args:
        visual: B×E visual [CLS] outputs (gradient flows).
        text: B×E sentence embeddings (detached: the text encoder is frozen).
        logit_scale: ``None`` = the official form: temperature 1, image→text only,
            ``mean_i[-v_i·u_i + log(Σ_j exp(v_i·u_j) + eps)]``. Otherwise a scalar multiplying the cosine
            similarities (1/τ, learnable) and a standard cross-entropy.
        symmetric: with ``logit_scale``: average the image→text and text→image directions.
        eps: the official ``+1e-6`` inside the log (only used when ``logit_scale`` is ``None``).

    Returns:
        scalar loss (batch mean).
    """
    if visual.shape != text.shape or visual.dim() != 2:
        raise ValueError(
            f"visual and text must both be B×E, got {tuple(visual.shape)} and {tuple(text.shape)}"
        )
    v = F.normalize(visual, dim=-1)
    u = F.normalize(text.detach(), dim=-1)
    similarity = v @ u.t()
    if logit_scale is None:
        if symmetric:
            raise ValueError(
                "the official temperature-1 form is one-way; pass logit_scale for a symmetric loss"
            )
        positive = similarity.diagonal()
        return (-positive + torch.log(similarity.exp().sum(dim=1) + eps)).mean()
    logits = similarity * logit_scale
    targets = torch.arange(logits.shape[0], device=logits.device)
    image_to_text = F.cross_entropy(logits, targets)
    if not symmetric:
        return image_to_text
    return 0.5 * (image_to_text + F.cross_entropy(logits.t(), targets))


def masked_token_loss(
    logits: Tensor,
    targets: Tensor,
    loss_mask: Tensor,
    label_smoothing: float = 0.1,
    eps: float = 5e-6,
) -> Tensor:
    """L_mtp: label-smoothed cross-entropy averaged over the masked positions.

    ``ℓ = (1-ε)·(-log p[target]) + ε·mean_v(-log p[v])``, then ``Σ ℓ·m / (Σ m + eps)`` (official form).

    Args:
        logits: ...×V unnormalised scores (any leading shape, e.g. B×L×V or M×V).
        targets: ... int64 token ids, same leading shape.
        loss_mask: ... bool/float, 1 where the position is masked and not padding.
        label_smoothing: ε.
        eps: added to the mask count (a batch without masked tokens gives 0, not NaN).
    """
    if logits.shape[:-1] != targets.shape or targets.shape != loss_mask.shape:
        raise ValueError(
            f"shape mismatch: logits {tuple(logits.shape)}, targets {tuple(targets.shape)}, "
            f"loss_mask {tuple(loss_mask.shape)}"
        )
    log_probs = F.log_softmax(logits.float(), dim=-1)
    nll = -log_probs.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    smooth = -log_probs.mean(dim=-1)
    per_token = (1.0 - label_smoothing) * nll + label_smoothing * smooth
    weights = loss_mask.to(per_token.dtype)
    return (per_token * weights).sum() / (weights.sum() + eps)


def match_words_to_positions(word_states: Tensor, visual_tokens: Tensor) -> tuple[Tensor, Tensor]:
    """For each word, the visual position with the highest cosine similarity.

    Args:
        word_states: B×L×E text token states.
        visual_tokens: B×N×E visual-token outputs (without [CLS]).

    Returns:
        (index B×L int64 in [0, N), similarity B×L of the best match) — no gradient (argmax).
    """
    w = F.normalize(word_states.detach(), dim=-1)
    v = F.normalize(visual_tokens.detach(), dim=-1)
    best, index = torch.einsum("ble,bne->bln", w, v).max(dim=-1)
    return index, best


def relation_alignment_loss(
    word_states: Tensor,
    visual_tokens: Tensor,
    code_features: Tensor,
    valid: Tensor,
    reduction: Literal["all", "valid"] = "all",
) -> Tensor:
    """L_ras: MSE between word–word cosines and the cosines of the codes matched to those words.

    Each word is matched to ``argmax_k cos(word, visual_token_k)``; the code feature at that position is
    taken, normalised (times the sign of the match similarity, as the official code's ``normalize(C·s*)``),
    padding rows are zeroed and ``mean((C Cᵀ - sg(W Wᵀ))²)`` is returned.

    Args:
        word_states: B×L×E frozen text token states (target side, detached).
        visual_tokens: B×N×E visual-token outputs used only for the matching (no gradient).
        code_features: B×N×E projected code vectors g(q) (gradient flows).
        valid: B×L bool, True for real (non-padding) text positions.
        reduction: ``"all"`` = mean over all B·L·L entries (official: padding pairs count in the denominator);
            ``"valid"`` = mean over pairs of valid positions only.
    """
    if word_states.shape[:2] != valid.shape or code_features.shape[:2] != visual_tokens.shape[:2]:
        raise ValueError(
            f"shape mismatch: words {tuple(word_states.shape)}, valid {tuple(valid.shape)}, "
            f"visual {tuple(visual_tokens.shape)}, codes {tuple(code_features.shape)}"
        )
    index, best = match_words_to_positions(word_states, visual_tokens)
    pad = valid.to(code_features.dtype).unsqueeze(-1)
    words = F.normalize(word_states.detach().to(code_features.dtype), dim=-1) * pad
    gathered = code_features.gather(1, index.unsqueeze(-1).expand(-1, -1, code_features.shape[-1]))
    codes = F.normalize(gathered, dim=-1) * torch.sign(best).unsqueeze(-1).to(code_features.dtype) * pad
    target = words @ words.transpose(1, 2)
    predicted = codes @ codes.transpose(1, 2)
    squared = (predicted - target) ** 2
    if reduction == "all":
        return squared.mean()
    if reduction == "valid":
        pair = pad * pad.transpose(1, 2)
        return (squared * pair).sum() / pair.sum().clamp_min(1.0)
    raise ValueError(f"reduction must be 'all' or 'valid', got {reduction!r}")
