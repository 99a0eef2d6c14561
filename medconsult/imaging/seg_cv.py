"""Patient-grouped k-fold cross-validation of the lung-segmentation training (`medconsult seg cv`).

The shipped bundle's card reports Dice on one validation split that also chose its configuration: optimistic. Here
every patient of the training set is held out exactly once: each fold's network is trained (train_seg.fit, the same
configuration and seed) on the other folds' patients only and measured on its own, so every image gets a Dice from a
network that never saw its patient. A second data set (the non-commercial pairs, optional) is an external check:
every fold's network is measured on all of it.

The quality warnings that inference gives (segmentation.LungMasks.quality_warnings) are checked against the same
Dice: how often one fires on an image segmented badly (Dice < 0.90), and how often on a good one.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from medconsult.imaging.segmentation import LungSegmenter
from medconsult.imaging.train_seg import Pair, TrainConfig, fit, image_dice, load_pairs, write_bundle
from medconsult.stats import grouped_mean_ci

POOR_DICE = 0.90


def patient_folds(pairs: list[Pair], k: int, seed: int) -> list[list[Pair]]:
    """`k` held-out sets of whole patients (the manifest's `group`), patients shuffled by `seed` and dealt in turn."""
    groups = sorted({p.group for p in pairs})
    if len(groups) < k:
        raise ValueError(f"{len(groups)} patients cannot make {k} folds")
    random.Random(seed).shuffle(groups)
    fold_of = {group: index % k for index, group in enumerate(groups)}
    return [[p for p in pairs if fold_of[p.group] == fold] for fold in range(k)]


def _measured(segmenter: LungSegmenter, pairs: list[Pair], fold: int) -> list[dict[str, Any]]:
    rows = []
    for pair in pairs:
        dice, warnings = image_dice(segmenter, pair)
        rows.append({"image": pair.name, "patient": pair.group, "fold": fold, "dice": round(dice, 4),
                     "warnings": warnings})
    return rows


def cross_validate(data_dir: Path, config: TrainConfig = TrainConfig(), k: int = 5, external: Path | None = None,
                   log: Callable[[str], None] = print) -> dict[str, Any]:
    pairs = load_pairs(data_dir)
    others = load_pairs(external) if external else []
    held_out, outside, seconds = [], [], []
    for fold, held in enumerate(patient_folds(pairs, k, config.seed)):
        training = [p for p in pairs if p not in held]
        log(f"fold {fold + 1}/{k}: {len(training)} training images, {len(held)} held out "
            f"({len({p.group for p in held})} patients)")
        network, took = fit(training, config, log=lambda line: None)
        seconds.append(round(took, 1))
        with tempfile.TemporaryDirectory() as folder:
            write_bundle(Path(folder), network, config, training, held, took)
            segmenter = LungSegmenter(Path(folder))
            held_out += _measured(segmenter, held, fold)
            outside += _measured(segmenter, others, fold)
        fold_dice = [r["dice"] for r in held_out if r["fold"] == fold]
        log(f"  Dice mean {np.mean(fold_dice):.4f}, worst {min(fold_dice):.4f} ({took:.0f} s)")
    return {
        "data": data_dir.name,
        "folds": k,
        "config": {key: list(v) if isinstance(v, tuple) else v for key, v in asdict(config).items()},
        "cross_validation": summary(held_out),
        "per_fold": [summary([r for r in held_out if r["fold"] == fold]) for fold in range(k)],
        "warnings": warning_calibration(held_out),
        "external": ({"data": external.name, **summary(outside), "note": f"mean over the {k} fold networks"}
                     if external else None),
        "training_seconds": seconds,
        "per_image": held_out,
        "external_per_image": outside,
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean Dice with a patient-bootstrap 95% interval, the worst image, and the counts."""
    if not rows:
        return {"images": 0}
    dice = [r["dice"] for r in rows]
    mean, low, high = grouped_mean_ci(dice, [r["patient"] for r in rows])
    worst = min(rows, key=lambda r: r["dice"])
    return {"images": len(rows), "patients": len({r["patient"] for r in rows}), "dice_mean": round(mean, 4),
            "dice_95ci": [round(low, 4), round(high, 4)], "dice_min": worst["dice"], "worst_image": worst["image"],
            "below_0.90": sum(d < POOR_DICE for d in dice)}


def warning_calibration(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """How often a quality warning fires on poorly segmented images (Dice < 0.90) and on the others."""
    poor = [r for r in rows if r["dice"] < POOR_DICE]
    good = [r for r in rows if r["dice"] >= POOR_DICE]
    return {
        "poor_images": len(poor), "poor_warned": sum(bool(r["warnings"]) for r in poor),
        "good_images": len(good), "good_warned": sum(bool(r["warnings"]) for r in good),
        "definition": f"poor: Dice < {POOR_DICE}; warned: segmentation.LungMasks.quality_warnings() not empty",
    }
