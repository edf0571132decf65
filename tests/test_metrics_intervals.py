"""The one interval rule, against reference implementations: Wilson against scipy's
``binomtest(...).proportion_ci(method="wilson")``, the bootstrap against its definition."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binomtest

from robustbench_face.metrics.intervals import bootstrap, mean_ci, rate_ci, wilson


@pytest.mark.parametrize("k, n", [(0, 1), (0, 8), (8, 8), (3, 10), (50, 100), (1, 1000), (999, 1000)])
def test_wilson_matches_scipy(k, n):
    ref = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ref.low, abs=1e-9) and hi == pytest.approx(ref.high, abs=1e-9)
    assert 0.0 <= lo <= k / n <= hi <= 1.0 and hi - lo > 0  # never a point, even at 0 or 100%


def test_rates_never_collapse_and_empty_is_nan():
    lo, hi = rate_ci(np.ones(8, dtype=bool))
    assert hi == 1.0 and lo < 0.7
    assert all(math.isnan(v) for v in wilson(0, 0))


def test_mean_ci_is_seeded_and_contains_the_mean():
    x = np.random.default_rng(0).random(200)
    lo, hi = mean_ci(x, seed=3)
    assert lo < x.mean() < hi and (lo, hi) == mean_ci(x, seed=3) and (lo, hi) != mean_ci(x, seed=4)
    assert mean_ci([np.nan, 0.5, 0.5]) == (0.5, 0.5)  # NaN entries (skipped queries) left out


def test_bootstrap_equals_mean_ci_definition():
    x = np.random.default_rng(1).random(50)
    a = bootstrap(lambda i: float(x[i].mean()), x.size, seed=2)
    rng = np.random.default_rng(2)
    means = [x[rng.integers(0, x.size, size=x.size)].mean() for _ in range(1000)]
    assert a == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
