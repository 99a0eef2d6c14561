"""Build the latent model's inputs from the reference cases, and measure it: adult etiology by modality.

The adult etiology head is evaluated by cross-validation grouped by patient on the ieee8023 development cases, the
only adult set with more than one cause (Hannover is all COVID-19: a model could learn the hospital, so it never
trains or tests the etiology head). Every fold retrains the whole latent model without the held-out patients, then
embeds them four ways: image only, text only, measurements only, and fused. Temperatures are cross-fitted: each
fold's probabilities use a temperature fitted on the other folds' held-out logits, so calibration is measured on
cases it never saw. Intervals are 95% patient-bootstrap intervals.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np

from medconsult.fusion.bundle import CalibratedEncoder, load_encoder_metadata
from medconsult.fusion.cases import ReferenceCase
from medconsult.fusion.finetune import fit_temperature, softmax
from medconsult.fusion.latent import (
    LatentConfig,
    LatentSpace,
    Targets,
    embed,
    expert_logits,
    population_logits,
    train_latent,
)
from medconsult.fusion.metrics import (
    expected_calibration_error,
    precision_at_k,
    roc_auc,
    stratified_group_folds,
)
from medconsult.fusion.modalities import (
    MODALITIES,
    ModalityInputs,
    embed_texts,
    image_features,
    measurement_vector,
)
from medconsult.fusion.paediatric import CLASSES as PAEDIATRIC_CLASSES
from medconsult.importers.model import pseudonymous_mrn
from medconsult.stats import grouped_bootstrap_ci

ADULT_MIN_CASES = 3  # an adult class with fewer labelled cases gets no output: it cannot be learnt or validated
EVALUATED_SOURCE = "ieee8023"
VIEWS: dict[str, tuple[str, ...]] = {
    "image": ("image",), "text": ("text",), "measurements": ("measurements",), "fused": MODALITIES,
    "experts": MODALITIES,  # each present modality's own logits, summed (a product of experts in the same space)
}
BOOTSTRAP_REPLICATES = 1000


def build_inputs(
    cases: list[ReferenceCase], encoder: CalibratedEncoder, cache_dir: Path | None = None, log=print
) -> ModalityInputs:
    images, image_present = image_features([c.image for c in cases], encoder, cache_dir=cache_dir, log=log)
    texts, text_present = embed_texts([c.history for c in cases])
    rows = [measurement_vector(c.age_band, c.measurements) for c in cases]
    return ModalityInputs(
        {"image": images, "text": texts, "measurements": np.stack([r[0] for r in rows])},
        {"image": image_present, "text": text_present, "measurements": np.array([r[1] for r in rows])},
    )


def adult_classes(cases: list[ReferenceCase]) -> tuple[str, ...]:
    counts = Counter(c.label for c in cases if c.source == EVALUATED_SOURCE)
    return tuple(sorted(label for label, n in counts.items() if n >= ADULT_MIN_CASES))


def encoder_held_out(cases: list[ReferenceCase]) -> np.ndarray:
    """The Kermany children the radiograph encoder never trained on (its calibration patients, the paediatric
    suite's source). No latent model learns their labels either, so what it retrieves for them, and how it places
    them, owes nothing to their own labels."""
    trained = frozenset(load_encoder_metadata()["training"].get("patient_mrns", []))
    return np.array([c.source == "kermany" and pseudonymous_mrn(c.patient_group) not in trained for c in cases])


def targets_for(cases: list[ReferenceCase], adult: tuple[str, ...], train_rows: np.ndarray) -> Targets:
    """Paediatric head: Kermany, less the children the encoder held out; adult head: the ieee8023 cases among
    `train_rows`, in an adult class."""
    paediatric = np.array([PAEDIATRIC_CLASSES.index(c.label) if c.source == "kermany" else -1 for c in cases])
    paediatric[encoder_held_out(cases)] = -1
    adult_labels = np.array([
        adult.index(c.label) if c.source == EVALUATED_SOURCE and c.label in adult else -1 for c in cases
    ])
    adult_labels[~train_rows] = -1
    paediatric[~train_rows] = -1
    classes = {"paediatric": PAEDIATRIC_CLASSES, "adult": adult}
    return Targets(classes, {"paediatric": paediatric, "adult": adult_labels})


def pairable(cases: list[ReferenceCase]) -> np.ndarray:
    return np.array([c.source != "kermany" for c in cases])


def train_final(
    cases: list[ReferenceCase], inputs: ModalityInputs, config: LatentConfig
) -> tuple[LatentSpace, tuple[str, ...]]:
    adult = adult_classes(cases)
    targets = targets_for(cases, adult, np.ones(len(cases), dtype=bool))
    return train_latent(inputs, targets, config, pairable(cases)), adult


def adult_cross_validation(
    cases: list[ReferenceCase],
    inputs: ModalityInputs,
    config: LatentConfig,
    folds: int = 5,
    log: Callable[[str], None] = print,
) -> tuple[dict, list[LatentSpace], dict[str, int]]:
    """(figures, the fold models, each evaluated patient's fold). A fold's model never saw its patients: the
    estimate for a development case comes from it (cross-fitting), never from the model trained on everyone."""
    adult = adult_classes(cases)
    evaluated = np.array([c.source == EVALUATED_SOURCE and c.label in adult for c in cases])
    rows = np.flatnonzero(evaluated)
    labels = np.array([adult.index(cases[i].label) for i in rows])
    groups = np.array([cases[i].patient_group for i in rows])
    fold_of = stratified_group_folds(labels, groups, folds, config.seed)
    logits = {view: np.zeros((len(rows), len(adult))) for view in VIEWS}
    neighbours_same = {view: np.full(len(rows), np.nan) for view in VIEWS}
    started = time.perf_counter()
    models: list[LatentSpace] = []
    for fold in range(folds):
        held = rows[fold_of == fold]
        train_rows = np.ones(len(cases), dtype=bool)
        train_rows[held] = False
        model = train_latent(inputs, targets_for(cases, adult, train_rows), config, pairable(cases))
        models.append(model)
        reference = np.flatnonzero(train_rows & evaluated)
        reference_embeddings = embed(model, inputs.subset(reference))
        reference_labels = np.array([adult.index(cases[i].label) for i in reference])
        for view, modalities in VIEWS.items():
            embeddings = embed(model, inputs.subset(held).only(modalities))
            if view == "experts":
                logits[view][fold_of == fold] = expert_logits(model, inputs.subset(held), "adult")
            else:
                logits[view][fold_of == fold] = population_logits(model, embeddings, "adult")
            neighbours_same[view][fold_of == fold] = _same_label_at_5(
                embeddings, labels[fold_of == fold], reference_embeddings, reference_labels
            )
        log(f"adult fold {fold + 1}/{folds}: {time.perf_counter() - started:.0f} s")
    coverage = {view: _coverage(inputs.subset(rows), modalities) for view, modalities in VIEWS.items()}
    results = {
        view: {
            "cases_with_modality": int(coverage[view].sum()),
            **_figures(_cross_fitted(logits[view], labels, fold_of), labels, groups, neighbours_same[view], adult),
        }
        for view in VIEWS
    }
    temperature = fit_temperature(logits["fused"], labels)
    patient_fold = {str(g): int(f) for g, f in zip(groups, fold_of, strict=True)}
    return {
        "classes": list(adult),
        "cases": len(rows),
        "patients": len(np.unique(groups)),
        "label_counts": {c: int((labels == i).sum()) for i, c in enumerate(adult)},
        "majority_class_top1": round(float(np.bincount(labels).max() / len(labels)), 4),
        "folds": folds,
        "views": results,
        "fused_temperature": round(float(temperature), 4),
        "config": config.to_json(),
        "elapsed_s": round(time.perf_counter() - started, 1),
    }, models, patient_fold


def _coverage(inputs: ModalityInputs, modalities: tuple[str, ...]) -> np.ndarray:
    return np.any([inputs.present[m] for m in modalities], axis=0)


def _same_label_at_5(query: np.ndarray, labels: np.ndarray, reference: np.ndarray, ref_labels: np.ndarray):
    """Per query: the share of its 5 nearest reference cases with its label (NaN for a query with no modality)."""
    out = np.full(len(query), np.nan)
    has = np.linalg.norm(query, axis=1) > 0
    for i in np.flatnonzero(has):
        out[i] = precision_at_k(query[i : i + 1], labels[i : i + 1], reference, ref_labels, k=5)
    return out


def _cross_fitted(logits: np.ndarray, labels: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    probabilities = np.zeros_like(logits)
    for fold in np.unique(fold_of):
        inside = fold_of == fold
        temperature = fit_temperature(logits[~inside], labels[~inside])
        probabilities[inside] = softmax(logits[inside], temperature)
    return probabilities


def adult_metrics(probabilities: np.ndarray, labels: np.ndarray, classes: tuple[str, ...]) -> dict[str, float]:
    predicted = probabilities.argmax(axis=1)
    recalls = [float((predicted[labels == k] == k).mean()) for k in range(len(classes)) if (labels == k).any()]
    figures = {
        "top1": float((predicted == labels).mean()),
        "macro_recall": float(np.mean(recalls)),
        "ece": expected_calibration_error(probabilities, labels),
    }
    for k, name in enumerate(classes):
        figures[f"auc_{name}"] = roc_auc(labels == k, probabilities[:, k])
    if "covid-19" in classes:  # within one source: the model cannot have learnt a hospital
        figures["covid19_vs_other_auc"] = figures["auc_covid-19"]
    return figures


def _figures(
    probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray, same_at_5: np.ndarray, classes: tuple[str, ...]
) -> dict:
    indices = list(range(len(labels)))
    figures = {}
    for name in adult_metrics(probabilities, labels, classes):

        def statistic(drawn: list[int], name: str = name) -> float:
            return adult_metrics(probabilities[drawn], labels[drawn], classes)[name]

        point, low, high = grouped_bootstrap_ci(indices, list(groups), statistic, n=BOOTSTRAP_REPLICATES)
        figures[name] = {"value": round(point, 4), "ci95": [round(low, 4), round(high, 4)]}
    figures["precision_at_5"] = round(float(np.nanmean(same_at_5)), 4) if np.isfinite(same_at_5).any() else None
    return figures
