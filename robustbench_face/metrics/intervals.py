"""One interval rule for every number a results row reports.

* **Rates** (attack success, TAR at a FAR, flip rate): the Wilson score interval of ``k``
  successes in ``n`` trials (E. B. Wilson, "Probable Inference, the Law of Succession, and
  Statistical Inference", JASA 1927). Unlike a percentile bootstrap it never collapses to a
  point at 0% or 100% (8/8 successes: 0.68..1, not 1..1), and unlike the normal approximation
  it stays inside [0, 1]. ``tests/test_metrics_intervals.py`` checks it against
  ``scipy.stats.binomtest(...).proportion_ci(method="wilson")``.
* **Means of per-item scores** (mAP over queries, accuracy over images) and **statistics
  that are not means** (macro-F1): a seeded percentile bootstrap over the items (B. Efron,
  R. Tibshirani, "An Introduction to the Bootstrap", 1993): 1000 resamples drawn by
  ``numpy.random.default_rng(seed)``, so the same inputs and seed give the same interval.

Every function returns ``(low, high)`` at 95% (``alpha = 0.05``); NaN when there is nothing to
estimate from.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal
N_BOOT = 1000


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of ``k`` successes in ``n`` trials.

    >>> [round(v, 3) for v in wilson(10, 10)]
    [0.722, 1.0]
    >>> [round(v, 3) for v in wilson(0, 8)]
    [0.0, 0.324]
    >>> wilson(0, 0)
    (nan, nan)
    """
    if n <= 0:
        return math.nan, math.nan
    p, d = k / n, 1 + z * z / n
    c, h = (p + z * z / (2 * n)) / d, z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def rate_ci(success: Any) -> tuple[float, float]:
    """Wilson interval of a boolean array's rate.

    >>> [round(v, 3) for v in rate_ci([True] * 8)]
    [0.676, 1.0]
    """
    s = np.asarray(success, dtype=bool).ravel()
    return wilson(int(s.sum()), int(s.size))


def bootstrap(stat: Callable[[np.ndarray], float], n: int, seed: int = 0, n_boot: int = N_BOOT,
              alpha: float = 0.05) -> tuple[float, float]:
    """Percentile-bootstrap interval of ``stat(indices)`` over ``n`` items resampled with
    replacement; ``stat`` gets an index array and returns one number (NaN ones are dropped).

    >>> lo, hi = bootstrap(lambda i: float(np.arange(10)[i].mean()), 10, seed=0)
    >>> bool(2.5 < lo < 4.5 < hi < 6.5)
    True
    """
    if n <= 0:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    vals = np.array([stat(rng.integers(0, n, size=n)) for _ in range(n_boot)], dtype=float)
    vals = vals[~np.isnan(vals)]
    if not vals.size:
        return math.nan, math.nan
    lo, hi = np.quantile(vals, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def mean_ci(values: Any, seed: int = 0, n_boot: int = N_BOOT, alpha: float = 0.05) -> tuple[float, float]:
    """Bootstrap interval of the mean of ``values`` (NaN entries left out first), vectorised.

    >>> mean_ci([1.0, 1.0, 1.0])
    (1.0, 1.0)
    """
    x = np.asarray(values, dtype=float).ravel()
    x = x[~np.isnan(x)]
    if not x.size:
        return math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = np.empty(n_boot)
    step = max(1, 2_000_000 // x.size)  # bound memory: about 2M indices per chunk
    for start in range(0, n_boot, step):
        stop = min(n_boot, start + step)
        means[start:stop] = x[rng.integers(0, x.size, size=(stop - start, x.size))].mean(axis=1)
    lo, hi = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)
