"""Pneumonia and sepsis scores and the CKD-EPI 2021 eGFR as pure functions over inputs that carry provenance.

A score never guesses. Each criterion is met, not met or unknown (its input is missing), and the result gives
the range the score can take: the minimum with every unknown criterion absent, the maximum with every unknown
criterion present. A risk group is reported only when the whole range falls into one group; otherwise the
result says which groups remain possible and which inputs would decide. `points` is the score with missing
inputs taken as normal, the convention of the PSI derivation (Fine 1997); for the other scores it equals the
minimum.

Thresholds are those of the publication in each result's `source`. Values are in the canonical UCUM units of
medconsult.clinical.codes (convert with `codes.to_canonical` before building an `Input`).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["met", "not met", "unknown"]


class Input(BaseModel):
    """One value a calculation uses, and the record it was read from."""

    name: str  # analyte key of medconsult.clinical.codes, or "age", "female", "confusion", a comorbidity...
    value: float | bool | None = None  # None: missing
    unit: str | None = None  # canonical UCUM unit
    resource: str | None = None  # FHIR reference, e.g. "Observation/123" or "Patient/9"
    effective: str | None = None  # when measured or recorded (ISO 8601)
    supporting: list[str] = Field(default_factory=list)  # further references behind the value
    note: str | None = None  # how the value was derived, or why it is missing

    @property
    def missing(self) -> bool:
        return self.value is None

    def references(self) -> list[str]:
        first = [self.resource] if self.resource else []
        return first + [r for r in self.supporting if r != self.resource]


Inputs = Mapping[str, Input]


class Criterion(BaseModel):
    name: str
    points: int  # added when met (negative for PSI's female sex)
    status: Status
    detail: str  # e.g. "respiratory rate 32 /min >= 30"
    inputs: list[str] = Field(default_factory=list)  # names of the inputs it rests on
    resources: list[str] = Field(default_factory=list)  # their FHIR references


class MissingInput(BaseModel):
    name: str
    reason: str


class Interpretation(BaseModel):
    risk_group: str
    points: str  # the score range of the group, e.g. "2" or "91-130"
    mortality: str | None = None
    site_of_care: str | None = None
    source: str


class ScoreResult(BaseModel):
    score_name: str
    points: int | None  # missing inputs taken as normal; None when the score cannot be computed at all
    minimum: int | None
    maximum: int | None
    complete: bool  # no criterion unknown
    criteria: list[Criterion]
    inputs: list[Input]  # the inputs the criteria used, with their references
    missing: list[MissingInput]  # inputs whose absence left a criterion unknown
    interpretation: Interpretation | None  # only when the range determines the risk group
    possible_risk_groups: list[str]
    undetermined: str | None = None  # what the missing inputs leave open
    assumed_normal_interpretation: Interpretation | None = None  # PSI: the group with missing taken as normal
    assumptions: list[str] = Field(default_factory=list)
    source: str


class EgfrResult(BaseModel):
    egfr: float | None  # mL/min/1.73 m2, one decimal
    unit: str = "mL/min/{1.73_m2}"
    category: str | None  # KDIGO GFR category
    detail: str
    inputs: list[Input]
    missing: list[MissingInput]
    caveats: list[str]
    source: str


# ---- formatting ---------------------------------------------------------------------------------------------

_UNIT_TEXT = {"Cel": "°C", "mm[Hg]": "mmHg", "10*3/uL": "x10^3/uL", "{score}": "", "a": "years", "[pH]": ""}


def format_value(value: float, unit: str | None) -> str:
    number = f"{value:.4g}"
    unit_text = _UNIT_TEXT.get(unit, unit) if unit else ""
    return f"{number} {unit_text}".strip()


def _names(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _alternatives(items: Sequence[str]) -> str:
    items = list(items)
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


# ---- criteria -------------------------------------------------------------------------------------------------

_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt, ">=": operator.ge, "<": operator.lt, "<=": operator.le,
}


@dataclass(frozen=True)
class Test:
    """One comparison of an input with a published cut-off."""

    key: str
    label: str
    op: Literal[">", ">=", "<", "<="]
    cutoff: float

    def passes(self, value: float) -> bool:
        return _OPERATORS[self.op](value, self.cutoff)

    @property
    def rule(self) -> str:
        return f"{self.op} {self.cutoff:g}"


class _Sheet:
    """Collects a score's criteria, the inputs they used, and the inputs each one rests on."""

    def __init__(self, inputs: Inputs):
        self.inputs = inputs
        self.criteria: list[Criterion] = []
        self.used: dict[str, Input] = {}
        self.keys: dict[str, tuple[str, ...]] = {}  # criterion name -> input names it rests on

    def get(self, key: str) -> Input | None:
        found = self.inputs.get(key)
        return found if found is not None and not found.missing else None

    def add(self, name: str, points: int, status: Status, detail: str, keys: Sequence[str]) -> Criterion:
        used = [item for key in dict.fromkeys(keys) if (item := self.get(key)) is not None]
        for item in used:
            self.used.setdefault(item.name, item)
        self.keys[name] = tuple(keys)
        criterion = Criterion(
            name=name,
            points=points,
            status=status,
            detail=detail,
            inputs=[i.name for i in used],
            resources=list(dict.fromkeys(r for i in used for r in i.references())),
        )
        self.criteria.append(criterion)
        return criterion

    def compare(self, name: str, points: int, *tests: Test) -> Criterion:
        """Met when any test passes on a present input; not met when all inputs are present and none passes."""
        parts, outcomes = [], []
        for test in tests:
            item = self.get(test.key)
            if item is None:
                parts.append(f"{test.label} missing")
                outcomes.append(None)
                continue
            passed = test.passes(float(item.value))
            parts.append(f"{test.label} {format_value(float(item.value), item.unit)} "
                         f"{'' if passed else 'not '}{test.rule}")
            outcomes.append(passed)
        return self.add(name, points, _combine(outcomes), "; ".join(dict.fromkeys(parts)), [t.key for t in tests])

    def flag(self, name: str, points: int, key: str, label: str) -> Criterion:
        """A yes/no input: present, absent or unknown."""
        item = self.get(key)
        if item is None:
            note = self.inputs[key].note if key in self.inputs else None
            return self.add(name, points, "unknown", f"{label}: unknown" + (f" ({note})" if note else ""), [key])
        detail = f"{label}: {'yes' if item.value else 'no'}" + (f" ({item.note})" if item.note else "")
        return self.add(name, points, "met" if item.value else "not met", detail, [key])

    def missing(self) -> list[MissingInput]:
        """The absent inputs of the criteria left unknown, each with the reason it is absent."""
        keys: list[str] = []
        for criterion in self.criteria:
            if criterion.status == "unknown":
                keys.extend(k for k in self.keys[criterion.name] if self.get(k) is None and k not in keys)
        return [MissingInput(name=k, reason=self._reason(k)) for k in keys]

    def _reason(self, key: str) -> str:
        item = self.inputs.get(key)
        return (item.note if item is not None and item.note else None) or "not available"


def _combine(outcomes: Sequence[bool | None]) -> Status:
    if any(o is True for o in outcomes):
        return "met"
    if all(o is False for o in outcomes):
        return "not met"
    return "unknown"


def _range(criteria: Sequence[Criterion]) -> tuple[int, int, int]:
    """(points with unknown taken as absent, minimum, maximum)."""
    met = sum(c.points for c in criteria if c.status == "met")
    unknown = [c.points for c in criteria if c.status == "unknown"]
    return met, met + sum(min(p, 0) for p in unknown), met + sum(max(p, 0) for p in unknown)


# ---- interpretation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RiskBand:
    low: int
    high: int
    group: str
    mortality: str | None
    site_of_care: str | None

    def points_text(self) -> str:
        return str(self.low) if self.low == self.high else f"{self.low}-{self.high}"

    def interpretation(self, source: str) -> Interpretation:
        return Interpretation(risk_group=self.group, points=self.points_text(), mortality=self.mortality,
                              site_of_care=self.site_of_care, source=source)


def _bands_between(bands: Sequence[RiskBand], low: int, high: int) -> list[RiskBand]:
    return [b for b in bands if b.low <= high and b.high >= low]


def _undetermined(possible: Sequence[str], missing: Sequence[MissingInput]) -> str | None:
    if len(possible) <= 1:
        return None
    return f"risk group undetermined: {_alternatives(possible)}, depending on {_names([m.name for m in missing])}"


def _result(name: str, sheet: _Sheet, bands: Sequence[RiskBand], source: str, assumptions: Sequence[str] = ()
            ) -> ScoreResult:
    _, low, high = _range(sheet.criteria)
    return _scored(name, sheet, _bands_between(bands, low, high), source, assumptions)


def _scored(name: str, sheet: _Sheet, possible: Sequence[RiskBand], source: str, assumptions: Sequence[str] = (),
            assumed: RiskBand | None = None) -> ScoreResult:
    """The result, with a risk group only when every score in the possible range falls in the same one."""
    points, low, high = _range(sheet.criteria)
    missing = sheet.missing()
    return ScoreResult(
        score_name=name,
        points=points,
        minimum=low,
        maximum=high,
        complete=not missing,
        criteria=sheet.criteria,
        inputs=list(sheet.used.values()),
        missing=missing,
        interpretation=possible[0].interpretation(source) if len(possible) == 1 else None,
        possible_risk_groups=[b.group for b in possible],
        undetermined=_undetermined([b.group for b in possible], missing),
        assumed_normal_interpretation=assumed.interpretation(source) if assumed else None,
        assumptions=list(assumptions),
        source=source,
    )


# ---- shared criteria ------------------------------------------------------------------------------------------

CONFUSION_NOTE = (
    "Confusion / altered mentation is read as GCS < 15 or a recorded delirium or confusion; CURB-65 defines it as "
    "an Abbreviated Mental Test score <= 8 or new disorientation in person, place or time."
)


def _confusion(sheet: _Sheet, points: int = 1, label: str = "confusion") -> Criterion:
    return sheet.flag("confusion", points, "confusion", label)


def _respiratory_rate(sheet: _Sheet, op: Literal[">", ">="], cutoff: float, points: int = 1) -> Criterion:
    return sheet.compare("respiratory rate", points, Test("respiratory_rate", "respiratory rate", op, cutoff))


def _low_blood_pressure(sheet: _Sheet) -> Criterion:
    return sheet.compare(
        "blood pressure",
        1,
        Test("systolic_bp", "systolic BP", "<", 90),
        Test("diastolic_bp", "diastolic BP", "<=", 60),
    )


def _age_65(sheet: _Sheet) -> Criterion:
    return sheet.compare("age >= 65", 1, Test("age", "age", ">=", 65))


# ---- CURB-65 and CRB-65 ---------------------------------------------------------------------------------------

CURB65_INPUTS = ("confusion", "bun", "respiratory_rate", "systolic_bp", "diastolic_bp", "age")
CRB65_INPUTS = ("confusion", "respiratory_rate", "systolic_bp", "diastolic_bp", "age")

CURB65_SOURCE = (
    "Lim WS et al. Thorax 2003;58:377-82 (CURB-65; 30-day mortality by group); "
    "NICE CG191 (2014, updated 2019) risk groups and place of care"
)
CURB65_BANDS = (
    RiskBand(0, 1, "low risk", "1.5% (Lim 2003); NICE: less than 3%", "consider home-based treatment"),
    RiskBand(2, 2, "intermediate risk", "9.2% (Lim 2003); NICE: 3-15%",
             "consider hospital-based care (short inpatient stay or hospital-supervised outpatient treatment)"),
    RiskBand(3, 5, "high risk", "22% (Lim 2003); NICE: more than 15%",
             "manage in hospital as severe pneumonia; assess for intensive care, especially with a score of 4 or 5"),
)

CRB65_SOURCE = (
    "Lim WS et al. Thorax 2003;58:377-82 (CRB-65); NICE CG191 (2014, updated 2019) risk groups for primary care"
)
CRB65_BANDS = (
    RiskBand(0, 0, "low risk", "less than 1% (NICE CG191)", "consider home-based care"),
    RiskBand(1, 2, "intermediate risk", "1-10% (NICE CG191)",
             "consider hospital assessment, particularly with a score of 2"),
    RiskBand(3, 4, "high risk", "more than 10% (NICE CG191)", "hospital assessment"),
)


def curb65(inputs: Inputs) -> ScoreResult:
    """CURB-65: confusion, BUN > 19 mg/dL (urea > 7 mmol/L), RR >= 30, SBP < 90 or DBP <= 60, age >= 65."""
    sheet = _Sheet(inputs)
    _confusion(sheet)
    sheet.compare("urea", 1, Test("bun", "BUN", ">", 19))
    _respiratory_rate(sheet, ">=", 30)
    _low_blood_pressure(sheet)
    _age_65(sheet)
    notes = [CONFUSION_NOTE, "Urea > 7 mmol/L is applied as BUN > 19 mg/dL."]
    return _result("CURB-65", sheet, CURB65_BANDS, CURB65_SOURCE, notes)


def crb65(inputs: Inputs) -> ScoreResult:
    """CRB-65: CURB-65 without urea, for use where blood tests are not at hand."""
    sheet = _Sheet(inputs)
    _confusion(sheet)
    _respiratory_rate(sheet, ">=", 30)
    _low_blood_pressure(sheet)
    _age_65(sheet)
    return _result("CRB-65", sheet, CRB65_BANDS, CRB65_SOURCE, [CONFUSION_NOTE])


# ---- qSOFA and SIRS -------------------------------------------------------------------------------------------

QSOFA_INPUTS = ("respiratory_rate", "confusion", "systolic_bp")
QSOFA_SOURCE = "Seymour CW et al. JAMA 2016;315:762-74; Singer M et al. JAMA 2016;315:801-10 (Sepsis-3)"
QSOFA_BANDS = (
    RiskBand(0, 1, "qSOFA negative (< 2)", None,
             "qSOFA < 2 should not delay investigation or treatment of infection (Sepsis-3)"),
    RiskBand(2, 3, "qSOFA positive (>= 2)",
             "in-hospital mortality 3- to 14-fold that of qSOFA < 2 across baseline-risk deciles (Seymour 2016)",
             "investigate for organ dysfunction (SOFA), start or escalate therapy, consider critical care referral "
             "or closer monitoring (Sepsis-3)"),
)

SIRS_INPUTS = ("temperature", "heart_rate", "respiratory_rate", "arterial_pco2", "leukocytes", "band_neutrophils")
SIRS_SOURCE = "Bone RC et al. Chest 1992;101:1644-55 (ACCP/SCCM consensus conference)"
SIRS_BANDS = (
    RiskBand(0, 1, "SIRS criteria not met (< 2)", None, None),
    RiskBand(2, 4, "SIRS (>= 2 criteria)", None,
             "with suspected infection this met the 1992 definition of sepsis (superseded by Sepsis-3, 2016)"),
)


def qsofa(inputs: Inputs) -> ScoreResult:
    """qSOFA: RR >= 22, altered mentation (GCS < 15), SBP <= 100 mmHg."""
    sheet = _Sheet(inputs)
    _respiratory_rate(sheet, ">=", 22)
    _confusion(sheet, label="altered mentation")
    sheet.compare("systolic BP <= 100", 1, Test("systolic_bp", "systolic BP", "<=", 100))
    notes = ["Altered mentation is GCS < 15 (Seymour 2016) or a recorded delirium or confusion."]
    return _result("qSOFA", sheet, QSOFA_BANDS, QSOFA_SOURCE, notes)


def sirs(inputs: Inputs) -> ScoreResult:
    """SIRS: temp > 38 or < 36 °C; HR > 90; RR > 20 or PaCO2 < 32 mmHg; WBC > 12 or < 4 x10^3/uL or bands > 10%."""
    sheet = _Sheet(inputs)
    sheet.compare("temperature", 1, Test("temperature", "temperature", ">", 38),
                  Test("temperature", "temperature", "<", 36))
    sheet.compare("heart rate", 1, Test("heart_rate", "heart rate", ">", 90))
    sheet.compare("respiration", 1, Test("respiratory_rate", "respiratory rate", ">", 20),
                  Test("arterial_pco2", "PaCO2", "<", 32))
    sheet.compare("white cells", 1, Test("leukocytes", "white cells", ">", 12),
                  Test("leukocytes", "white cells", "<", 4), Test("band_neutrophils", "band forms", ">", 10))
    return _result("SIRS", sheet, SIRS_BANDS, SIRS_SOURCE)


# ---- PSI / PORT -----------------------------------------------------------------------------------------------

COMORBIDITIES = (
    ("neoplastic_disease", "neoplastic disease", 30),
    ("liver_disease", "liver disease", 20),
    ("congestive_heart_failure", "congestive heart failure", 10),
    ("cerebrovascular_disease", "cerebrovascular disease", 10),
    ("renal_disease", "renal disease", 10),
)
PSI_INPUTS = (
    "age", "female", "nursing_home_resident", *(key for key, _, _ in COMORBIDITIES), "confusion",
    "respiratory_rate", "systolic_bp", "temperature", "heart_rate", "arterial_ph", "bun", "sodium", "glucose",
    "hematocrit", "arterial_po2", "spo2", "pleural_effusion",
)
PSI_SOURCE = "Fine MJ et al. N Engl J Med 1997;336:243-50 (PSI/PORT; mortality of the Pneumonia PORT validation cohort)"
_PSI_CLASS_ONE = RiskBand(0, 0, "class I", "0.1%", "outpatient")
PSI_BANDS = (
    RiskBand(-1000, 70, "class II", "0.6%", "outpatient"),
    RiskBand(71, 90, "class III", "0.9%", "outpatient or brief inpatient observation"),
    RiskBand(91, 130, "class IV", "9.3%", "inpatient"),
    RiskBand(131, 1000, "class V", "27.0%", "inpatient"),
)
_PSI_EXAM = ("altered mental status", "respiratory rate >= 30", "systolic BP < 90", "temperature < 35 or >= 40",
             "pulse >= 125")


def psi(inputs: Inputs) -> ScoreResult:
    """Pneumonia Severity Index: class I by the step-1 rule, classes II-V by points (Fine 1997, Table 2)."""
    sheet = _Sheet(inputs)
    age = sheet.get("age")
    if age is None:
        return _psi_without_age(sheet)
    _psi_criteria(sheet, float(age.value))
    points, low, high = _range(sheet.criteria)
    class_one = _psi_class_one(sheet.criteria, float(age.value))
    possible = _psi_possible_classes(low, high, class_one)
    assumed = _PSI_CLASS_ONE if class_one != "excluded" else _bands_between(PSI_BANDS, points, points)[0]
    return _scored("PSI", sheet, possible, PSI_SOURCE, _psi_assumptions(sheet.missing()), assumed)


def _psi_criteria(sheet: _Sheet, age: float) -> None:
    sheet.add("age", int(age), "met", f"age {age:g} years: +{age:g}", ["age"])
    sheet.flag("female sex", -10, "female", "female")
    sheet.flag("nursing home resident", 10, "nursing_home_resident", "nursing home resident")
    for key, label, points in COMORBIDITIES:
        sheet.flag(label, points, key, label)
    sheet.flag("altered mental status", 20, "confusion", "altered mental status")
    sheet.compare("respiratory rate >= 30", 20, Test("respiratory_rate", "respiratory rate", ">=", 30))
    sheet.compare("systolic BP < 90", 20, Test("systolic_bp", "systolic BP", "<", 90))
    sheet.compare("temperature < 35 or >= 40", 15, Test("temperature", "temperature", "<", 35),
                  Test("temperature", "temperature", ">=", 40))
    sheet.compare("pulse >= 125", 10, Test("heart_rate", "pulse", ">=", 125))
    sheet.compare("arterial pH < 7.35", 30, Test("arterial_ph", "arterial pH", "<", 7.35))
    sheet.compare("BUN >= 30", 20, Test("bun", "BUN", ">=", 30))
    sheet.compare("sodium < 130", 20, Test("sodium", "sodium", "<", 130))
    sheet.compare("glucose >= 250", 10, Test("glucose", "glucose", ">=", 250))
    sheet.compare("hematocrit < 30", 10, Test("hematocrit", "hematocrit", "<", 30))
    _psi_oxygenation(sheet)
    sheet.flag("pleural effusion", 10, "pleural_effusion", "pleural effusion")


def _psi_oxygenation(sheet: _Sheet) -> Criterion:
    """PaO2 < 60 mmHg; where no PaO2 was measured, SpO2 < 90% (also counted abnormal in the PORT cohort)."""
    name = "PaO2 < 60 (or SpO2 < 90)"
    if sheet.get("arterial_po2") is not None:
        return sheet.compare(name, 10, Test("arterial_po2", "PaO2", "<", 60))
    if sheet.get("spo2") is not None:
        criterion = sheet.compare(name, 10, Test("spo2", "SpO2", "<", 90))
        criterion.detail += " (no PaO2: SpO2 used)"
        return criterion
    return sheet.compare(name, 10, Test("arterial_po2", "PaO2", "<", 60), Test("spo2", "SpO2", "<", 90))


def _psi_class_one(criteria: Sequence[Criterion], age: float) -> Literal["certain", "possible", "excluded"]:
    """Step 1 of Fine 1997: age <= 50, none of the five comorbidities, none of the five exam findings."""
    step_one = {label for _, label, _ in COMORBIDITIES} | set(_PSI_EXAM)
    statuses = [c.status for c in criteria if c.name in step_one]
    if age > 50 or "met" in statuses:
        return "excluded"
    return "possible" if "unknown" in statuses else "certain"


def _psi_possible_classes(low: int, high: int, class_one: str) -> list[RiskBand]:
    if class_one == "certain":
        return [_PSI_CLASS_ONE]
    possible = _bands_between(PSI_BANDS, low, high)
    return ([_PSI_CLASS_ONE] if class_one == "possible" else []) + possible


def _psi_assumptions(missing: Sequence[MissingInput]) -> list[str]:
    notes = [
        "Comorbidities are those on the active problem list; one not recorded counts as absent.",
        "Altered mental status (Fine 1997: disorientation to person, place or time not known to be chronic, "
        "stupor or coma) is read as GCS < 15 or a recorded delirium or confusion.",
    ]
    if missing:
        notes.insert(0, "As in the PSI derivation, missing values are taken as normal for `points` and "
                        f"`assumed_normal_interpretation`; the range shows what {_names([m.name for m in missing])} "
                        "could change.")
    return notes


def _psi_without_age(sheet: _Sheet) -> ScoreResult:
    reason = sheet.inputs["age"].note if "age" in sheet.inputs and sheet.inputs["age"].note else "not available"
    return ScoreResult(
        score_name="PSI", points=None, minimum=None, maximum=None, complete=False, criteria=[], inputs=[],
        missing=[MissingInput(name="age", reason=reason)], interpretation=None, possible_risk_groups=[],
        undetermined="PSI cannot be computed without age (its largest term)", source=PSI_SOURCE,
    )


# ---- eGFR, CKD-EPI 2021 ---------------------------------------------------------------------------------------

EGFR_INPUTS = ("creatinine", "age", "female")
EGFR_SOURCE = "Inker LA et al. N Engl J Med 2021;385:1737-49 (CKD-EPI 2021 creatinine equation, without race)"
KDIGO_SOURCE = "KDIGO 2012 CKD guideline, GFR categories (Kidney Int Suppl 2013;3:1-150)"
_KDIGO = ((90, "G1 (normal or high)"), (60, "G2 (mildly decreased)"), (45, "G3a (mildly to moderately decreased)"),
          (30, "G3b (moderately to severely decreased)"), (15, "G4 (severely decreased)"), (0, "G5 (kidney failure)"))


def ckd_epi_2021(creatinine_mg_dl: float, age_years: float, female: bool) -> float:
    """142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age [x 1.012 if female]; k 0.7/0.9, a -0.241/-0.302."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    egfr = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age_years
    return egfr * 1.012 if female else egfr


def kdigo_category(egfr: float) -> str:
    return next(label for floor, label in _KDIGO if egfr >= floor)


def egfr(inputs: Inputs) -> EgfrResult:
    """eGFR by CKD-EPI 2021 from the creatinine, age and sex inputs; missing inputs leave it uncomputed."""
    needed = {"creatinine": "creatinine", "age": "age", "female": "sex"}
    present = {key: inputs[key] for key in needed if key in inputs and not inputs[key].missing}
    missing = [MissingInput(name=key, reason=(inputs[key].note if key in inputs and inputs[key].note else
                                              "not available")) for key in needed if key not in present]
    caveats = [
        "The equation assumes a stable creatinine; it overestimates GFR while creatinine is rising (acute kidney "
        "injury).",
        "A single value does not stage CKD, which needs a GFR below 60 for more than 3 months.",
    ]
    used = list(present.values())
    if missing:
        return EgfrResult(egfr=None, category=None, detail=f"not computed: {_names([m.name for m in missing])} "
                          "missing", inputs=used, missing=missing, caveats=caveats, source=EGFR_SOURCE)
    creatinine, age, female = (float(present["creatinine"].value), float(present["age"].value),
                               bool(present["female"].value))
    if age < 18 or creatinine <= 0:
        why = "age under 18 (the equation is for adults)" if age < 18 else "creatinine not positive"
        return EgfrResult(egfr=None, category=None, detail=f"not computed: {why}", inputs=used, missing=[],
                          caveats=caveats, source=EGFR_SOURCE)
    value = ckd_epi_2021(creatinine, age, female)
    detail = (f"creatinine {creatinine:.4g} mg/dL, age {age:g} years, {'female' if female else 'male'}: "
              f"{value:.1f} mL/min/1.73 m2")
    return EgfrResult(egfr=round(value, 1), category=kdigo_category(value), detail=detail, inputs=used,
                      missing=[], caveats=caveats, source=f"{EGFR_SOURCE}; {KDIGO_SOURCE}")
