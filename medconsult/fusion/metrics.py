"""Discrimination, calibration and retrieval figures for the fusion models (numpy only, no fitted state)."""

from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of `scores` for binary `labels` (Mann-Whitney, ties counted half)."""
    labels = np.asarray(labels, dtype=bool)
    positives, negatives = int(labels.sum()), int((~labels).sum())
    if positives == 0 or negatives == 0:
        return float("nan")
    ranks = rankdata(scores)  # tied scores share their average rank
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray, bins: int = 15) -> float:
    """Top-label ECE: the gap between confidence and accuracy, averaged over equal-width confidence bins."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    error = 0.0
    for low, high in zip(edges[:-1], edges[1:], strict=True):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(confidence[inside].mean() - correct[inside].mean())
    return float(error)


def precision_at_k(
    query: np.ndarray,
    query_labels: np.ndarray,
    reference: np.ndarray,
    reference_labels: np.ndarray,
    k: int = 5,
) -> float:
    """Mean fraction of the k most cosine-similar reference items that share the query's label."""
    query = query / np.linalg.norm(query, axis=1, keepdims=True).clip(1e-12)
    reference = reference / np.linalg.norm(reference, axis=1, keepdims=True).clip(1e-12)
    nearest = np.argsort(-(query @ reference.T), axis=1)[:, :k]
    return float((reference_labels[nearest] == query_labels[:, None]).mean())


def stratified_group_folds(labels: np.ndarray, groups: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold number per item: no group spans two folds, and each fold's label mix stays close to the whole set's.

    Groups are placed largest first (ties in seeded random order), each into the fold whose label counts it
    disturbs least relative to the target share.
    """
    classes = np.unique(labels)
    names, group_of = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(names), len(classes)))
    np.add.at(counts, (group_of, np.searchsorted(classes, labels)), 1)
    rng = np.random.default_rng(seed)
    order = sorted(range(len(names)), key=lambda g: (-counts[g].sum(), rng.random()))
    fold_counts = np.zeros((folds, len(classes)))
    target = counts.sum(axis=0) / folds
    fold_of_group = np.empty(len(names), dtype=int)
    for group in order:
        cost = [np.square(fold_counts[f] + counts[group] - target).sum() - np.square(fold_counts[f] - target).sum()
                for f in range(folds)]
        best = int(np.argmin(cost))
        fold_of_group[group] = best
        fold_counts[best] += counts[group]
    return fold_of_group[group_of]
