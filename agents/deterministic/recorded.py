"""What the record says: the values and flags the case's facts state, per analyte, read with the same scanner
as the narrative so that the two sides compare like for like."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from medconsult.agents.deterministic.quantities import (
    Quantity,
    find_analytes,
    related_analytes,
    scan_quantities,
)
from medconsult.clinical.codes import canonical_unit
from medconsult.records import Fact


# --- What the record says -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RecordedValue:
    fact_id: str
    analyte: str | None
    value: float
    decimals: int
    unit: str | None
    shown: str  # as the fact writes it, for the flag's reason


Status = Literal["high", "low", "normal"]


@dataclass(frozen=True)
class RecordedStatus:
    fact_id: str
    analyte: str
    status: Status
    description: str


_TREND_RE = re.compile(r"(?:rising|falling|stable)(?::| from)\s*(.*?)\s+since\b")  # "rising from 45 since"
_INTERPRETATION_RE = re.compile(r"\[([A-Za-z ]+)\]")
_INTERPRETATIONS: dict[str, Status] = {
    "h": "high", "hh": "high", "high": "high", "critical high": "high", "above high normal": "high",
    "l": "low", "ll": "low", "low": "low", "critical low": "low", "below low normal": "low",
    "n": "normal", "normal": "normal",
}
_REFERENCE_RE = re.compile(r"\(ref ([^)]*)\)")
_RANGE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)?\s*-\s*(\d+(?:\.\d+)?)|^\s*([<>≤≥]=?)\s*(\d+(?:\.\d+)?)")


class Record:
    """The facts, indexed by what they state: values per analyte, dates, and the H/L status of lab results."""

    def __init__(self, facts: list[Fact]) -> None:
        self.ids = {fact.id for fact in facts}
        self.texts = [fact.text for fact in facts]
        self.values: list[RecordedValue] = []
        self.statuses: list[RecordedStatus] = []
        for fact in facts:
            self._index(fact)

    def _index(self, fact: Fact) -> None:
        reference = _REFERENCE_RE.search(fact.text)  # a reference range states no value of the patient's
        in_reference = range(reference.start(), reference.end()) if reference else range(0)
        quantities = [
            q for q in scan_quantities(fact.text, record=True)
            if q.kind not in ("date", "year") and q.number_start not in in_reference
        ]
        primary = _primary_analyte(fact, quantities)
        trend = _TREND_RE.search(fact.text)
        for position, q in enumerate(quantities):
            in_trend = trend is not None and trend.start(1) <= q.number_start < trend.end(1)
            first_observation = position == 0 and fact.kind in ("lab", "vital")
            analyte = q.analyte or (primary if in_trend or first_observation else None)
            shown = fact.text[q.number_start : q.end]
            self.values.append(RecordedValue(fact.id, analyte, q.value, q.decimals, q.unit, shown))
        if isinstance(fact.value, int | float) and not isinstance(fact.value, bool):
            unit = canonical_unit(fact.unit)
            shown = f"{fact.value:g} {fact.unit or ''}".strip()
            self.values.append(
                RecordedValue(fact.id, primary, float(fact.value), _decimals(fact.value), unit, shown)
            )
        if primary and fact.kind in ("lab", "vital"):
            status = _status(fact, primary, quantities)
            if status:
                self.statuses.append(status)

    def about(self, analyte: str) -> list[RecordedValue]:
        relatives = related_analytes(analyte)
        return [v for v in self.values if v.analyte in relatives]

    def mentions_date(self, date: str) -> bool:
        iso = date if "-" in date else _iso(date)
        return any(date in text or (iso and iso in text) for text in self.texts)

    def mentions_year(self, year: int) -> bool:
        pattern = re.compile(rf"(?<!\d){year}(?!\d)")
        return any(pattern.search(text) for text in self.texts)

    def mentions(self, phrase: str) -> bool:
        pattern = re.compile(rf"\b{re.escape(phrase)}\b", re.IGNORECASE)
        return any(pattern.search(text) for text in self.texts)


def _primary_analyte(fact: Fact, quantities: list[Quantity]) -> str | None:
    """What a fact is about: the analyte of its first value, else the first named in its display."""
    if fact.kind == "demographics":
        return "age"
    first = quantities[0] if quantities else None
    if first and first.analyte:
        return first.analyte
    display = fact.text[: first.number_start] if first else fact.text
    named = find_analytes(display)
    return named[0].analyte if named else None


def _decimals(value: float) -> int:
    text = f"{value:.6f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


def _iso(date: str) -> str | None:
    """"28/09/2018" as "2018-09-28" (day first, as in the records this project reads)."""
    day, month, year = date.split("/")
    return f"{year}-{int(month):02d}-{int(day):02d}" if int(month) <= 12 else None


def _status(fact: Fact, analyte: str, quantities: list[Quantity]) -> RecordedStatus | None:
    """The record's own reading of a result: its interpretation flag, else its value against its reference
    range (only when a single range is given: several ranges, by age or sex, are not for this code to pick)."""
    name = fact.text[: quantities[0].end] if quantities else fact.text
    for m in _INTERPRETATION_RE.finditer(fact.text):
        status = _INTERPRETATIONS.get(m.group(1).strip().lower())
        if status:
            return RecordedStatus(fact.id, analyte, status, f"{name} is flagged [{m.group(1)}]")
    reference = _REFERENCE_RE.search(fact.text)
    value = fact.value if isinstance(fact.value, int | float) else (quantities[0].value if quantities else None)
    if reference is None or value is None or ";" in reference.group(1):
        return None
    status = _against_range(float(value), reference.group(1))
    if status is None:
        return None
    where = {"high": "above", "low": "below", "normal": "within"}[status]
    return RecordedStatus(fact.id, analyte, status, f"{name} is {where} its reference range {reference.group(1)}")


def _against_range(value: float, reference: str) -> Status | None:
    m = _RANGE_RE.match(reference)
    if m is None:
        return None
    if m.group(2) is not None:
        low = float(m.group(1)) if m.group(1) else None
        high = float(m.group(2))
    else:
        bound = float(m.group(4))
        low, high = (None, bound) if m.group(3).startswith(("<", "≤")) else (bound, None)
    if high is not None and value > high:
        return "high"
    if low is not None and value < low:
        return "low"
    return "normal"
