"""The paediatric radiographs (cxr_kermany_pediatric_ccby): normal / bacterial / viral pneumonia, children 1-5 years."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FOLDER = "cxr_kermany_pediatric_ccby"
CLASSES = ("normal", "bacterial", "viral")


@dataclass(frozen=True)
class LabelledImages:
    files: list[Path]
    labels: np.ndarray  # index into CLASSES
    groups: np.ndarray  # patient id: never split across training and testing


def read_manifest(data_dir: Path) -> LabelledImages:
    folder = Path(data_dir) / FOLDER
    with (folder / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    return LabelledImages(
        files=[folder / row["image"] for row in rows],
        labels=np.array([CLASSES.index(row["label"]) for row in rows]),
        groups=np.array([row["patient"] for row in rows]),
    )
