"""`medconsult fusion predict`: the etiology columns for every radiograph of a folder, in one process.

Columns: file, normal, bacterial, viral, covid19, fungal, other (probabilities), abstained, reason. Each row is the
`etiology_estimate` tool's answer for the image alone (medconsult.fusion.service): a paediatric population reads the
paediatric classifier (normal, bacterial, viral), an adult one the shared latent space's adult head (the classes it
could learn); a class a model cannot estimate is left empty, never written as 0. The population is not inferred
from the image (a model would learn the hospital, not the age): without `--population` every row abstains and says
why. An abstaining row keeps its probabilities where the model gave some, with the reason it abstained.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from medconsult.config import Settings
from medconsult.fusion.service import CaseView, FusionService
from medconsult.imaging.io import ImageLoadError, NotAChestRadiograph, check_chest_radiograph, read_radiograph

Population = Literal["adult", "paediatric"]
COLUMNS = ("normal", "bacterial", "viral", "covid19", "fungal", "other")
CLASS_OF_COLUMN = {"covid19": "covid-19"}
IMAGE_SUFFIXES = {".dcm", ".dicom", ".png", ".jpg", ".jpeg"}
NO_POPULATION = "population not given (it is not inferred from the image)"


@dataclass(frozen=True)
class Row:
    file: str
    probabilities: dict[str, float]  # by column name; a column without a value is empty
    abstained: bool
    reason: str = ""


def radiographs(folder: Path) -> list[Path]:
    return sorted(
        path for path in folder.rglob("*") if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()
    )


def predict_folder(
    folder: Path, population: Population | None, service: FusionService | None = None
) -> Iterator[Row]:
    files = radiographs(folder)
    if population is None:
        yield from (Row(str(path.relative_to(folder)), {}, True, NO_POPULATION) for path in files)
        return
    service = service or FusionService(Settings())
    for path in files:
        yield _row(folder, path, population, service)


def _row(folder: Path, path: Path, population: Population, service: FusionService) -> Row:
    name = str(path.relative_to(folder))
    try:
        check_chest_radiograph(read_radiograph(path))
    except (ImageLoadError, NotAChestRadiograph) as error:  # one bad file abstains alone
        return Row(name, {}, True, f"unreadable: {error}" if isinstance(error, ImageLoadError) else str(error))
    estimate = service.estimate(CaseView(image=path, population=population))
    values = {column: estimate.probabilities.get(CLASS_OF_COLUMN.get(column, column)) for column in COLUMNS}
    return Row(name, {c: v for c, v in values.items() if v is not None}, estimate.abstained, estimate.reason or "")


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
