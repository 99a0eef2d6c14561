"""The analytes the calculators and importers read and write: LOINC codes and canonical UCUM units.

One table for both sides, so an imported case's Observations are exactly what the calculators look for. The
first LOINC code of an analyte is the one importers write; the others are accepted when reading any server.
Values in another unit are converted to the canonical one (`to_canonical`); an unknown unit is not guessed.

The second half is the table of units as text writes them ("14,000/mm3", "8.6 mg/dL", "38.2 °C"): their canonical
names, dimensions and conversions (`match_unit`, `canonical_unit`, `convert`), used by the grounding check.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

LOINC_SYSTEM = "http://loinc.org"
UCUM_SYSTEM = "http://unitsofmeasure.org"

Category = Literal["laboratory", "vital-signs"]


@dataclass(frozen=True)
class Analyte:
    key: str
    name: str
    loinc: tuple[str, ...]  # first: written by importers; all: accepted when reading
    display: str  # LOINC long common name of loinc[0]
    unit: str  # canonical UCUM unit
    category: Category
    factors: dict[str, float] = field(default_factory=dict)  # other UCUM unit -> factor to the canonical one


ANALYTES: dict[str, Analyte] = {
    a.key: a
    for a in (
        Analyte("temperature", "Body temperature", ("8310-5", "8331-1"), "Body temperature", "Cel",
                "vital-signs"),
        Analyte("heart_rate", "Heart rate", ("8867-4",), "Heart rate", "/min", "vital-signs"),
        Analyte("body_weight", "Body weight", ("29463-7", "3141-9"), "Body weight", "kg", "vital-signs",
                {"g": 1e-3, "[lb_av]": 0.45359237}),
        Analyte("respiratory_rate", "Respiratory rate", ("9279-1",), "Respiratory rate", "/min", "vital-signs"),
        Analyte("spo2", "Oxygen saturation (SpO2)", ("59408-5", "2708-6"),
                "Oxygen saturation in Arterial blood by Pulse oximetry", "%", "vital-signs"),
        Analyte("systolic_bp", "Systolic blood pressure", ("8480-6",), "Systolic blood pressure", "mm[Hg]",
                "vital-signs", {"mmHg": 1.0}),
        Analyte("diastolic_bp", "Diastolic blood pressure", ("8462-4",), "Diastolic blood pressure", "mm[Hg]",
                "vital-signs", {"mmHg": 1.0}),
        Analyte("gcs", "Glasgow coma score", ("9269-2",), "Glasgow coma score total", "{score}", "vital-signs"),
        Analyte("leukocytes", "Leukocytes", ("6690-2", "26464-8"),
                "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3, "10*3/mm3": 1.0}),
        Analyte("neutrophils", "Neutrophils", ("751-8", "26499-4"),
                "Neutrophils [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3}),
        Analyte("lymphocytes", "Lymphocytes", ("731-0", "26474-7"),
                "Lymphocytes [#/volume] in Blood by Automated count", "10*3/uL", "laboratory",
                {"10*9/L": 1.0, "/uL": 1e-3, "/mm3": 1e-3}),
        Analyte("band_neutrophils", "Band neutrophils", ("764-1", "26507-4"),
                "Neutrophils.band form/100 leukocytes in Blood by Manual count", "%", "laboratory"),
        Analyte("crp", "C-reactive protein", ("1988-5",), "C reactive protein [Mass/volume] in Serum or Plasma",
                "mg/L", "laboratory", {"mg/dL": 10.0}),
        Analyte("procalcitonin", "Procalcitonin", ("33959-8",), "Procalcitonin [Mass/volume] in Serum or Plasma",
                "ng/mL", "laboratory", {"ug/L": 1.0}),
        Analyte("d_dimer", "D-dimer", ("48065-7",), "Fibrin D-dimer FEU [Mass/volume] in Platelet poor plasma",
                "mg/L{FEU}", "laboratory", {"mg/L": 1.0, "ug/mL{FEU}": 1.0, "ng/mL{FEU}": 1e-3}),
        Analyte("ldh", "Lactate dehydrogenase", ("2532-0",),
                "Lactate dehydrogenase [Enzymatic activity/volume] in Serum or Plasma", "U/L", "laboratory"),
        Analyte("po2", "pO2", ("11556-8", "2703-7"), "Oxygen [Partial pressure] in Blood", "mm[Hg]", "laboratory",
                {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("pco2", "pCO2", ("11557-6", "2019-8"), "Carbon dioxide [Partial pressure] in Blood", "mm[Hg]",
                "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_po2", "Arterial pO2", ("2703-7",), "Oxygen [Partial pressure] in Arterial blood",
                "mm[Hg]", "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_pco2", "Arterial pCO2", ("2019-8",), "Carbon dioxide [Partial pressure] in Arterial blood",
                "mm[Hg]", "laboratory", {"kPa": 7.50062, "mmHg": 1.0}),
        Analyte("arterial_ph", "Arterial pH", ("2744-1",), "pH of Arterial blood", "[pH]", "laboratory",
                {"pH": 1.0}),
        Analyte("bun", "Urea nitrogen", ("3094-0", "6299-2", "22664-7"),
                "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", "laboratory",
                {"mmol/L": 2.801}),  # 22664-7 is urea in mmol/L; 1 mmol/L urea carries 2.801 mg/dL of nitrogen
        Analyte("creatinine", "Creatinine", ("2160-0", "38483-4"), "Creatinine [Mass/volume] in Serum or Plasma",
                "mg/dL", "laboratory", {"umol/L": 1 / 88.42}),
        Analyte("sodium", "Sodium", ("2951-2", "2947-0"), "Sodium [Moles/volume] in Serum or Plasma", "mmol/L",
                "laboratory", {"meq/L": 1.0}),
        Analyte("glucose", "Glucose", ("2345-7", "2339-0"), "Glucose [Mass/volume] in Serum or Plasma", "mg/dL",
                "laboratory", {"mmol/L": 18.016}),
        Analyte("hematocrit", "Hematocrit", ("4544-3", "20570-8"),
                "Hematocrit [Volume Fraction] of Blood by Automated count", "%", "laboratory"),
    )
}

BY_LOINC: dict[str, Analyte] = {}
for _analyte in ANALYTES.values():
    for _code in _analyte.loinc:
        BY_LOINC.setdefault(_code, _analyte)  # a code shared by two analytes belongs to the first listed


class UnitError(ValueError):
    pass


def to_canonical(analyte: Analyte, value: float, unit: str | None) -> float:
    """`value` in the analyte's canonical unit; a missing unit is taken as canonical, an unknown one refused."""
    if unit is None or unit == analyte.unit:
        return value
    if analyte.key == "temperature" and unit in ("[degF]", "degF"):
        return (value - 32) * 5 / 9
    factor = analyte.factors.get(unit)
    if factor is None:
        raise UnitError(f"{analyte.name}: unit {unit!r} is not convertible to {analyte.unit}")
    return value * factor


# --- Units as written in text and in records ------------------------------------------------------------------
# Canonical unit -> (dimension, factor to the dimension's base unit). Temperature in Fahrenheit is converted by
# formula; "years" is an age on the record's side and a duration in the narrative unless an age word precedes it.
UNITS: dict[str, tuple[str, float]] = {
    "10^6/uL": ("count", 1e6), "10^3/uL": ("count", 1e3), "/uL": ("count", 1.0),
    "g/dL": ("mass", 1e4), "g/L": ("mass", 1e3), "mg/dL": ("mass", 10.0), "mg/L": ("mass", 1.0),
    "ug/mL": ("mass", 1.0), "ng/mL": ("mass", 1e-3), "ug/L": ("mass", 1e-3), "ng/L": ("mass", 1e-6),
    "pg/mL": ("mass", 1e-6),
    "mmol/L": ("molar", 1.0), "umol/L": ("molar", 1e-3), "nmol/L": ("molar", 1e-6),
    "U/L": ("enzyme", 1.0),
    "Cel": ("temperature", 1.0), "degF": ("temperature", 1.0),
    "%": ("percent", 1.0),
    "mmHg": ("pressure", 1.0), "kPa": ("pressure", 7.50062),
    "/min": ("rate", 1.0),
    "mL/min/1.73m2": ("filtration", 1.0),
    "kg/m2": ("bmi", 1.0),
    "kg": ("body mass", 1.0), "lb": ("body mass", 0.45359237),
    "cm": ("length", 1.0), "mm": ("length", 0.1),
    "fL": ("cell volume", 1.0), "pg": ("cell mass", 1.0),
    "px": ("pixels", 1.0), "HU": ("density", 1.0),
    "year-old": ("age", 1.0), "years": ("age", 1.0),
    "class": ("class", 1.0),
}
DOSE = "dose"  # doses, durations and rates of administration: checked against the treatment knowledge base

_UL = r"(?:[uµμ]L|mm[3³]|cu ?mm)"
_X10 = r"(?:[x×*] ?)?10 ?[\^*]? ?"
# Order matters: the first alternative that matches wins, so compound units come before their prefixes.
UNIT_PATTERNS: list[tuple[str, str]] = [
    (rf"{_X10}[6⁶] ?/ ?{_UL}|{_X10}12 ?/ ?L", "10^6/uL"),
    (rf"{_X10}[3³] ?/ ?{_UL}|{_X10}9 ?/ ?L|K/[uµμ]L|G/L|[x×] ?10 ?\^? ?[3³9]", "10^3/uL"),
    (rf"(?:cells ?)?/ ?{_UL}|per ?[uµμ]L", "/uL"),
    (r"mL ?/ ?min ?/ ?\{?1[.,]73[ _]?m[2²]\}?|mL ?/ ?min", "mL/min/1.73m2"),
    (r"mg ?/ ?kg(?: ?/ ?(?:d|day|h))?|mL ?/ ?kg(?: ?/ ?h)?|mL ?/ ?h|mg ?/ ?(?:day|d)|L ?/ ?min", DOSE),
    (r"g ?/ ?dL", "g/dL"), (r"g ?/ ?L", "g/L"), (r"mg ?/ ?dL", "mg/dL"), (r"mg ?/ ?L", "mg/L"),
    (r"(?:[uµμ]g|mcg) ?/ ?mL", "ug/mL"), (r"ng ?/ ?mL", "ng/mL"), (r"(?:[uµμ]g|mcg) ?/ ?L", "ug/L"),
    (r"ng ?/ ?L", "ng/L"), (r"pg ?/ ?mL", "pg/mL"),
    (r"mmol ?/ ?L|mEq ?/ ?L", "mmol/L"), (r"(?:[uµμ]mol|micromol) ?/ ?L", "umol/L"), (r"nmol ?/ ?L", "nmol/L"),
    (r"(?:IU|U|units) ?/ ?L", "U/L"),
    (r"[°º] ?C|deg(?:rees?)? ?C(?:elsius)?|Cel|C", "Cel"),
    (r"[°º] ?F|deg(?:rees?)? ?F(?:ahrenheit)?", "degF"),
    (r"%|percent", "%"),
    (r"mm ?\[?Hg\]?", "mmHg"), (r"kPa", "kPa"),
    (r"(?:beats?|breaths?) ?(?:/|per) ?min(?:ute)?|bpm|/ ?min|per ?min(?:ute)?", "/min"),
    (r"kg ?/ ?m[2²]", "kg/m2"),
    (r"kg", "kg"), (r"lbs?", "lb"), (r"cm", "cm"), (r"mm", "mm"), (r"fL", "fL"), (r"pg", "pg"), (r"px", "px"),
    (r"HU", "HU"),
    (r"-? ?(?:years?|yrs?)[- ]old|y/o|yo", "year-old"),
    (r"-? ?(?:years?|yrs?)", "years"),
    (r"mg|mcg|[uµμ]g|g|IU|units?|mL|L|doses?|tablets?|puffs?|"
     r"(?:times|x) ?(?:daily|a day|per day|/ ?day|/ ?d)|x ?/ ?day|times|"
     r"-? ?(?:days?|d|weeks?|wks?|months?|hours?|hrs?|h|minutes?|mins?)", DOSE),
]
_UNIT_RE = re.compile(
    r" ?(?:" + "|".join(f"(?P<u{i}>{p})" for i, (p, _) in enumerate(UNIT_PATTERNS)) + r")(?![A-Za-z0-9])"
)
_UNIT_KEYS = {f"u{i}": key for i, (_, key) in enumerate(UNIT_PATTERNS)}
# Record units written as UCUM codes that the patterns above do not read.
UCUM_ALIASES = {"a": "years", "10*3/uL": "10^3/uL", "10*6/uL": "10^6/uL", "{score}": None}


def match_unit(text: str, position: int) -> tuple[str, int] | None:
    """The canonical unit written right after a number, and where it ends."""
    m = _UNIT_RE.match(text, position)
    if m is None:
        return None
    return _UNIT_KEYS[m.lastgroup or ""], m.end()


def canonical_unit(unit: str | None) -> str | None:
    if not unit:
        return None
    if unit in UCUM_ALIASES:
        return UCUM_ALIASES[unit]
    found = match_unit(" " + unit, 0)
    return found[0] if found and found[1] == len(unit) + 1 and found[0] != DOSE else None


# Molar mass (g/mol) of analytes the record may report in mass or molar units; BUN counts urea's two nitrogens.
MOLAR_MASS = {"creatinine": 113.12, "glucose": 180.16, "bun": 28.02}


def convert(value: float, unit: str, target: str, analyte: str | None) -> float | None:
    """`value` in `unit` expressed in `target`; None when the two do not measure the same thing."""
    (dimension, factor), (target_dimension, target_factor) = UNITS[unit], UNITS[target]
    if dimension == target_dimension == "temperature":
        celsius = (value - 32) / 1.8 if unit == "degF" else value
        return celsius * 1.8 + 32 if target == "degF" else celsius
    if dimension == target_dimension:
        return value * factor / target_factor
    if analyte in MOLAR_MASS and {dimension, target_dimension} == {"mass", "molar"}:
        base = value * factor  # mg/L or mmol/L
        base = base / MOLAR_MASS[analyte] if dimension == "mass" else base * MOLAR_MASS[analyte]
        return base / target_factor
    return None


# The units a value written without one may be in: "WBC 14,000" and "WBC 14" both mean 14 x10^3/uL.
BARE_ALTERNATIVES = {
    "count": ("10^3/uL", "/uL"),
    "mass": ("mg/L", "mg/dL", "g/L", "g/dL"),
    "temperature": ("Cel", "degF"),
}
