"""Confidence intervals for eval metrics over a few dozen cases.

The case suite is small (tens of cases), so a point estimate alone overstates what a run shows. A percentile
bootstrap gives an interval without assuming normality; a fixed seed makes a scorecard reproducible, so two
runs of the harness on the same outputs print the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

Statistic = Callable[[np.ndarray], float]
DEFAULT_SEED = 20200302


def mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def bootstrap_ci(
    values: Sequence[float],
    statistic: Statistic = mean,
    n: int = 2000,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """(point, low, high): the statistic on the data and its percentile bootstrap (1 - alpha) interval.

    Cases are resampled with replacement `n` times; the same seed gives the same interval.
    """
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        raise ValueError("bootstrap_ci needs at least one value")
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, data.size, size=(n, data.size))
    replicates = np.array([statistic(data[row]) for row in resamples])
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(statistic(data)), float(low), float(high)


def paired_difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    statistic: Statistic = mean,
    n: int = 2000,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """Interval for statistic(a - b) where a[i] and b[i] score the same case in two runs.

    Resampling the per-case differences keeps the pairing, which removes the case-difficulty variance that
    two independent intervals would include; an interval excluding 0 means the runs differ on this suite.
    """
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same cases: {len(a)} vs {len(b)} values")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return bootstrap_ci(differences, statistic=statistic, n=n, alpha=alpha, seed=seed)
