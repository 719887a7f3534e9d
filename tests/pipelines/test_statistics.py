"""Seed statistics (``pipelines.statistics``) against hand-computed values."""

from __future__ import annotations

import logging
import math

import pytest

from pipelines.statistics import Interval, describe_delta, mean_interval, paired_delta, t_critical

# Two-sided 95 % Student-t critical values, i.e. t(0.975, df), from the standard tables.
T975 = {1: 12.706204736174705, 2: 4.302652729911275, 3: 3.182446305284263, 4: 2.776445105197799}


@pytest.mark.parametrize("df", sorted(T975))
def test_t_critical_matches_the_table(df):
    assert t_critical(0.95, df) == pytest.approx(T975[df], rel=1e-9)


def test_t_critical_closed_forms():
    # df = 1 (Cauchy): t = tan(pi * c / 2);
    # df = 2: P(|T| < t) = t / sqrt(2 + t^2) → t = sqrt(2 c^2 / (1 - c^2)).
    for c in (0.5, 0.8, 0.9, 0.95, 0.99):
        assert t_critical(c, 1) == pytest.approx(math.tan(math.pi * c / 2), rel=1e-12)
        assert t_critical(c, 2) == pytest.approx(math.sqrt(2 * c * c / (1 - c * c)), rel=1e-12)
    # large df → the normal quantile 1.959964
    assert t_critical(0.95, 100_000) == pytest.approx(1.959963984540054, rel=1e-4)


def test_t_critical_against_scipy_when_available():
    stats = pytest.importorskip("scipy.stats")
    for c in (0.9, 0.95, 0.99):
        for df in (*range(1, 41), 60, 120, 1000):
            assert t_critical(c, df) == pytest.approx(stats.t.ppf((1 + c) / 2, df), rel=1e-9)


def test_t_critical_rejects_bad_arguments():
    with pytest.raises(ValueError, match="confidence"):
        t_critical(1.0, 3)
    with pytest.raises(ValueError, match="df"):
        t_critical(0.95, 0)
    with pytest.raises(ValueError, match="df"):
        t_critical(0.95, 2.5)


def test_mean_interval_of_1_2_3():
    # mean 2, sd 1, half width t(0.975, 2) * 1 / sqrt(3) = 4.3026527 / 1.7320508 = 2.4841377
    iv = mean_interval([1.0, 2.0, 3.0])
    assert iv.n == 3
    assert iv.mean == pytest.approx(2.0)
    assert iv.half_width == pytest.approx(2.4841377, abs=1e-6)
    assert iv.low == pytest.approx(2.0 - 2.4841377, abs=1e-6)
    assert iv.high == pytest.approx(2.0 + 2.4841377, abs=1e-6)
    assert not iv.excludes_zero()
    assert iv.format(2) == "2.00 ± 2.48"


def test_mean_interval_four_values_and_other_confidence():
    # [20.9, 21.3, 21.5, 21.7]: mean 21.35, deviations -.45 -.05 .15 .35 → SS = .2025+.0025+.0225+.1225 = .35,
    # sd = sqrt(.35 / 3) = 0.3415650; df = 3, 95 %: t(0.975, 3) * sd / sqrt(4) = 3.1824463 * 0.3415650 / 2
    # = 0.5435062
    iv = mean_interval([20.9, 21.3, 21.5, 21.7])
    assert iv.mean == pytest.approx(21.35)
    assert iv.half_width == pytest.approx(0.5435062, abs=1e-6)
    assert iv.low == pytest.approx(20.8064938, abs=1e-6)
    assert iv.excludes_zero()
    assert iv.format(2) == "21.35 ± 0.54"
    # 90 %: t(0.95, 3) = 2.3533634 → 2.3533634 * 0.3415650 / 2 = 0.4019133
    assert mean_interval([20.9, 21.3, 21.5, 21.7], 0.90).half_width == pytest.approx(0.4019133, abs=1e-6)


def test_mean_interval_of_one_value_has_no_interval():
    iv = mean_interval([21.3412])
    assert (iv.mean, iv.low, iv.high, iv.n) == (21.3412, 21.3412, 21.3412, 1)
    assert math.isnan(iv.half_width)
    assert not iv.excludes_zero()
    assert iv.format(2) == "21.34 (n=1)"


def test_mean_interval_of_constant_values_is_degenerate():
    iv = mean_interval([0.5, 0.5, 0.5])
    assert iv.half_width == 0.0 and iv.low == iv.high == 0.5
    assert iv.excludes_zero()


def test_mean_interval_rejects_empty_nan_and_bad_confidence():
    with pytest.raises(ValueError, match="at least one"):
        mean_interval([])
    with pytest.raises(ValueError, match="position 2"):
        mean_interval([1.0, 2.0, float("nan"), 4.0])
    with pytest.raises(ValueError, match="position 0"):
        mean_interval([float("inf"), 2.0])
    with pytest.raises(ValueError, match="confidence"):
        mean_interval([1.0, 2.0], confidence=95)


def test_paired_delta_hand_computed():
    # deltas (seed 0, 1, 2): 21.0-20.5 = 0.5, 21.4-20.6 = 0.8, 21.2-20.1 = 1.1 → mean 0.8, sd 0.3,
    # half width 4.3026527 * 0.3 / sqrt(3) = 0.7452413 → [0.0547587, 1.5452413]: excludes zero
    lg = {0: 21.0, 1: 21.4, 2: 21.2}
    base = {0: 20.5, 1: 20.6, 2: 20.1}
    iv = paired_delta(lg, base)
    assert iv.n == 3
    assert iv.mean == pytest.approx(0.8)
    assert iv.half_width == pytest.approx(0.7452413, abs=1e-6)
    assert iv.low == pytest.approx(0.0547587, abs=1e-6)
    assert iv.high == pytest.approx(1.5452413, abs=1e-6)
    assert iv.excludes_zero()
    # the pairing matters: the unpaired interval of the difference of means would be far wider
    assert (
        iv.half_width
        < mean_interval(list(lg.values())).half_width + mean_interval(list(base.values())).half_width
    )


def test_paired_delta_not_distinguishable_and_negative():
    # deltas 0.5, -0.3, 0.4 → mean 0.2, sd = sqrt((.09 + .25 + .04) / 2) = 0.4358899,
    # half width 4.3026527 * 0.4358899 / sqrt(3) = 1.0828105 → [-0.8828105, 1.2828105]
    iv = paired_delta({1: 10.5, 2: 9.7, 3: 10.4}, {1: 10.0, 2: 10.0, 3: 10.0})
    assert iv.mean == pytest.approx(0.2)
    assert iv.half_width == pytest.approx(1.0828105, abs=1e-6)
    assert iv.low == pytest.approx(-0.8828105, abs=1e-6)
    assert not iv.excludes_zero()
    # all deltas clearly negative → interval below zero
    neg = paired_delta({1: 1.0, 2: 1.1, 3: 0.9}, {1: 2.0, 2: 2.0, 3: 2.0})
    assert neg.mean == pytest.approx(-1.0)
    assert neg.high < 0 and neg.excludes_zero()


def test_paired_delta_uses_common_seeds_and_warns_about_the_others(caplog):
    lg = {0: 3.0, 1: 4.0, 2: 6.0, 7: 100.0}
    base = {0: 1.0, 1: 1.0, 2: 2.0, 5: -100.0}
    with caplog.at_level(logging.WARNING, logger="pipelines.statistics"):
        iv = paired_delta(lg, base)
    # deltas 2, 3, 4 → mean 3, sd 1
    assert iv.n == 3 and iv.mean == pytest.approx(3.0)
    assert iv.half_width == pytest.approx(T975[2] / math.sqrt(3), rel=1e-9)
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "[7]" in warning and "[5]" in warning


def test_paired_delta_with_no_common_seed_or_nan():
    with pytest.raises(ValueError, match="no seed in common"):
        paired_delta({0: 1.0}, {1: 1.0})
    with pytest.raises(ValueError, match="control value at seed 1"):
        paired_delta({0: 1.0, 1: 2.0}, {0: 0.5, 1: float("nan")})
    one = paired_delta({0: 1.0, 1: 2.0}, {1: 1.5})
    assert one.n == 1 and one.mean == pytest.approx(0.5) and math.isnan(one.half_width)


def test_describe_delta_sentences():
    iv = Interval(mean=0.41, low=-0.10, high=0.92, n=3, half_width=0.51)
    assert describe_delta("VQ-GAN+LG vs VQ-GAN", "PSNR", iv, True, unit="dB") == (
        "VQ-GAN+LG vs VQ-GAN, PSNR: +0.41 dB [\u22120.10, +0.92] over 3 seeds"
        " — not distinguishable from zero."
    )
    up = Interval(mean=0.8, low=0.05, high=1.55, n=3, half_width=0.75)
    assert describe_delta("VQ-GAN+LG vs VQ-GAN", "PSNR", up, True, unit="dB").endswith(
        "+0.80 dB [+0.05, +1.55] over 3 seeds — LG is better (interval excludes zero)."
    )
    # lower is better (a distance): a positive delta is worse, a negative one better
    assert describe_delta("CVQ+LG vs CVQ", "FD", up, False).endswith(
        "— LG is worse (interval excludes zero)."
    )
    down = Interval(mean=-2.5, low=-4.0, high=-1.0, n=4, half_width=1.5)
    text = describe_delta("CVQ+LG vs CVQ", "FD", down, False, digits=1)
    assert text == (
        "CVQ+LG vs CVQ, FD: \u22122.5 [\u22124.0, \u22121.0] over 4 seeds"
        " — LG is better (interval excludes zero)."
    )


def test_describe_delta_single_seed():
    iv = mean_interval([0.3])
    text = describe_delta("VQ-VAE+LG vs VQ-VAE", "SSIM", iv, True, digits=3)
    assert text.startswith("VQ-VAE+LG vs VQ-VAE, SSIM: +0.300 over 1 seed")
    assert "not distinguishable from zero" in text
