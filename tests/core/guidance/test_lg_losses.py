"""Each alignment loss against a direct, slow reference formula (element-wise loops) on small random
tensors."""

from __future__ import annotations

import math

import pytest
import torch

from lgvq_core.losses.alignment import (
    global_alignment_loss,
    masked_token_loss,
    match_words_to_positions,
    relation_alignment_loss,
)

TOL = 1e-5


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    na = math.sqrt(sum(float(x) ** 2 for x in a))
    nb = math.sqrt(sum(float(x) ** 2 for x in b))
    if na == 0 or nb == 0:
        return 0.0
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=False)) / (na * nb)


def test_lgsa_paper_form_matches_reference() -> None:
    torch.manual_seed(0)
    v, t = torch.randn(5, 7, dtype=torch.float64), torch.randn(5, 7, dtype=torch.float64)
    expected = 0.0
    for i in range(5):
        denominator = sum(math.exp(_cos(v[i], t[j])) for j in range(5)) + 1e-6
        expected += -_cos(v[i], t[i]) + math.log(denominator)
    expected /= 5
    assert float(global_alignment_loss(v, t)) == pytest.approx(expected, abs=TOL)


@pytest.mark.parametrize("symmetric", [False, True])
def test_lgsa_with_temperature_matches_reference(symmetric: bool) -> None:
    torch.manual_seed(1)
    v, t = torch.randn(4, 6, dtype=torch.float64), torch.randn(4, 6, dtype=torch.float64)
    scale = 1 / 0.07
    sim = [[_cos(v[i], t[j]) * scale for j in range(4)] for i in range(4)]
    i2t = sum(-sim[i][i] + math.log(sum(math.exp(sim[i][j]) for j in range(4))) for i in range(4)) / 4
    t2i = sum(-sim[j][j] + math.log(sum(math.exp(sim[i][j]) for i in range(4))) for j in range(4)) / 4
    expected = 0.5 * (i2t + t2i) if symmetric else i2t
    got = global_alignment_loss(
        v, t, logit_scale=torch.tensor(scale, dtype=torch.float64), symmetric=symmetric
    )
    assert float(got) == pytest.approx(expected, abs=TOL)


def test_lgsa_text_side_gets_no_gradient() -> None:
    v = torch.randn(3, 4, requires_grad=True)
    t = torch.randn(3, 4, requires_grad=True)
    global_alignment_loss(v, t).backward()
    assert v.grad is not None and v.grad.abs().sum() > 0
    assert t.grad is None


def test_lmtp_matches_reference() -> None:
    torch.manual_seed(2)
    logits = torch.randn(2, 5, 11, dtype=torch.float64)
    targets = torch.randint(0, 11, (2, 5))
    mask = torch.tensor([[0, 1, 0, 1, 1], [1, 0, 0, 0, 0]], dtype=torch.bool)
    eps = 0.1
    total, count = 0.0, 0
    for b in range(2):
        for i in range(5):
            if not mask[b, i]:
                continue
            row = [float(x) for x in logits[b, i]]
            log_z = math.log(sum(math.exp(x) for x in row))
            log_p = [x - log_z for x in row]
            nll = -log_p[int(targets[b, i])]
            smooth = -sum(log_p) / len(log_p)
            total += (1 - eps) * nll + eps * smooth
            count += 1
    expected = total / (count + 5e-6)
    assert float(masked_token_loss(logits, targets, mask, label_smoothing=eps)) == pytest.approx(
        expected, abs=TOL
    )


def test_lmtp_is_zero_without_masked_tokens() -> None:
    logits = torch.randn(2, 3, 5)
    assert float(masked_token_loss(logits, torch.zeros(2, 3, dtype=torch.long), torch.zeros(2, 3))) == 0.0


def _ras_reference(words, visual, codes, valid, reduction):
    batch, length, _ = words.shape
    positions = visual.shape[1]
    total, count = 0.0, 0
    for b in range(batch):
        matched = []
        for i in range(length):
            sims = [_cos(words[b, i], visual[b, k]) for k in range(positions)]
            k_star = max(range(positions), key=lambda k: sims[k])
            matched.append((k_star, sims[k_star]))
        for i in range(length):
            for j in range(length):
                both = bool(valid[b, i]) and bool(valid[b, j])
                if both:
                    target = _cos(words[b, i], words[b, j])
                    (ki, si), (kj, sj) = matched[i], matched[j]
                    sign = math.copysign(1.0, si) * math.copysign(1.0, sj)
                    predicted = sign * _cos(codes[b, ki], codes[b, kj])
                    diff = (predicted - target) ** 2
                else:
                    diff = 0.0
                total += diff
                if reduction == "all" or both:
                    count += 1
    return total / count


@pytest.mark.parametrize("reduction", ["all", "valid"])
def test_lras_matches_reference(reduction: str) -> None:
    torch.manual_seed(3)
    words = torch.randn(2, 5, 6, dtype=torch.float64)
    visual = torch.randn(2, 4, 6, dtype=torch.float64)
    codes = torch.randn(2, 4, 6, dtype=torch.float64)
    valid = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 1, 0, 0]], dtype=torch.bool)
    expected = _ras_reference(words, visual, codes, valid, reduction)
    got = relation_alignment_loss(words, visual, codes, valid, reduction=reduction)
    assert float(got) == pytest.approx(expected, abs=TOL)


def test_lras_gradient_reaches_only_the_code_features() -> None:
    words = torch.randn(2, 4, 5, requires_grad=True)
    visual = torch.randn(2, 3, 5, requires_grad=True)
    codes = torch.randn(2, 3, 5, requires_grad=True)
    relation_alignment_loss(words, visual, codes, torch.ones(2, 4, dtype=torch.bool)).backward()
    assert codes.grad is not None and codes.grad.abs().sum() > 0
    assert words.grad is None and visual.grad is None


def test_matching_picks_the_most_similar_position() -> None:
    words = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    visual = torch.tensor([[[0.0, 2.0], [3.0, 0.1], [-1.0, 0.0]]])
    index, best = match_words_to_positions(words, visual)
    assert index.tolist() == [[1, 0]]
    assert best[0, 1] == pytest.approx(1.0)


def test_shape_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="B×E"):
        global_alignment_loss(torch.randn(2, 3), torch.randn(3, 3))
    with pytest.raises(ValueError, match="shape mismatch"):
        masked_token_loss(torch.randn(2, 3, 4), torch.zeros(2, 2, dtype=torch.long), torch.ones(2, 2))
