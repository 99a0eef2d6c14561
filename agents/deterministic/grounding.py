"""Deterministic check that the model's narrative states only what the tools returned.

The schema already restricts citations to the case's fact ids; it cannot stop the free-text fields (summary,
reasoning, rationale...) from stating a lab value, a date or a score that no tool produced. This module reads
those fields and flags:

- numbers: a measurement (a number with a unit, or after an analyte name) that no fact states, or that differs
  from what the facts say about the same analyte; dates and years that no fact mentions;
- citations: a cited id that is not a fact, and a diagnosis whose reasoning gives a value for an analyte that the
  cited fact about that analyte does not give;
- findings: "elevated CRP", "leukocytosis"... where the record's own flag ([H]/[L]) or reference range says
  otherwise.

It is deliberately conservative: numbers that are not measurements (doses, durations, thresholds, targets,
ranges, list numbering, names with digits such as CURB-65 or COVID-19) are not checked, and no general language
understanding is attempted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, computed_field

from medconsult.agents.schemas import Differential, TreatmentPlan
from medconsult.records import Fact


class GroundingFlag(BaseModel):
    location: str  # e.g. "differential.diagnoses[0].reasoning", "plan.actions[2].rationale"
    statement: str  # the sentence flagged, as written
    claim: str  # the number with its unit, the citation or the finding that is unsupported
    reason: str
    kind: Literal["number", "citation", "finding"]


class GroundingReport(BaseModel):
    checked_numbers: int
    checked_citations: int
    flags: list[GroundingFlag]

    @computed_field  # in model_dump too, for the trace
    @property
    def unsupported(self) -> int:
        return len(self.flags)


# --- Analytes -------------------------------------------------------------------------------------------------
# Canonical key -> regex synonyms. Short acronyms are case-sensitive ("(?-i:...)") so that "hr" in "every 4 hr"
# or "cr" in a word are not read as heart rate or creatinine.
ANALYTE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "crp": (r"c[- ]reactive protein", r"(?-i:CRP)", r"hs-?(?-i:CRP)"),
    "wbc": (r"(?-i:WBC)(?: count)?", r"white (?:blood )?cell(?:s| count)?", r"white count", r"leu[ck]ocytes?",
            r"leu[ck]ocyte count"),
    "lymphocytes": (r"lymphocytes?(?: count)?", r"lymphs?"),
    "neutrophils": (r"neutrophils?(?: count)?", r"(?-i:ANC)"),
    "platelets": (r"platelets?(?: count)?", r"(?-i:PLT)"),
    "pdw": (r"platelet distribution width", r"(?-i:PDW)"),
    "rdw": (r"(?:erythrocyte|red cell) distribution width", r"(?-i:RDW)"),
    "erythrocytes": (r"erythrocytes", r"red blood cells", r"(?-i:RBC)"),
    "hb": (r"ha?emoglobin", r"(?-i:Hb|Hgb)"),
    "hba1c": (r"ha?emoglobin (?-i:A1c)", r"(?-i:HbA1c|A1c)"),
    "hematocrit": (r"ha?ematocrit", r"(?-i:Hct)"),
    "spo2": (r"(?-i:SpO2|SaO2)", r"(?:oxygen|O2) saturation", r"O2 sat", r"sats", r"saturation",
             r"pulse oximetry"),
    "pao2": (r"(?-i:PaO2|pO2)",),
    "paco2": (r"(?-i:PaCO2|pCO2)",),
    "fio2": (r"(?-i:FiO2)",),
    "temperature": (r"(?:body |oral |axillary |tympanic )?temperature", r"temp", r"(?-i:Tmax)"),
    "hr": (r"heart rate", r"(?-i:HR)", r"pulse(?: rate)?"),
    "rr": (r"respiratory rate", r"(?-i:RR)", r"resp(?:iration)? rate", r"breathing rate"),
    "bp": (r"blood pressure", r"(?-i:BP)"),
    "sbp": (r"systolic(?: blood pressure| (?-i:BP))?", r"(?-i:SBP)"),
    "dbp": (r"diastolic(?: blood pressure| (?-i:BP))?", r"(?-i:DBP)"),
    "pct": (r"procalcitonin", r"(?-i:PCT)"),
    "creatinine": (r"creatinine", r"(?-i:Cr)"),
    "bun": (r"(?:blood )?urea nitrogen", r"(?-i:BUN)", r"urea"),
    "egfr": (r"(?-i:eGFR|GFR)", r"(?:estimated )?glomerular filtration rate"),
    "d_dimer": (r"d-?dimer",),
    "ldh": (r"(?-i:LDH)", r"lactate dehydrogenase"),
    "lactate": (r"lactate", r"lactic acid"),
    "sodium": (r"sodium", r"(?-i:Na)"),
    "potassium": (r"potassium",),
    "chloride": (r"chloride",),
    "bicarbonate": (r"bicarbonate", r"(?-i:HCO3)", r"carbon dioxide"),
    "glucose": (r"glucose", r"blood sugar"),
    "ast": (r"(?-i:AST|SGOT)", r"aspartate aminotransferase"),
    "alt": (r"(?-i:ALT|SGPT)", r"alanine aminotransferase"),
    "bilirubin": (r"bilirubin",),
    "albumin": (r"albumin",),
    "troponin": (r"(?:cardiac )?troponin(?: (?-i:[IT]))?", r"(?-i:hs-?TnT|TnI|TnT)"),
    "il6": (r"interleukin-6", r"(?-i:IL-6)"),
    "ferritin": (r"ferritin",),
    "bnp": (r"(?-i:NT-proBNP|BNP)",),
    "ph": (r"(?-i:pH)",),
    "weight": (r"(?:body )?weight",),
    "height": (r"(?:body )?height",),
    "bmi": (r"(?-i:BMI)", r"body mass index"),
    "age": (r"age", r"aged"),
    "cd4": (r"(?-i:CD4)\+?(?: count)?",),
    "curb65": (r"(?-i:CURB)-? ?65",),
    "crb65": (r"(?-i:CRB)-? ?65",),
    "psi": (r"(?-i:PSI)", r"pneumonia severity index", r"(?-i:PORT) score"),
    "qsofa": (r"(?-i:qSOFA)",),
    "sirs": (r"(?-i:SIRS)",),
}

# A generic blood pressure matches either component, and each component matches a generic one.
ANALYTE_RELATIVES: dict[str, frozenset[str]] = {
    "bp": frozenset({"bp", "sbp", "dbp"}),
    "sbp": frozenset({"sbp", "bp"}),
    "dbp": frozenset({"dbp", "bp"}),
}


def _relatives(analyte: str) -> frozenset[str]:
    return ANALYTE_RELATIVES.get(analyte, frozenset({analyte}))


def _analyte_regex() -> tuple[re.Pattern[str], dict[str, str]]:
    # Longest synonym first, so that "haemoglobin A1c" wins over "haemoglobin" and "urea nitrogen" over "urea".
    entries = sorted(
        ((pattern, key) for key, patterns in ANALYTE_SYNONYMS.items() for pattern in patterns),
        key=lambda entry: -len(entry[0]),
    )
    groups = {f"a{i}": key for i, (_, key) in enumerate(entries)}
    body = "|".join(f"(?P<a{i}>{pattern})" for i, (pattern, _) in enumerate(entries))
    return re.compile(rf"(?<![\w-])(?:{body})(?![\w])", re.IGNORECASE), groups


ANALYTE_RE, _ANALYTE_GROUPS = _analyte_regex()


@dataclass(frozen=True)
class AnalyteMention:
    analyte: str
    start: int
    end: int


def find_analytes(text: str) -> list[AnalyteMention]:
    return [AnalyteMention(_ANALYTE_GROUPS[m.lastgroup or ""], m.start(), m.end()) for m in ANALYTE_RE.finditer(text)]


# --- Units ----------------------------------------------------------------------------------------------------
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


# --- Quantities in text ---------------------------------------------------------------------------------------
QuantityKind = Literal["measure", "date", "year", "class", "skip"]


@dataclass(frozen=True)
class Quantity:
    """A number as written: "measure" is a checkable measurement, "skip" one that is not (dose, threshold...)."""

    kind: QuantityKind
    value: float
    decimals: int  # precision written; negative for round thousands ("14,000" is -3)
    unit: str | None
    analyte: str | None
    start: int  # start of the claim: the analyte's name when one is attached
    end: int
    number_start: int
    text: str


_NUMBER_RE = re.compile(r"(?<![\w.,^*/])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?!\d)")
_DATE_RE = re.compile(r"(?<!\d)(?:\d{4}-\d{2}-\d{2}|\d{1,2}/\d{1,2}/\d{4})(?:T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)?(?!\d)")
_CLASS_RE = re.compile(r"\b(?i:class) (IV|V|I{1,3})\b")
_ROMAN = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}
# Between an analyte and its value: "CRP of 86", "WBC count was 14,000", "C-reactive protein (8.6 mg/dL".
_FILLER_RE = re.compile(
    r"(?:\s|[:=(,~]|\b(?:of|was|is|are|were|at|count|counts|level|levels|score|value|values|concentration|"
    r"reading|measured|elevated|raised|high|low|increased|decreased|reduced|serum|plasma|blood|total|about|"
    r"approximately|around|now|rose|rising|fell|falling|from|peaked|peak|up|down|only|still|remains)\b)*",
    re.IGNORECASE,
)
_THRESHOLD_BEFORE_RE = re.compile(
    r"(?:[<>≤≥‹›]=?|=[<>]|\b(?:above|below|over|under|exceed\w*|than|least|most|target\w*|goal|up to|cut-?off|"
    r"threshold|maintain\w*|keep)\s*(?:of\s*)?)\s*$",
    re.IGNORECASE,
)
_RANGE_BEFORE_RE = re.compile(
    r"(?:\d\s*(?:-|–|—)|\bbetween|\bbetween\s+\S+\s+and|(?<!from )\b\d+(?:\.\d+)?\s+to)\s*$", re.IGNORECASE
)
_RANGE_AFTER_RE = re.compile(r"\s*(?:-|–|—|to)\s*\d")
_YEAR_BEFORE_RE = re.compile(r"\b(?:in|since|from|during|onset|on|of|until|by|year|dated)\s+$", re.IGNORECASE)
_BP_PAIR_RE = re.compile(r"\s*/\s*(\d{2,3})(?!\d|\.\d)")
_UNIT_IMPLIES = {"Cel": "temperature", "degF": "temperature", "year-old": "age", "kg/m2": "bmi",
                 "mL/min/1.73m2": "egfr", "mmHg": "bp"}


def scan_quantities(text: str, *, record: bool = False) -> list[Quantity]:
    """Every number in `text`, read as a measurement where it is one. `record` reads the tools' wording, in which
    "80 years" is an age rather than a duration."""
    analytes = find_analytes(text)
    found = [*_dates(text), *_classes(text, analytes)]
    # Digits inside a date, a PSI class or an analyte's name ("CRB 65") are not values.
    taken = [(q.number_start, q.end) for q in found] + [(a.start, a.end) for a in analytes]
    consumed = 0
    for m in _NUMBER_RE.finditer(text):
        if m.start() < consumed or any(a <= m.start() < b for a, b in taken) or _in_name(text, m.start()):
            continue
        pair = _BP_PAIR_RE.match(text, m.end())
        if pair and "." not in m.group():
            quantities, consumed = _pair(text, m, pair, analytes)
        else:
            quantity = _quantity(text, m, analytes, record)
            quantities, consumed = [quantity], quantity.end
        found += quantities
    return sorted(found, key=lambda q: q.number_start)


def _dates(text: str) -> Iterator[Quantity]:
    for m in _DATE_RE.finditer(text):
        date = m.group()[:10] if "-" in m.group()[:10] else m.group()
        yield Quantity("date", 0.0, 0, None, None, m.start(), m.end(), m.start(), date)


def _classes(text: str, analytes: list[AnalyteMention]) -> Iterator[Quantity]:
    for m in _CLASS_RE.finditer(text):
        analyte = _attached_analyte(text, m.start(), analytes)
        start = analyte.start if analyte else m.start()
        yield Quantity("class", float(_ROMAN[m.group(1)]), 0, "class", analyte.analyte if analyte else None,
                       start, m.end(), m.start(), text[start : m.end()])


def _in_name(text: str, position: int) -> bool:
    """Digits that belong to a name: CURB-65, COVID-19, IL-6 (SpO2, F12, G3a are excluded by the number regex)."""
    return position >= 2 and text[position - 1] == "-" and text[position - 2].isalpha()


def _quantity(text: str, m: re.Match[str], analytes: list[AnalyteMention], record: bool) -> Quantity:
    raw = m.group()
    value, decimals = _number(raw)
    unit_found = match_unit(text, m.end())
    unit, end = unit_found if unit_found else (None, m.end())
    attached = _attached_analyte(text, m.start(), analytes)
    following = _following_analyte(text, end, analytes) if attached is None and unit is not None else None
    analyte = (attached or following).analyte if attached or following else None
    if unit == "years" and not record and analyte != "age":
        unit = DOSE  # "for 2 years", "a 6-year history": a duration
    if analyte is None and unit is not None:
        analyte = _UNIT_IMPLIES.get(unit) or ("age" if record and unit == "years" else None)
    start = attached.start if attached else m.start()
    end = following.end if following else end
    kind = _kind(text, m, unit, analyte)
    return Quantity(kind, value, decimals, unit if unit != DOSE else None, analyte, start, end, m.start(),
                    text[start:end])


def _kind(text: str, m: re.Match[str], unit: str | None, analyte: str | None) -> QuantityKind:
    before = text[max(0, m.start() - 40) : m.start()]
    if unit == DOSE or _THRESHOLD_BEFORE_RE.search(before) or _RANGE_BEFORE_RE.search(before):
        return "skip"
    if _RANGE_AFTER_RE.match(text, m.end()) and not re.search(r"\bfrom\s+$", before, re.IGNORECASE):
        return "skip"
    if unit is None and analyte is None:
        is_year = re.fullmatch(r"(?:19|20)\d\d", m.group()) is not None
        return "year" if is_year and _YEAR_BEFORE_RE.search(before) else "skip"
    return "measure"


def _pair(text: str, m: re.Match[str], pair: re.Match[str],
          analytes: list[AnalyteMention]) -> tuple[list[Quantity], int]:
    """"172/98 mmHg" or "BP 172/98": systolic and diastolic; any other "a/b" is a ratio, not checked."""
    unit_found = match_unit(text, pair.end())
    unit, end = unit_found if unit_found else (None, pair.end())
    attached = _attached_analyte(text, m.start(), analytes)
    if unit != "mmHg" and (attached is None or attached.analyte not in ANALYTE_RELATIVES):
        return [], pair.end()
    start = attached.start if attached else m.start()
    claim = text[start:end]
    return [
        Quantity("measure", float(m.group()), 0, unit, "sbp", start, end, m.start(), claim),
        Quantity("measure", float(pair.group(1)), 0, unit, "dbp", start, end, pair.start(1), claim),
    ], end


def _number(raw: str) -> tuple[float, int]:
    digits = raw.replace(",", "")
    if "." in digits:
        return float(digits), len(digits.split(".")[1])
    trailing_zeros = len(digits) - len(digits.rstrip("0"))
    # Only large round numbers are read as rounded ("14,000"): "CRP 90" claims 90, not "about 100".
    return float(digits), -min(trailing_zeros, len(digits) - 1) if int(digits) >= 1000 else 0


def _attached_analyte(text: str, position: int, analytes: list[AnalyteMention]) -> AnalyteMention | None:
    """The analyte whose value this number is: the nearest name before it with only filler words between."""
    before = [a for a in analytes if a.end <= position and position - a.end <= 40]
    if not before:
        return None
    nearest = before[-1]
    return nearest if _FILLER_RE.fullmatch(text, nearest.end, position) else None


def _following_analyte(text: str, position: int, analytes: list[AnalyteMention]) -> AnalyteMention | None:
    """The analyte right after a value with its unit: "14,000/mm3 white cells", "86 mg/L CRP"."""
    return next((a for a in analytes if a.start >= position and not text[position : a.start].strip()), None)


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
        relatives = _relatives(analyte)
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


# --- Comparing a claim with the record ------------------------------------------------------------------------
def agrees(claim: Quantity, recorded: RecordedValue) -> bool:
    """Equal after rounding to the coarser of the two precisions written, in the claim's unit."""
    for value, scale in _recorded_in_claim_unit(claim, recorded):
        tolerance = max(0.5 * 10.0 ** -claim.decimals, 0.5 * 10.0 ** -recorded.decimals * scale)
        if abs(value - claim.value) <= tolerance * (1 + 1e-9):
            return True
    return False


def _recorded_in_claim_unit(claim: Quantity, recorded: RecordedValue) -> list[tuple[float, float]]:
    """The recorded value in the units the claim may be in, each with the factor its precision scales by."""
    if claim.unit is None or recorded.unit is None:
        candidates = [(recorded.value, 1.0)]
        if claim.unit is None and recorded.unit is not None:
            dimension = UNITS[recorded.unit][0]
            for target in BARE_ALTERNATIVES.get(dimension, ()):
                converted = convert(recorded.value, recorded.unit, target, recorded.analyte)
                if converted is not None and recorded.value:
                    candidates.append((converted, abs(converted / recorded.value)))
        return candidates
    converted = convert(recorded.value, recorded.unit, claim.unit, claim.analyte)
    if converted is None:
        return []
    scale = abs(converted / recorded.value) if recorded.value else 1.0
    return [(converted, scale)]


def check_quantity(claim: Quantity, record: Record) -> str | None:
    """Why the record does not support `claim`, or None when it does."""
    if claim.kind == "date":
        return None if record.mentions_date(claim.text) else "no tool result has this date"
    if claim.kind == "year":
        return None if record.mentions_year(int(claim.value)) else "no tool result has this year"
    if claim.kind == "class":
        return None if record.mentions(claim.text[claim.number_start - claim.start :]) else (
            "no tool result has this class"
        )
    if claim.analyte:
        about = record.about(claim.analyte)
        if about:
            return None if any(agrees(claim, v) for v in about) else _differs(about)
    # A claim that names no analyte may be any recorded value in its unit ("86 mg/L (8.6 mg/dL)"). One that names
    # an analyte the record lacks may only be a value no fact attributes to another analyte: "lactate 4.1 mmol/L"
    # is not supported by "potassium 4.15 mmol/L".
    candidates = [
        v for v in record.values
        if (claim.analyte is None or v.analyte is None) and (claim.unit is None or v.unit is not None)
    ]
    return None if any(agrees(claim, v) for v in candidates) else "no tool result has this value"


def _differs(about: list[RecordedValue]) -> str:
    shown: dict[tuple[str, float], str] = {}  # a fact's value once, as its text first writes it
    for value in about:
        shown.setdefault((value.fact_id, value.value), f"{value.shown} ({value.fact_id})")
    return "value differs: record says " + ", ".join(list(shown.values())[:3])


# --- Findings -------------------------------------------------------------------------------------------------
_ASSERTIONS: dict[str, Status] = {
    "elevated": "high", "high": "high", "raised": "high", "increased": "high",
    "low": "low", "decreased": "low", "reduced": "low", "depressed": "low",
    "normal": "normal", "unremarkable": "normal",
}
_ASSERTION_WORDS = "|".join(_ASSERTIONS)
_ADVERBS = r"(?:(?:mildly|markedly|significantly|slightly|very|moderately|severely|persistently)\s+)?"
_ASSERT_BEFORE_RE = re.compile(rf"\b({_ASSERTION_WORDS})\s+(?:(?:serum|blood|plasma)\s+)?$", re.IGNORECASE)
_ASSERT_AFTER_RE = re.compile(
    rf"\s*(?:(?:levels?|counts?|values?)\s+)?(?:(?:is|was|are|were|remains|remained|appears|appeared)\s+)?"
    rf"{_ADVERBS}({_ASSERTION_WORDS})\b",
    re.IGNORECASE,
)
_LIST_GAP_RE = re.compile(r"\s*(?:(?:levels?|counts?|values?)\s*)?(?:,|and|or|/|&)\s*(?:(?:and|or)\s+)?",
                          re.IGNORECASE)
_NEGATION_RE = re.compile(r"\b(?:not|no|without|non)\b[\w\s-]{0,12}$", re.IGNORECASE)
# Words that name an abnormal result. Skipped when the record itself uses the word (a coded "Anemia", a note's
# "fever"): then it is history the record states, not a reading of the current value.
FINDING_WORDS: dict[str, tuple[str, Status]] = {
    r"leu[ck]ocytosis": ("wbc", "high"), r"leu[ck]openia": ("wbc", "low"),
    r"lymphopenia|lymphocytopenia": ("lymphocytes", "low"), r"lymphocytosis": ("lymphocytes", "high"),
    r"neutrophilia": ("neutrophils", "high"), r"neutropenia": ("neutrophils", "low"),
    r"thrombocytopenia": ("platelets", "low"), r"thrombocytosis": ("platelets", "high"),
    r"ana?emi[ac]": ("hb", "low"),
    r"hyponatra?emia": ("sodium", "low"), r"hypernatra?emia": ("sodium", "high"),
    r"hypokala?emia": ("potassium", "low"), r"hyperkala?emia": ("potassium", "high"),
    r"hypoglyca?emia": ("glucose", "low"), r"hyperglyca?emia": ("glucose", "high"),
    r"hypoxa?emi[ac]|desaturation": ("spo2", "low"),
    r"tachycardi[ac]": ("hr", "high"), r"bradycardi[ac]": ("hr", "low"),
    r"tachypno?e(?:a|ic)": ("rr", "high"),
    r"febrile|pyrexi(?:a|al)": ("temperature", "high"), r"afebrile|apyrexial": ("temperature", "normal"),
    r"hypotensi(?:on|ve)": ("sbp", "low"),
}
_FINDING_WORD_RE = re.compile(r"\b(" + "|".join(f"(?:{w})" for w in FINDING_WORDS) + r")\b", re.IGNORECASE)


@dataclass(frozen=True)
class Assertion:
    analyte: str
    status: Status
    start: int
    claim: str


def find_assertions(text: str, record: Record) -> list[Assertion]:
    analytes = find_analytes(text)
    return [*_adjective_assertions(text, analytes), *_word_assertions(text, record)]


def _adjective_assertions(text: str, analytes: list[AnalyteMention]) -> Iterator[Assertion]:
    """"elevated CRP", "elevated CRP, procalcitonin and creatinine levels", "WBC is high"."""
    leading: tuple[str, int] | None = None  # the assertion word that opens a list of analytes
    previous: AnalyteMention | None = None
    for mention in analytes:
        name = text[mention.start : mention.end]
        before = _ASSERT_BEFORE_RE.search(text, 0, mention.start)
        if before and not _NEGATION_RE.search(text, 0, before.start()):
            leading = (before.group(1), before.start())
        elif not (leading and previous and _LIST_GAP_RE.fullmatch(text, previous.end, mention.start)):
            leading = None
        if leading:
            yield Assertion(mention.analyte, _ASSERTIONS[leading[0].lower()], leading[1], f"{leading[0]} {name}")
        after = _ASSERT_AFTER_RE.match(text, mention.end)
        if after and not leading:
            yield Assertion(mention.analyte, _ASSERTIONS[after.group(1).lower()], mention.start,
                            text[mention.start : after.end()])
        previous = mention


def _word_assertions(text: str, record: Record) -> Iterator[Assertion]:
    for m in _FINDING_WORD_RE.finditer(text):
        word = m.group(1)
        if _NEGATION_RE.search(text, 0, m.start()) or record.mentions(word):
            continue
        for pattern, (analyte, status) in FINDING_WORDS.items():
            if re.fullmatch(pattern, word, re.IGNORECASE):
                yield Assertion(analyte, status, m.start(), word)
                break


def check_assertion(assertion: Assertion, record: Record) -> RecordedStatus | None:
    """The record's reading that contradicts `assertion`, when every reading of that analyte does."""
    readings = [s for s in record.statuses if s.analyte in _relatives(assertion.analyte)]
    if not readings or any(s.status == assertion.status for s in readings):
        return None
    return readings[0]


# --- The narrative fields -------------------------------------------------------------------------------------
def narrative_fields(differential: Differential | None, plan: TreatmentPlan | None,
                     extra_texts: dict[str, str] | None) -> Iterator[tuple[str, str]]:
    """(location, text) of every free-text field the model wrote."""
    if differential is not None:
        yield "differential.summary", differential.summary
        for i, diagnosis in enumerate(differential.diagnoses):
            yield f"differential.diagnoses[{i}].reasoning", diagnosis.reasoning
            yield f"differential.diagnoses[{i}].discriminating_test", diagnosis.discriminating_test
    if plan is not None:
        yield "plan.working_diagnosis", plan.working_diagnosis
        for i, action in enumerate(plan.actions):
            yield f"plan.actions[{i}].action", action.action
            yield f"plan.actions[{i}].rationale", action.rationale
        for i, caution in enumerate(plan.cautions):
            yield f"plan.cautions[{i}]", caution
    yield from (extra_texts or {}).items()


_SENTENCE_END_RE = re.compile(r"[.!?](?=\s+[^a-z0-9\s])")


def sentence_at(text: str, position: int) -> str:
    """The sentence around `position` ("Fig. 1" and "e.g. the" do not end one: a lowercase word or digit follows)."""
    start = 0
    for m in _SENTENCE_END_RE.finditer(text):
        if m.end() > position:
            return text[start : m.end()].strip()
        start = m.end()
    return text[start:].strip()


def _number_flags(location: str, text: str, record: Record) -> tuple[int, list[GroundingFlag]]:
    checked = [q for q in scan_quantities(text) if q.kind != "skip"]
    flags = []
    for claim in checked:
        reason = check_quantity(claim, record)
        if reason:
            flags.append(GroundingFlag(location=location, statement=sentence_at(text, claim.number_start),
                                       claim=claim.text, reason=reason, kind="number"))
    return len(checked), flags


def _finding_flags(location: str, text: str, record: Record) -> list[GroundingFlag]:
    flags = []
    for assertion in find_assertions(text, record):
        contradiction = check_assertion(assertion, record)
        if contradiction:
            flags.append(GroundingFlag(
                location=location, statement=sentence_at(text, assertion.start), claim=assertion.claim,
                reason=f"record says otherwise: {contradiction.description} ({contradiction.fact_id})",
                kind="finding",
            ))
    return flags


_FACT_ID_RE = re.compile(r"\bF\d+\b")


def _cited_id(cited: str) -> str:
    """A stored id ("F3"), or the id inside a citation label ("Pneumonia [condition F3]")."""
    ids = _FACT_ID_RE.findall(cited)
    return ids[-1] if ids else cited.strip()


def _citation_flags(differential: Differential | None, plan: TreatmentPlan | None,
                    record: Record) -> tuple[int, list[GroundingFlag]]:
    cited: list[tuple[str, str, str]] = []  # (location, citation as written, the sentence it backs)
    if differential is not None:
        for i, diagnosis in enumerate(differential.diagnoses):
            cited += [(f"differential.diagnoses[{i}].evidence[{k}]", c.fact, diagnosis.reasoning)
                      for k, c in enumerate(diagnosis.evidence)]
    if plan is not None:
        for i, action in enumerate(plan.actions):
            cited += [(f"plan.actions[{i}].evidence[{k}]", fact, action.rationale)
                      for k, fact in enumerate(action.evidence)]
    flags = [
        GroundingFlag(location=location, statement=statement, claim=written,
                      reason=f"cites {_cited_id(written)}, which does not exist", kind="citation")
        for location, written, statement in cited
        if _cited_id(written) not in record.ids
    ]
    return len(cited), flags


def _cited_value_flags(differential: Differential | None, record: Record) -> list[GroundingFlag]:
    """A value the reasoning states for an analyte must be the one its cited fact about that analyte states.
    Values that no fact supports are already flagged as numbers; this catches a right value cited to the wrong
    result (an earlier one, another specimen)."""
    if differential is None:
        return []
    flags = []
    for i, diagnosis in enumerate(differential.diagnoses):
        claims = [q for q in scan_quantities(diagnosis.reasoning)
                  if q.kind == "measure" and q.analyte and check_quantity(q, record) is None]
        for k, cited in enumerate(diagnosis.evidence):
            fact = _cited_id(cited.fact)
            for claim in claims:
                stated = [v for v in record.about(claim.analyte or "") if v.fact_id == fact]
                if stated and not any(agrees(claim, v) for v in stated):
                    flags.append(GroundingFlag(
                        location=f"differential.diagnoses[{i}].evidence[{k}]",
                        statement=sentence_at(diagnosis.reasoning, claim.number_start), claim=claim.text,
                        reason=f"cited fact {fact} does not state this: it says {stated[0].shown}",
                        kind="citation",
                    ))
    return flags


def verify_grounding(
    differential: Differential | None,
    plan: TreatmentPlan | None,
    facts: list[Fact],
    extra_texts: dict[str, str] | None = None,
) -> GroundingReport:
    """Check the drafts' free text against the facts. `extra_texts` maps a location to further text to check
    (for instance a report section written from the drafts)."""
    record = Record(facts)
    checked_numbers = 0
    flags: list[GroundingFlag] = []
    for location, text in narrative_fields(differential, plan, extra_texts):
        count, number_flags = _number_flags(location, text, record)
        checked_numbers += count
        flags += number_flags + _finding_flags(location, text, record)
    checked_citations, citation_flags = _citation_flags(differential, plan, record)
    flags += citation_flags + _cited_value_flags(differential, record)
    return GroundingReport(checked_numbers=checked_numbers, checked_citations=checked_citations, flags=flags)


__all__ = ["GroundingFlag", "GroundingReport", "verify_grounding"]
