from __future__ import annotations

import numpy as np
import pytest

from medconsult.fusion.metrics import (
    expected_calibration_error,
    precision_at_k,
    roc_auc,
    stratified_group_folds,
)


def test_auc_counts_pairs_ranked_right_and_ties_as_half():
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = np.array([0.9, 0.4, 0.4, 0.1, 0.8, 0.7])
    # positives 0.9, 0.4, 0.8 against negatives 0.4, 0.1, 0.7: 3 + (0.5 + 1) + 3 = 7.5 of 9 pairs
    assert roc_auc(labels, scores) == pytest.approx(7.5 / 9)
    assert roc_auc(labels, -scores) == pytest.approx(1 - 7.5 / 9)
    assert np.isnan(roc_auc(np.ones(3), np.arange(3)))  # no negatives: undefined, not 0 or 1


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    confident_and_right = np.array([[0.9, 0.1]] * 10)
    assert expected_calibration_error(confident_and_right, np.zeros(10, dtype=int)) == pytest.approx(0.1)
    half_right = np.array([[0.6, 0.4]] * 10)
    assert expected_calibration_error(half_right, np.array([0, 1] * 5)) == pytest.approx(0.1)


def test_precision_at_k_is_the_share_of_same_label_neighbours():
    reference = np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9], [0.2, 1.0]])
    reference_labels = np.array(["a", "a", "b", "b", "b"])
    query = np.array([[1.0, 0.05]])
    assert precision_at_k(query, np.array(["a"]), reference, reference_labels, k=2) == 1.0
    assert precision_at_k(query, np.array(["a"]), reference, reference_labels, k=4) == 0.5


def test_folds_never_split_a_patient_and_keep_the_label_mix():
    rng = np.random.default_rng(3)
    groups = np.repeat(np.arange(300), rng.integers(1, 4, size=300))
    labels = rng.choice(3, size=300, p=[0.5, 0.3, 0.2])[groups]  # one label per patient
    folds = stratified_group_folds(labels, groups, 5, seed=0)
    for group in np.unique(groups):
        assert len(set(folds[groups == group])) == 1
    overall = np.bincount(labels, minlength=3) / len(labels)
    for fold in range(5):
        share = np.bincount(labels[folds == fold], minlength=3) / (folds == fold).sum()
        assert np.abs(share - overall).max() < 0.05
    assert np.array_equal(folds, stratified_group_folds(labels, groups, 5, seed=0))  # seeded: reproducible
