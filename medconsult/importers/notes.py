"""Numeric values stated in a case note's free text (temperature, SpO2, counts, CRP, procalcitonin, creatinine).

Conservative on purpose: a value is taken only when the analyte's name, a number and a unit follow each other
closely ("CRP (42.2 mg/dl)", "WBC (14.000 mm3)", "Tmax 38.9 C"); the unit is converted to the canonical one of
`medconsult.clinical.codes`; stated normal ranges are cut out first; a value outside a plausible range is dropped;
and an analyte stated with two different values ("CRP 106 mg/l ... rose to 300 mg/l") is dropped altogether,
since the note does not say which belongs to which day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from medconsult.clinical.codes import ANALYTES, UnitError, to_canonical

NOTE_TEXT = "value extracted from the case's clinical note"
METHOD_TEXT = "pattern match of analyte name, value and unit in the clinical note text; unit converted to UCUM"

MICRO = r"(?:µ|μ|u|\?)"  # "?" where a non-ASCII µ or ° was lost in the source's encoding
TIMES = r"(?:x|×|\*|\?)"
COUNT_UNITS = {
    TIMES + r"\s?10\s?(?:\^\s?9|⁹|9)\s?/\s?l": "10*9/L",
    r"g/l": "10*9/L",
    TIMES + r"\s?10\s?(?:\^\s?3|³|3)\s?/\s?(?:" + MICRO + r"l|mm(?:3|³))": "10*3/uL",
    r"k/" + MICRO + r"l": "10*3/uL",
    r"(?:cells\s?)?/\s?(?:" + MICRO + r"l|mm(?:3|³))": "/uL",
    r"mm(?:3|³)": "/uL",  # "WBC (14.000 mm3)": per cubic millimetre
}
PER_MINUTE = {r"(?:/\s?min|breaths/min|beats/min|bpm)": "/min"}


@dataclass(frozen=True)
class NotePattern:
    analyte: str
    names: str  # regex of the analyte's names
    units: dict[str, str]  # regex of a written unit -> UCUM unit
    plausible: tuple[float, float]  # in the canonical unit
    exclude: str | None = None  # a match whose text (or the 20 characters before) has this is not the analyte


PATTERNS: tuple[NotePattern, ...] = (
    NotePattern("temperature", r"fever|febrile|afebrile|temperature|temp|t\s?max|(?:hyper)?pyrexia",
                {r"(?:°|º|\?|\s?deg(?:rees?)?)?\s?c(?:elsius)?": "Cel",
                 r"(?:°|º|\?|\s?deg(?:rees?)?)\s?f(?:ahrenheit)?": "[degF]"}, (34.0, 43.5)),
    NotePattern("spo2", r"spo2|sp02|spo₂|(?:oxygen\s+|o2\s+)?saturation(?:\s+of\s+oxygen)?|o2\s?sats?|sats",
                {r"%": "%"}, (50.0, 100.0), exclude=r"sao2|arterial|blood\s+gas"),
    NotePattern("respiratory_rate", r"respiratory\s+(?:rate|frequency)|resp\.?\s+rate|rr", PER_MINUTE, (5.0, 70.0)),
    NotePattern("heart_rate", r"heart\s+rate|pulse(?:\s+rate)?|hr", PER_MINUTE, (25.0, 250.0),
                exclude=r"oximet"),
    NotePattern("leukocytes", r"wbc|white\s+(?:blood\s+)?cells?(?:\s+count)?|leu[ck]ocytes?(?:\s+count)?"
                r"|leu[ck]ocytosis|leu[ck]openia", COUNT_UNITS, (0.1, 200.0)),
    NotePattern("neutrophils", r"neutrophils?(?:\s+count)?|neutrophilia|neutropenia|anc", COUNT_UNITS,
                (0.01, 150.0)),
    NotePattern("lymphocytes", r"lymphocytes?(?:\s+count)?|lymphopa?enia|lymphocytopenia|alc", COUNT_UNITS,
                (0.01, 100.0)),
    NotePattern("crp", r"crp|c[\s-]reactive\s+protein", {r"mg/dl": "mg/dL", r"mg/l": "mg/L"}, (0.0, 1000.0)),
    NotePattern("procalcitonin", r"procalcitonin|pct", {r"ng/ml": "ng/mL", MICRO + r"g/l": "ug/L"},
                (0.0, 1000.0)),
    NotePattern("creatinine", r"creatinine", {r"mg/dl": "mg/dL", MICRO + r"mol/l": "umol/L"}, (0.1, 25.0)),
)

NUMBER = r"(?P<number>\d+(?:[.,]\d+)?)"
GAP = r"[^\d.;]{0,30}?"  # between name and number: no other number, no sentence end
# "normal range 0.6 mg/dL - 1.2 mg/dL)", "normal < 0.1 ng/mL": cut up to the closing bracket or semicolon.
STATED_RANGE = re.compile(
    r"\b(?:normal|reference|ref\.?)(?:\s+(?:range|values?|limits?))?\s*(?:[:<>≤≥=?]|is|of|range)*\s*\d"
    r"[^();]{0,60}?(?=[);]|$)",
    re.IGNORECASE,
)
THOUSANDS = re.compile(r"\d{1,3}[.,]\d{3}")


def _compile(pattern: NotePattern) -> re.Pattern[str]:
    units = "|".join(f"(?:{u})" for u in sorted(pattern.units, key=len, reverse=True))
    return re.compile(
        rf"\b(?:{pattern.names})\b{GAP}{NUMBER}\s?(?P<unit>{units})(?![a-z])", re.IGNORECASE
    )


COMPILED = tuple((p, _compile(p)) for p in PATTERNS)


@dataclass(frozen=True)
class NoteValue:
    analyte: str
    value: float  # canonical unit of the analyte
    written: str  # the text it was read from


@dataclass(frozen=True)
class NoteExtraction:
    values: tuple[NoteValue, ...] = ()
    ambiguous: tuple[str, ...] = ()  # analytes stated with different values: none of them taken
    dropped: tuple[str, ...] = field(default=())  # "<analyte>: <why>" for single values not taken


def extract_values(note: str) -> NoteExtraction:
    text = STATED_RANGE.sub(" ", " ".join(note.split()))
    values: list[NoteValue] = []
    ambiguous: list[str] = []
    dropped: list[str] = []
    for pattern, regex in COMPILED:
        found: dict[float, NoteValue] = {}
        for match in regex.finditer(text):
            preceding = text[max(0, match.start() - 20) : match.end()]  # "arterial oxygen saturation"
            if pattern.exclude and re.search(pattern.exclude, preceding, re.IGNORECASE):
                continue
            value, why = _canonical_value(pattern, match)
            if value is None:
                dropped.append(f"{pattern.analyte}: {why}")
                continue
            found.setdefault(round(value, 6), NoteValue(pattern.analyte, value, match.group(0)))
        if len(found) > 1:
            ambiguous.append(pattern.analyte)
        elif found:
            values.extend(found.values())
    return NoteExtraction(tuple(values), tuple(ambiguous), tuple(dropped))


def _canonical_value(pattern: NotePattern, match: re.Match[str]) -> tuple[float | None, str]:
    unit = _ucum_unit(pattern, match.group("unit"))
    number = _parse_number(match.group("number"), per_microlitre=unit == "/uL")
    if number is None:
        return None, "number with an ambiguous separator"
    try:
        value = to_canonical(ANALYTES[pattern.analyte], number, unit)
    except UnitError:
        return None, f"unit {unit} not convertible"
    low, high = pattern.plausible
    if not low <= value <= high:
        return None, "value outside the plausible range"
    return round(value, 4), ""


def _ucum_unit(pattern: NotePattern, written: str) -> str:
    return next(ucum for regex, ucum in pattern.units.items() if re.fullmatch(regex, written, re.IGNORECASE))


def _parse_number(text: str, *, per_microlitre: bool) -> float | None:
    if THOUSANDS.fullmatch(text):
        # "14.000 /mm3" is fourteen thousand per microlitre; "1,234 mg/L" could be either: not taken.
        return float(re.sub(r"[.,]", "", text)) if per_microlitre else None
    return float(text.replace(",", "."))
