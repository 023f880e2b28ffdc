"""Is a difference real? Bootstrap confidence intervals over questions, and percentiles for latency.

A score averaged over 40 questions moves by several points when a few questions change, so every
number in the report carries a 95% interval: resample the questions with replacement `n` times and
take the middle 95% of the resampled means (the percentile bootstrap). Two systems answered the same
questions, so their difference is resampled in pairs (`paired_bootstrap_diff`): the same draw of
questions for both, which removes the question-difficulty noise both share.

    diff = paired_bootstrap_diff(tuned_rag, base_rag)   # (0.03, -0.04, 0.10)
    is_noise(diff)                                      # True: "a 3-point difference on 40 questions is noise"
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

CI = tuple[float, float, float]
"""(estimate, low, high)."""


def _resample_means(values: np.ndarray, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n, len(values)))
    return values[idx].mean(axis=1)


def _check(n: int, alpha: float) -> None:
    if n < 1:
        raise ValueError(f"n (bootstrap resamples) must be at least 1, not {n}")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be in (0, 1), not {alpha}")


def bootstrap_ci(values: Sequence[float], n: int = 2000, alpha: float = 0.05, seed: int = 0) -> CI:
    """Mean of per-question scores with its (1 - alpha) percentile-bootstrap interval.

    Deterministic for a given seed. The interval is in the units of the values.

    Raises:
        ValueError: no values, n < 1, or alpha outside (0, 1).
    """
    _check(n, alpha)
    x = np.asarray(values, dtype=float)
    if x.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    means = _resample_means(x, n, seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(x.mean()), float(low), float(high)


def paired_bootstrap_diff(
    a: Sequence[float], b: Sequence[float], n: int = 2000, alpha: float = 0.05, seed: int = 0
) -> CI:
    """mean(a) - mean(b) for two systems scored on the same questions (a[i] and b[i] are question i),
    with its (1 - alpha) interval from resampling questions in pairs.

    Raises:
        ValueError: the lists differ in length or are empty, n < 1, or alpha outside (0, 1).
    """
    if len(a) != len(b):
        raise ValueError(f"paired scores must cover the same questions: {len(a)} vs {len(b)}")
    return bootstrap_ci(np.asarray(a, dtype=float) - np.asarray(b, dtype=float), n=n, alpha=alpha, seed=seed)


def is_noise(diff_ci: CI) -> bool:
    """True when the interval of a difference contains 0: the data cannot tell the two systems apart."""
    _, low, high = diff_ci
    return low <= 0 <= high


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (q in [0, 100], linear interpolation), e.g. p50 and p95 latency.

    Raises:
        ValueError: no values, or q outside [0, 100].
    """
    if len(values) == 0:
        raise ValueError("percentile needs at least one value")
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], not {q}")
    return float(np.percentile(np.asarray(values, dtype=float), q))
