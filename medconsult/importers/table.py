"""Reading a data set's CSV: required columns checked up front, every cell read without ever raising on odd text."""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from medconsult.importers.model import ImportReport

T = TypeVar("T")


class SourceError(ValueError):
    """The source folder cannot be imported at all (no CSV, missing required columns)."""


@dataclass(frozen=True)
class Row:
    number: int  # line in the CSV file (the header is line 1)
    cells: dict[str, str]

    def text(self, column: str) -> str:
        return (self.cells.get(column) or "").strip()


@dataclass(frozen=True)
class Table:
    path: Path
    columns: tuple[str, ...]
    rows: tuple[Row, ...]


def read_table(folder: Path, csv_name: str, required: tuple[str, ...]) -> Table:
    path = folder / csv_name
    if not folder.is_dir():
        raise SourceError(f"{folder}: not a folder (expected a folder holding {csv_name} and the images)")
    if not path.is_file():
        raise SourceError(f"{folder}: no {csv_name} in this folder")
    with path.open(newline="", encoding="utf-8-sig", errors="replace") as handle:
        reader = csv.DictReader(handle)
        columns = tuple(c.strip() for c in reader.fieldnames or ())
        if not columns:
            raise SourceError(f"{path}: empty file, no header row")
        missing = [c for c in required if c not in columns]
        if missing:
            raise SourceError(f"{path}: required column(s) missing: {', '.join(missing)}")
        rows = tuple(
            Row(reader.line_num, {(k or "").strip(): v if isinstance(v, str) else "" for k, v in raw.items()})
            for raw in reader
        )
    return Table(path, columns, rows)


def missing_columns(table: Table, expected: tuple[str, ...]) -> list[str]:
    return [c for c in expected if c not in table.columns]


def parse_number(raw: str) -> float | None:
    """None for an empty cell; `inf`/`-inf` as such; ValueError for text that is not a number."""
    text = raw.strip().lower()
    if not text or text in ("nan", "na", "n/a", "none", "null"):
        return None
    if text in ("inf", "+inf", "infinity"):
        return math.inf
    if text in ("-inf", "-infinity"):
        return -math.inf
    value = float(text)  # raises ValueError for anything else
    if math.isnan(value):
        return None
    return value


def parse_day(raw: str) -> int | None:
    """A day offset: whole days; ValueError for non-numbers and non-whole or infinite values."""
    value = parse_number(raw)
    if value is None:
        return None
    if not math.isfinite(value) or value != int(value):
        raise ValueError(f"{raw!r} is not a whole number of days")
    return int(value)


def parse_flag(raw: str) -> bool | None:
    text = raw.strip().upper()
    return {"Y": True, "YES": True, "TRUE": True, "1": True, "N": False, "NO": False, "FALSE": False, "0": False}.get(
        text
    )


def parse_gender(raw: str) -> str:
    text = raw.strip().lower()
    if text in ("m", "male", "man"):
        return "male"
    if text in ("f", "w", "female", "woman"):  # Hannover writes w (weiblich)
        return "female"
    return "unknown"


def slug(text: str) -> str:
    """A piece of an identifier or case id: letters, digits, dot, dash, underscore."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip()).strip("-")[:40]


def rows_by_patient(
    source: Path, csv_name: str, required: tuple[str, ...], expected: tuple[str, ...], patient_column: str,
    usable: Callable[[Path, Row, ImportReport], T | None], report: ImportReport,
) -> dict[str, list[T]]:
    """A data set's CSV read into each patient's usable rows, in file order. `usable` turns a row into what the
    importer keeps (or None, having told the report why it skipped it); the report counts the rows and notes
    the optional columns the file lacks."""
    table = read_table(source, csv_name, required)
    report.rows = len(table.rows)
    report.missing_optional_columns = missing_columns(table, expected)
    by_patient: dict[str, list[T]] = {}
    for row in table.rows:
        kept = usable(source, row, report)
        if kept is not None:
            by_patient.setdefault(slug(row.text(patient_column)), []).append(kept)
    return by_patient
