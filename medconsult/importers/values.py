"""Reading one measured value out of a CSV cell: parsed, converted to the canonical unit, checked for plausibility.

Anything that cannot be used is skipped with its reason counted in the import report; nothing here raises.
"""

from __future__ import annotations

import math

from medconsult.clinical.codes import ANALYTES, UnitError, to_canonical
from medconsult.importers.model import ImportReport
from medconsult.importers.table import Row, parse_number

# Wide bounds in the canonical unit: only to catch typing errors and swapped columns, not to judge clinically.
PLAUSIBLE: dict[str, tuple[float, float]] = {
    "temperature": (25.0, 45.0),
    "spo2": (20.0, 100.0),
    "leukocytes": (0.0, 500.0),
    "neutrophils": (0.0, 500.0),
    "lymphocytes": (0.0, 500.0),
    "crp": (0.0, 1000.0),
    "d_dimer": (0.0, 200.0),
    "ldh": (0.0, 20000.0),
    "po2": (0.0, 800.0),
    "pco2": (0.0, 300.0),
}


def cell_number(row: Row, column: str, report: ImportReport) -> float | None:
    """The cell as a number (inf/-inf kept), or None when empty or unreadable (counted)."""
    try:
        return parse_number(row.text(column))
    except ValueError:
        report.skip_value(f"{column}: not a number")
        return None


def canonical_value(analyte: str, value: float, unit: str, column: str, report: ImportReport) -> float | None:
    """`value` (in UCUM `unit`) in the analyte's canonical unit, or None when not convertible or implausible."""
    if not math.isfinite(value):
        raise ValueError("censored values are handled by the caller")
    try:
        converted = to_canonical(ANALYTES[analyte], value, unit)
    except UnitError:
        report.skip_value(f"{column}: unit {unit} not convertible")
        return None
    low, high = PLAUSIBLE.get(analyte, (-math.inf, math.inf))
    if not low <= converted <= high:
        report.skip_value(f"{column}: value outside the plausible range")
        return None
    return round(converted, 4)
