"""`medconsult fusion cv`: the radiograph encoder's configurations compared by patient-grouped cross-validation on
the paediatric set, each figure with a patient-bootstrap 95% interval."""

from __future__ import annotations

import platform
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

from medconsult.fusion.finetune import TrainConfig, cross_validate, paediatric_metrics
from medconsult.fusion.paediatric import CLASSES, FOLDER, read_manifest
from medconsult.fusion.trunk_cache import trunk_outputs
from medconsult.stats import grouped_bootstrap_ci

BOOTSTRAP_REPLICATES = 1000


def compare_configs(
    data_dir: Path,
    cache_dir: Path,
    configs: list[TrainConfig],
    folds: int = 5,
    log: Callable[[str], None] = print,
) -> dict:
    images = read_manifest(data_dir)
    trunk = trunk_outputs(images.files, cache_dir / "trunk-kermany.npz", log=log)
    results = []
    for config in configs:
        log(f"cross-validating {config}")
        figures, probabilities = cross_validate(trunk, images.labels, images.groups, config, folds)
        figures["metrics"] = _with_intervals(probabilities, images.labels, images.groups)
        results.append(figures)
        log(f"  {figures['metrics']} precision@5 {figures['precision_at_5']} ({figures['seconds']} s)")
    return {
        "data": {
            "set": FOLDER,
            "images": len(images.labels),
            "patients": int(len(np.unique(images.groups))),
            "classes": list(CLASSES),
        },
        "machine": {
            "python": platform.python_version(),
            "processor": platform.processor() or platform.machine(),
        },
        "results": results,
    }


def _with_intervals(probabilities: np.ndarray, labels: np.ndarray, groups: np.ndarray) -> dict:
    names = paediatric_metrics(probabilities, labels).keys()
    indices = list(range(len(labels)))
    figures = {}
    for name in names:

        def statistic(drawn: list[int], name: str = name) -> float:
            return paediatric_metrics(probabilities[drawn], labels[drawn])[name]

        point, low, high = grouped_bootstrap_ci(indices, list(groups), statistic, n=BOOTSTRAP_REPLICATES)
        figures[name] = {"value": round(point, 4), "ci95": [round(low, 4), round(high, 4)]}
    return figures


def default_configs(epochs: int | None = None) -> list[TrainConfig]:
    configs = [TrainConfig(mode="frozen", epochs=30, learning_rate=3e-3), TrainConfig(mode="tail")]
    return [replace(config, epochs=epochs) for config in configs] if epochs else configs
