"""Confidence intervals for eval metrics over a few dozen cases.

The case suite is small (tens of cases), so a point estimate alone overstates what a run shows. A percentile
bootstrap gives an interval without assuming normality; a fixed seed makes a scorecard reproducible, so two
runs of the harness on the same outputs print the same numbers.

Cases of one patient are not independent (several radiographs of one illness share the record and the answer), so
the scorecard and the comparison resample patients, not cases (`grouped_bootstrap_ci`): each replicate draws
patients with replacement and takes all of their cases.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

import numpy as np

Statistic = Callable[[np.ndarray], float]
Item = TypeVar("Item")
DEFAULT_SEED = 20200302


def mean(values: np.ndarray) -> float:
    return float(np.mean(values))


def _check_alpha(alpha: float) -> None:
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha must be in (0, 1), got {alpha}")


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
    _check_alpha(alpha)
    rng = np.random.default_rng(seed)
    resamples = rng.integers(0, data.size, size=(n, data.size))
    replicates = np.array([statistic(data[row]) for row in resamples])
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(statistic(data)), float(low), float(high)


def grouped_bootstrap_ci(
    items: Sequence[Item],
    groups: Sequence[Hashable],
    statistic: Callable[[list[Item]], float],
    n: int = 2000,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
) -> tuple[float, float, float]:
    """(point, low, high) for statistic(items), resampling whole groups (patients) with replacement.

    `groups[i]` is the patient of `items[i]`. With one item per group this is the plain case bootstrap. A
    replicate whose statistic is undefined (NaN: an AUC on a draw that lacks one class) is left out.
    """
    if not items:
        raise ValueError("grouped_bootstrap_ci needs at least one item")
    if len(items) != len(groups):
        raise ValueError(f"one group per item: {len(items)} items, {len(groups)} groups")
    _check_alpha(alpha)
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(groups):
        members.setdefault(group, []).append(index)
    clusters = list(members.values())
    rng = np.random.default_rng(seed)
    replicates = [
        statistic([items[i] for drawn in rng.integers(0, len(clusters), size=len(clusters)) for i in clusters[drawn]])
        for _ in range(n)
    ]
    low, high = np.nanquantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(statistic(list(items))), float(low), float(high)


def grouped_mean_ci(
    values: Sequence[float], groups: Sequence[Hashable], n: int = 2000, alpha: float = 0.05, seed: int = DEFAULT_SEED
) -> tuple[float, float, float]:
    """grouped_bootstrap_ci for the mean, vectorised (the same draws): a replicate's mean is the drawn patients'
    summed values over their summed case counts."""
    if len(values) == 0:
        raise ValueError("grouped_mean_ci needs at least one value")
    if len(values) != len(groups):
        raise ValueError(f"one group per value: {len(values)} values, {len(groups)} groups")
    _check_alpha(alpha)
    keys = list(dict.fromkeys(groups))
    index = {key: i for i, key in enumerate(keys)}
    sums, counts = np.zeros(len(keys)), np.zeros(len(keys))
    for value, group in zip(values, groups, strict=True):
        sums[index[group]] += value
        counts[index[group]] += 1
    drawn = np.random.default_rng(seed).integers(0, len(keys), size=(n, len(keys)))
    replicates = sums[drawn].sum(axis=1) / counts[drawn].sum(axis=1)
    low, high = np.quantile(replicates, [alpha / 2, 1 - alpha / 2])
    return float(np.mean(values)), float(low), float(high)


def mean_of(values: list[float]) -> float:
    return float(np.mean(values))


def paired_difference_ci(
    a: Sequence[float],
    b: Sequence[float],
    statistic: Statistic = mean,
    n: int = 2000,
    alpha: float = 0.05,
    seed: int = DEFAULT_SEED,
    groups: Sequence[Hashable] | None = None,
) -> tuple[float, float, float]:
    """Interval for statistic(a - b) where a[i] and b[i] score the same case in two runs.

    Resampling the per-case differences keeps the pairing, which removes the case-difficulty variance that
    two independent intervals would include; an interval excluding 0 means the runs differ on this suite. With
    `groups` (the patient of each case) whole patients are resampled.
    """
    if len(a) != len(b):
        raise ValueError(f"paired runs need the same cases: {len(a)} vs {len(b)} values")
    differences = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    if groups is None:
        return bootstrap_ci(differences, statistic=statistic, n=n, alpha=alpha, seed=seed)
    if statistic is mean:
        return grouped_mean_ci(list(differences), groups, n, alpha, seed)
    return grouped_bootstrap_ci(list(differences), groups, lambda d: statistic(np.asarray(d)), n, alpha, seed)
