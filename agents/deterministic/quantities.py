"""Measurements as the narrative and the record write them: analyte names, units and numbers found in text, each
with what kind of number it is (a checkable measurement, a date, a class, or one that is not checked)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from medconsult.clinical.codes import DOSE, match_unit

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


def related_analytes(analyte: str) -> frozenset[str]:
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
