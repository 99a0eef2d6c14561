"""`medconsult fusion predict`: the etiology columns for every radiograph of a folder, in one process.

Columns: file, normal, bacterial, viral, covid19, fungal, other (probabilities), abstained, reason. Today's
estimator is the radiograph encoder trained on children: it speaks only for a paediatric population and only for the
classes it was trained on (normal, bacterial, viral); a class it cannot estimate is left empty, not written as 0.
For adults, or when the population is not given, every row abstains and says why: the image alone does not tell an
adult's bacterial from viral pneumonia (measured near chance), and the population is not inferred from the image.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from medconsult.fusion.bundle import CalibratedEncoder, load_encoder
from medconsult.fusion.trunk_cache import input_pixels
from medconsult.imaging.io import ImageLoadError

Population = Literal["adult", "paediatric"]
COLUMNS = ("normal", "bacterial", "viral", "covid19", "fungal", "other")
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
BATCH = 32
NO_POPULATION = "population not given (it is not inferred from the image)"
NO_ADULT_ESTIMATOR = "no estimator validated for adults: the image alone is near chance for adult etiology"


@dataclass(frozen=True)
class Row:
    file: str
    probabilities: dict[str, float]
    abstained: bool
    reason: str = ""


def radiographs(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )


def predict_folder(
    folder: Path, population: Population | None, encoder: CalibratedEncoder | None = None
) -> Iterator[Row]:
    files = radiographs(folder)
    if population != "paediatric":
        reason = NO_POPULATION if population is None else NO_ADULT_ESTIMATOR
        yield from (Row(str(path.relative_to(folder)), {}, True, reason) for path in files)
        return
    encoder = encoder or load_encoder()
    for start in range(0, len(files), BATCH):
        yield from _paediatric_rows(folder, files[start : start + BATCH], encoder)


def _paediatric_rows(folder: Path, files: list[Path], encoder: CalibratedEncoder) -> Iterator[Row]:
    pixels, readable = [], []
    for path in files:
        try:
            pixels.append(input_pixels(path))
            readable.append(path)
        except ImageLoadError as error:  # one unreadable file abstains alone
            yield Row(str(path.relative_to(folder)), {}, True, f"unreadable: {error}")
    if not pixels:
        return
    for path, row in zip(readable, encoder.classify_pixels(np.stack(pixels)), strict=True):
        yield Row(str(path.relative_to(folder)), dict(zip(encoder.classes, row.tolist(), strict=True)), False)


def write_csv(rows: Iterator[Row], out: Path) -> int:
    out.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", *COLUMNS, "abstained", "reason"])
        for row in rows:
            values = [
                f"{row.probabilities[name]:.4f}" if name in row.probabilities else "" for name in COLUMNS
            ]
            writer.writerow([row.file, *values, str(row.abstained).lower(), row.reason])
            count += 1
    return count
