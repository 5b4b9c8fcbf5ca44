"""Mann-Whitney U and Benjamini-Hochberg against scipy on the same numbers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from bindvae.analysis.stats import benjamini_hochberg, mann_whitney_greater


@pytest.mark.parametrize("ties", [False, True])
def test_mann_whitney_matches_scipy(ties):
    rng = np.random.default_rng(3)
    x = rng.normal(0.3, 1.0, size=(20, 6))
    y = rng.normal(0.0, 1.0, size=(80, 6))
    if ties:
        x, y = np.round(x), np.round(y)
    u, p, effect = mann_whitney_greater(x, y)
    for col in range(6):
        ref = stats.mannwhitneyu(x[:, col], y[:, col], alternative="greater", method="asymptotic")
        assert u[col] == pytest.approx(ref.statistic)
        assert p[col] == pytest.approx(ref.pvalue, rel=1e-9)
        assert effect[col] == pytest.approx(ref.statistic / (20 * 80))


def test_mann_whitney_extremes():
    x = np.arange(10.0, 30.0)[:, None]
    y = np.arange(0.0, 10.0)[:, None]
    u, p, effect = mann_whitney_greater(x, y)
    assert u[0] == 200 and effect[0] == 1.0 and p[0] < 1e-4
    _, p_rev, _ = mann_whitney_greater(y, x)
    assert p_rev[0] > 0.999
    _, p_const, _ = mann_whitney_greater(np.ones((5, 1)), np.ones((5, 1)))
    assert p_const[0] == 1.0


def test_benjamini_hochberg_matches_scipy():
    p = np.random.default_rng(0).uniform(size=(7, 9)) ** 3
    np.testing.assert_allclose(benjamini_hochberg(p), stats.false_discovery_control(p.ravel()).reshape(7, 9))
