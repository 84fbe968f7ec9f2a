"""PASS / FAIL: did the loss (and each loss term that proves something) clearly fall?

Pure Python, no TensorFlow: the rule is unit-tested on synthetic curves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

WINDOW_FRACTION = 0.1
NOISE_SIGMAS = 6.0
MIN_RELATIVE_DROP = 0.1
MIN_TOTAL_STEPS = 20  # windows of at least 2 steps


@dataclass(frozen=True)
class Verdict:
    """The result of `judge` on one series of per-step losses.

    `reason` is one sentence for the user; `z` is the drop in noise standard
    errors (None when it cannot be computed: too few steps, a non-finite loss,
    or no noise at all).
    """

    passed: bool
    reason: str
    window: int = 0
    first_mean: float | None = None
    last_mean: float | None = None
    noise: float | None = None
    required_drop: float | None = None
    z: float | None = None
    term: str = "loss"
    summary: str = ""  # the check's part of a PASS line; "" for a loss that must fall


@dataclass(frozen=True)
class RunVerdict:
    """Several `Verdict`s (one per check) folded into one: PASS when all pass.

    `reason` is the first failed check's reason, or every check's in short.
    """

    passed: bool
    reason: str
    checks: tuple[Verdict, ...]


def detrended_noise(values: Sequence[float]) -> float:
    """The step-to-step noise sigma of a loss curve, with its trend taken out.

    Each inner point's residual from the straight line through its two neighbours
    (a local linear fit) is r[i] = l[i] - (l[i-1] + l[i+1]) / 2; for independent
    noise of variance sigma^2 its variance is 1.5 sigma^2, whatever the noise's
    distribution, and any locally straight trend cancels exactly (the
    pseudo-residuals of Gasser, Sroka & Jennen-Steinmetz 1986, "Residual variance
    and residual pattern in nonlinear regression"). The successive-difference
    estimate used before counted the trend itself as noise: a steep learning curve
    looked noisy and a clearly learning run could FAIL.

    Each point's residual is divided by its own variance factor, so the estimate
    is unbiased for independent noise: sigma^2 = mean of r[i]^2 / c[i] over all n
    points (c = 1.5 inside, 6 at the two ends, extrapolated from the next two).
    """
    n = len(values)
    if n < 3:
        return 0.0
    v = values
    total = sum((v[i] - (v[i - 1] + v[i + 1]) / 2) ** 2 / 1.5 for i in range(1, n - 1))
    # The end points, from the line through the next two points (variance 6 sigma^2):
    # without them an outlier in the first step, inside the first window, would
    # barely count as noise.
    total += ((v[0] - 2 * v[1] + v[2]) ** 2 + (v[-1] - 2 * v[-2] + v[-3]) ** 2) / 6
    return math.sqrt(total / n)


def _windows(series: Sequence[float], term: str):
    """(k, mean of the first k, mean of the last k, detrended noise sigma) of a
    series, k = ceil(WINDOW_FRACTION of the steps); or a failed `Verdict` when the
    series is too short or not finite."""
    values = [float(v) for v in series]
    n = len(values)
    if n < 2:
        return Verdict(False, f"{term}: only {n} step(s), too few to judge", term=term)
    bad = [i for i, v in enumerate(values) if not math.isfinite(v)]
    if bad:
        return Verdict(False, f"{term} is not finite at step {bad[0] + 1} of {n} "
                              f"({values[bad[0]]}); {len(bad)} non-finite step(s)", term=term)
    k = min(max(1, math.ceil(WINDOW_FRACTION * n)), n // 2)
    return k, sum(values[:k]) / k, sum(values[-k:]) / k, detrended_noise(values)


def judge(losses: Sequence[float], *, term: str = "loss") -> Verdict:
    """PASS when every loss is finite and the loss clearly went down.

    With k = ceil(10% of the steps), the mean of the first k losses must exceed the
    mean of the last k by more than

        max(NOISE_SIGMAS * sigma * sqrt(2 / k), MIN_RELATIVE_DROP * first mean)

    where sigma is `detrended_noise` of the whole series, so sigma * sqrt(2 / k) is
    the standard error of the difference of two k-step means and the margin is 6 of
    them. Of 5 million simulated 20-step runs (windows of 2) of a loss that only
    fluctuates, without the relative floor (`benchmarks/verdict_noise.py`), 0.003%
    passed for Gaussian noise (95% upper bound 0.0033%), 0.015-0.027% for
    exponential and Student-t (3 and 2 degrees of freedom) noise, 0.067% for
    log-normal noise; at a 4-SE margin noise passes far more often (see the tests).
    The relative floor asks for a drop that matters and covers noise-free runs
    (identical batches), where sigma is 0.
    """
    windows = _windows(losses, term)
    if isinstance(windows, Verdict):
        return windows
    k, first, last, sigma = windows
    se = sigma * math.sqrt(2 / k)
    required = max(NOISE_SIGMAS * se, MIN_RELATIVE_DROP * abs(first))
    drop = first - last
    z = drop / se if se > 0 else None
    what = (f"{term}: mean of the last {k} step(s) {last:.4g} vs the first {k} {first:.4g}, "
            f"drop {drop:.4g}, needed > {required:.4g} "
            f"(the larger of {NOISE_SIGMAS:g} x noise SE {se:.3g} and "
            f"{MIN_RELATIVE_DROP:.0%} of the first)")
    return Verdict(drop > required, what, k, first, last, sigma, required, z, term)


def combine(checks: Sequence[Verdict]) -> RunVerdict:
    """All checks must pass; the reason names the first that did not."""
    checks = tuple(checks)
    failed = [c for c in checks if not c.passed]
    if failed:
        return RunVerdict(False, failed[0].reason, checks)
    if len(checks) == 1:
        return RunVerdict(True, checks[0].reason, checks)
    parts = [c.summary or f"{c.term} fell {c.first_mean:.4g} -> {c.last_mean:.4g}"
             + (f" (z {c.z:.1f})" if c.z is not None else "") for c in checks]
    falls = "each" if all(not c.summary for c in checks) else "the falls each"
    return RunVerdict(True, "; ".join(parts) + f"; {falls} by more than {NOISE_SIGMAS:g} noise "
                      f"SE and {MIN_RELATIVE_DROP:.0%}", checks)


# The segmentation check: the share of the best pixel-blind loss the model must have
# removed by the end (1 - loss / blind loss, McFadden's pseudo-R^2 per pixel).
# Calibrated (docs/readme-seg-read.md): right masks removed 0.65-0.82, masks mirrored
# or shifted against their pictures 0.03-0.14, and 0.29-0.31 on the 12-image VOC fixture,
# whose mirrored masks a model partly memorises.
MIN_BLIND_SHARE = 0.45
# Noise standard errors the excess must be below 0 by as well: fewer than the loss's
# 6, as the share keeps wrong masks out (their z reached 6.2 on the memorised fixture,
# so z alone could not); right masks reached z 7.9 at worst.
EXCESS_SIGMAS = 4.0


def judge_beats_prior(excess: Sequence[float], blind: Sequence[float], *,
                      term: str = "excess") -> Verdict:
    """PASS when the model ends clearly better than any prediction that ignores the
    pixels. With k = ceil(10% of the steps) and the means of the last k values of
    `excess` (the model's pixel loss minus `blind`, `heads.excess_loss`) and of
    `blind` (the loss of predicting each batch's own class frequencies,
    `heads.blind_loss`), the excess must be below 0 by more than

        max(EXCESS_SIGMAS * sigma / sqrt(k), MIN_BLIND_SHARE * blind)

    with sigma the `detrended_noise` of the excess: the model must have removed at
    least MIN_BLIND_SHARE of the pixel-blind loss, and by more than the noise. Masks
    mirrored or shifted against their pictures leave a model near 0 (it can learn
    the class frequencies, not where the classes are)."""
    windows = _windows(excess, term)
    if isinstance(windows, Verdict):
        return windows
    k, first, last, sigma = windows
    blind_values = [float(v) for v in blind]
    if len(blind_values) != len(excess) or not all(map(math.isfinite, blind_values)):
        return Verdict(False, f"{term}: no finite pixel-blind loss to compare with", term=term)
    blind_last = sum(blind_values[-k:]) / k
    se = sigma / math.sqrt(k)
    required = max(EXCESS_SIGMAS * se, MIN_BLIND_SHARE * blind_last)
    z = -last / se if se > 0 else None
    share = -last / blind_last if blind_last > 0 else 0.0
    what = (f"{term}: over the last {k} step(s) the model removed {share:.0%} of the loss of "
            f"the best pixel-blind prediction (the batch's class frequencies, {blind_last:.4g} "
            f"nats/pixel): {last:+.4g}; needed below {-required:.4g} (the larger of "
            f"{MIN_BLIND_SHARE:.0%} of it and {EXCESS_SIGMAS:g} x noise SE {se:.3g})")
    summary = (f"{term} ended {last:+.4g} nats/pixel, {share:.0%} of the best pixel-blind "
               f"loss {blind_last:.4g} removed (needed {MIN_BLIND_SHARE:.0%})")
    return Verdict(-last > required, what, k, first, last, sigma, required, z, term, summary)
