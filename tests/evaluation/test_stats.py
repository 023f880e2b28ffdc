"""Bootstrap intervals: a 3-point difference on 40 questions is noise, a 30-point one is not."""

import numpy as np
import pytest

from evaluation.metrics.stats import bootstrap_ci, is_noise, paired_bootstrap_diff, percentile


def _two_systems(gap: float, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Per-question scores (0-100) of two systems on the same n questions; mean(a) - mean(b) == gap."""
    rng = np.random.default_rng(7)
    a, b = rng.uniform(0, 100, n), rng.uniform(0, 100, n)
    return a, b - b.mean() + a.mean() - gap


def test_a_3_point_difference_on_40_questions_is_noise():
    a, b = _two_systems(3.0)
    diff, low, high = paired_bootstrap_diff(a, b)
    assert diff == pytest.approx(3.0)
    assert low < 0 < high and is_noise((diff, low, high))


def test_a_30_point_difference_on_40_questions_is_not_noise():
    a, b = _two_systems(30.0)
    ci = paired_bootstrap_diff(a, b)
    assert ci[0] == pytest.approx(30.0) and ci[1] > 0
    assert not is_noise(ci)
    assert is_noise(paired_bootstrap_diff(b, a)) is False  # worse by 30 is not noise either


def test_pairing_removes_the_noise_both_systems_share():
    # b is a plus 2 points on every question: the difference is certain however hard the questions.
    a = np.random.default_rng(1).uniform(0, 100, 40)
    assert paired_bootstrap_diff(a + 2, a) == pytest.approx((2.0, 2.0, 2.0))
    assert not is_noise(paired_bootstrap_diff(a + 2, a))
    # Comparing the two systems' separate intervals would miss it: they overlap almost entirely.
    (_, low_a, high_a), (_, low_b, high_b) = bootstrap_ci(a + 2), bootstrap_ci(a)
    assert low_a < high_b and low_b < high_a


def test_bootstrap_ci_brackets_the_mean_narrows_with_more_questions_and_is_deterministic():
    rng = np.random.default_rng(3)
    small, large = rng.uniform(0, 1, 40), rng.uniform(0, 1, 4000)
    mean, low, high = bootstrap_ci(small)
    assert low < mean < high and mean == pytest.approx(small.mean())
    _, low_l, high_l = bootstrap_ci(large)
    assert high_l - low_l < (high - low) / 5
    assert bootstrap_ci(small, seed=0) == bootstrap_ci(small, seed=0) != bootstrap_ci(small, seed=1)
    assert bootstrap_ci([0.7]) == (0.7, 0.7, 0.7)


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="same questions: 2 vs 3"):
        paired_bootstrap_diff([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="alpha"):
        bootstrap_ci([1.0], alpha=1.5)
    with pytest.raises(ValueError, match="q must be"):
        percentile([1.0], 101)


def test_percentile_gives_p50_and_p95_latency():
    latencies = list(range(1, 101))  # 1..100 ms
    assert percentile(latencies, 50) == pytest.approx(50.5)
    assert percentile(latencies, 95) == pytest.approx(95.05)
    assert percentile([0.2], 95) == 0.2
