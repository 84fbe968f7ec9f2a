"""How often does noise alone PASS the smoke-train verdict? (README's bound)

Simulates loss curves that only fluctuate (no trend), applies `verdict.judge`'s
rule vectorised in numpy (checked against `judge` itself on the first runs), and
prints the pass count with a one-sided 95% upper bound on the pass rate. The
relative floor (10% of the first mean) is left out (mean 0 noise), so the rate
is an upper bound for noise of any mean.

    python benchmarks/verdict_noise.py [--runs 5000000] [--steps 20] [--seed 0]
"""

from __future__ import annotations

import argparse
import math

import numpy as np

from cocoprep.train import verdict


def passes(v: np.ndarray, sigmas: float) -> np.ndarray:
    """`judge`'s noise rule on each row of `v` ([runs, n]), without the floor."""
    n = v.shape[1]
    k = min(max(1, math.ceil(verdict.WINDOW_FRACTION * n)), n // 2)
    inner = ((v[:, 1:-1] - (v[:, :-2] + v[:, 2:]) / 2) ** 2).sum(axis=1) / 1.5
    ends = ((v[:, 0] - 2 * v[:, 1] + v[:, 2]) ** 2 + (v[:, -1] - 2 * v[:, -2] + v[:, -3]) ** 2) / 6
    se = np.sqrt((inner + ends) / n) * math.sqrt(2 / k)
    drop = v[:, :k].mean(axis=1) - v[:, -k:].mean(axis=1)
    return drop > sigmas * se


def upper95(k: int, n: int) -> float:
    """One-sided 95% upper bound on a small rate seen k times in n runs (exact for
    the Poisson limit of the binomial, which holds for rates this small)."""
    def cdf(lam: float) -> float:  # P(Poisson(lam) <= k), summed in log space
        logs = [-lam + i * math.log(lam) - math.lgamma(i + 1) for i in range(k + 1)]
        top = max(logs)
        return math.exp(top) * sum(math.exp(v - top) for v in logs)

    lo, hi = 0.0, k + 10.0 * math.sqrt(k + 1) + 10.0
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 0.05 else (lo, mid)
    return hi / n


def _check_against_judge(runs: np.ndarray) -> None:
    """The vectorised rule gives judge()'s answers (floor off, a 1-SE margin so that
    many runs pass and the comparison means something)."""
    floor, sigmas = verdict.MIN_RELATIVE_DROP, verdict.NOISE_SIGMAS
    try:
        verdict.MIN_RELATIVE_DROP, verdict.NOISE_SIGMAS = 0.0, 1.0
        theirs = np.array([verdict.judge(r).passed for r in runs])
    finally:
        verdict.MIN_RELATIVE_DROP, verdict.NOISE_SIGMAS = floor, sigmas
    mine = passes(runs, 1.0)
    assert mine.sum() > 0 and (mine == theirs).all(), (mine.sum(), theirs.sum())


def draw(kind: str, rng, shape):
    return {"normal": lambda: rng.standard_normal(shape),
            "exponential": lambda: rng.exponential(1.0, shape),
            "student_t3": lambda: rng.standard_t(3, shape),
            "student_t2": lambda: rng.standard_t(2, shape),
            "lognormal": lambda: rng.lognormal(0.0, 1.0, shape)}[kind]()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5_000_000)  # the README's figures
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk", type=int, default=500_000)
    args = ap.parse_args()
    for kind in ("normal", "exponential", "student_t3", "student_t2", "lognormal"):
        rng = np.random.default_rng(args.seed)
        _check_against_judge(draw(kind, rng, (2000, args.steps)))
        hits, done = 0, 0
        while done < args.runs:
            m = min(args.chunk, args.runs - done)
            hits += int(passes(draw(kind, rng, (m, args.steps)), verdict.NOISE_SIGMAS).sum())
            done += m
        print(f"{kind:12s} {args.steps} steps: {hits} of {done} runs passed "
              f"({hits / done:.2e}); 95% upper bound {upper95(hits, done):.2e}")


if __name__ == "__main__":
    main()
