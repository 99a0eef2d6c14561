"""Pydantic models of the treatment knowledge base: one YAML file per condition plus a manifest.

Every model forbids unknown keys, so a misspelt field in a data file fails on load instead of being ignored.
`Severity` is not stored data: it is what a caller knows about a patient, matched against `SeverityCriteria`.

Criteria are three-valued. A criterion is True when every check it declares is known and passes, False when
any known value fails a check, and None otherwise (nothing it checks is known). Setting rules fire only on
True; a regimen is withheld only on False, so missing information never hides a regimen.
"""

from __future__ import annotations

import datetime as dt
import math
import operator
import re
from collections.abc import Callable, Iterable
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Setting = Literal["outpatient", "ward", "icu"]
SETTINGS_BY_ACUITY: tuple[Setting, ...] = ("outpatient", "ward", "icu")
Line = Literal["first-line", "alternative", "adjunctive", "add-on", "supportive"]  # supportive: no drug
Population = Literal["adult", "paediatric"]
Route = Literal["oral", "iv", "im", "sc", "inhaled", "iv-or-oral", "iv-or-im"]
RenalMeasure = Literal["egfr", "crcl"]
SourceKind = Literal["guideline", "label", "article"]
DrugClass = Literal[
    "penicillin",
    "cephalosporin",
    "carbapenem",
    "monobactam",
    "macrolide",
    "tetracycline",
    "fluoroquinolone",
    "glycopeptide",
    "oxazolidinone",
    "lincosamide",
    "sulfonamide",
    "sulfone",
    "diaminopyrimidine",
    "8-aminoquinoline",
    "naphthoquinone",
    "diamidine",
    "antiviral-neuraminidase-inhibitor",
    "antiviral-nucleoside-analogue",
    "antiviral-nucleotide-analogue",
    "antiviral-protease-inhibitor",
    "corticosteroid",
    "low-molecular-weight-heparin",
]
BETA_LACTAM_CLASSES: frozenset[str] = frozenset({"penicillin", "cephalosporin", "carbapenem", "monobactam"})

DRUG_NAME = r"^[a-z0-9][a-z0-9 \-]*[a-z0-9]$"  # lower-case INN; combinations joined by "-"
SNOMED_CODE = r"^[0-9]{6,18}$"
ICD10_CODE = r"^[A-Z][0-9]{2}(\.[0-9A-Z]{1,4})?$"
VERSION = r"^[0-9]+\.[0-9]+\.[0-9]+$"


class KBModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---- sources and codes ------------------------------------------------------------------------------------------


class Source(KBModel):
    """A citable publication. Labels carry no year: the current prescribing information is meant."""

    kind: SourceKind = "guideline"
    short_title: str | None = None  # e.g. "ATS/IDSA 2019", used in one-line reasons
    title: str
    organisation: str
    year: int | None = Field(default=None, ge=1990, le=2100)
    citation: str | None = None  # journal reference or document number
    section: str | None = None  # section, question or recommendation the entry rests on
    url: str | None = None
    verify: bool = False  # a detail of this citation could not be checked against the source text

    @model_validator(mode="after")
    def _year_unless_label(self) -> Source:
        if self.year is None and self.kind != "label" and not self.verify:
            raise ValueError("a guideline or article needs its year (or verify: true)")
        return self

    def short(self) -> str:
        """E.g. 'ATS/IDSA 2019, Question 8: ...' for a one-line reason."""
        name = self.short_title or ", ".join(p for p in (self.organisation, str(self.year or "")) if p)
        return f"{name}, {self.section}" if self.section else name


class CodedConcept(KBModel):
    code: str
    display: str


# ---- renal adjustment -------------------------------------------------------------------------------------------


class Interval(NamedTuple):
    low: float
    low_closed: bool
    high: float
    high_closed: bool

    def contains(self, value: float) -> bool:
        above = value >= self.low if self.low_closed else value > self.low
        below = value <= self.high if self.high_closed else value < self.high
        return above and below

    def overlaps(self, other: Interval) -> bool:
        if self.high < other.low or other.high < self.low:
            return False
        if self.high == other.low:
            return self.high_closed and other.low_closed
        if other.high == self.low:
            return other.high_closed and self.low_closed
        return True


_INTERVAL = re.compile(r"^([\[(])\s*([0-9.]+)\s*,\s*([0-9.]+|inf)\s*([\])])$")


def parse_interval(text: str) -> Interval:
    """'(30, 60]' -> 30 < x <= 60; 'inf' as the upper end means unbounded."""
    match = _INTERVAL.match(text.strip())
    if not match:
        raise ValueError(f"interval {text!r} is not of the form '[low, high)' with brackets or parentheses")
    opening, low, high, closing = match.groups()
    interval = Interval(
        float(low), opening == "[", math.inf if high == "inf" else float(high), closing == "]"
    )
    if interval.low >= interval.high:
        raise ValueError(f"interval {text!r} is empty")
    return interval


class RenalAdjustment(KBModel):
    """The dose for one band of kidney function; `avoid` where the drug should not be used in that band."""

    measure: RenalMeasure  # the label's own measure: Cockcroft-Gault CrCl or eGFR, both mL/min
    interval: str  # e.g. "(30, 60]"
    dose: str | None = None
    avoid: bool = False
    note: str | None = None
    source: Source
    verify: bool = False

    @field_validator("interval")
    @classmethod
    def _parseable(cls, value: str) -> str:
        parse_interval(value)
        return value

    @model_validator(mode="after")
    def _dose_or_avoid(self) -> RenalAdjustment:
        if (self.dose is None) == (not self.avoid):
            raise ValueError("give either a dose or avoid: true (not both)")
        return self

    def applies_to(self, kidney_function: float) -> bool:
        return parse_interval(self.interval).contains(kidney_function)


# ---- drugs and regimens -----------------------------------------------------------------------------------------


class WeightDose(KBModel):
    """A dose by body weight with its ceiling: the dose given is min(mg_per_kg x weight, max_mg_per_dose), and a
    day's doses never pass max_mg_per_day."""

    mg_per_kg: float = Field(gt=0)  # per dose
    doses_per_day: int = Field(ge=1, le=8)
    max_mg_per_dose: float = Field(gt=0)
    max_mg_per_day: float | None = Field(default=None, gt=0)

    def dose_mg(self, weight_kg: float) -> float:
        dose = min(self.mg_per_kg * weight_kg, self.max_mg_per_dose)
        if self.max_mg_per_day is not None:
            dose = min(dose, self.max_mg_per_day / self.doses_per_day)
        return dose

    def text(self) -> str:
        ceiling = f"max {self.max_mg_per_dose:g} mg per dose"
        if self.max_mg_per_day is not None:
            ceiling += f", {self.max_mg_per_day:g} mg per day"
        return f"{self.mg_per_kg:g} mg/kg per dose ({ceiling})"


class Drug(KBModel):
    name: str = Field(pattern=DRUG_NAME)
    aliases: list[str] = Field(default_factory=list)  # other names a record may use (e.g. "co-trimoxazole")
    drug_class: DrugClass
    dose: str
    route: Route
    frequency: str
    duration: str | None = None  # where it differs from the regimen's
    per_kg: WeightDose | None = None  # children: the dose by weight (then `dose` restates it for a reader)
    renal: list[RenalAdjustment] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)
    verify: bool = False

    @field_validator("aliases")
    @classmethod
    def _lower_case_aliases(cls, values: list[str]) -> list[str]:
        for value in values:
            if not re.match(DRUG_NAME, value):
                raise ValueError(f"alias {value!r} must be lower case letters, digits, spaces or hyphens")
        return values

    @field_validator("renal")
    @classmethod
    def _bands_do_not_overlap(cls, bands: list[RenalAdjustment]) -> list[RenalAdjustment]:
        for i, first in enumerate(bands):
            for second in bands[i + 1 :]:
                if parse_interval(first.interval).overlaps(parse_interval(second.interval)):
                    raise ValueError(f"renal bands {first.interval} and {second.interval} overlap")
        return bands

    def names(self) -> list[str]:
        return [self.name, *self.aliases]


class Component(KBModel):
    """One part of a regimen, given together with the other parts; any one of `options` fills it."""

    role: str  # e.g. "beta-lactam", "macrolide"
    options: list[Drug] = Field(min_length=1)


class Cautions(KBModel):
    allergy: list[str] = Field(default_factory=list)  # beyond the drug classes, e.g. cross-reactivity notes
    interactions: list[str] = Field(default_factory=list)
    pregnancy: str | None = None
    other: list[str] = Field(default_factory=list)


# ---- severity -------------------------------------------------------------------------------------------------


class Severity(BaseModel):
    """What is known about the patient's illness; every field is optional and None means unknown."""

    model_config = ConfigDict(extra="forbid")

    curb65: int | None = Field(default=None, ge=0, le=5)
    crb65: int | None = Field(default=None, ge=0, le=4)
    psi_class: int | None = Field(default=None, ge=1, le=5)  # also accepts "I" to "V"
    ats_idsa_major: int | None = Field(default=None, ge=0, le=2)  # count of the 2007 IDSA/ATS major criteria
    ats_idsa_minor: int | None = Field(default=None, ge=0, le=9)  # count of the minor criteria
    needs_oxygen: bool | None = None
    icu: bool | None = None  # needs or receives intensive care
    hospitalised: bool | None = None
    comorbidities: bool | None = None  # chronic heart, lung, liver or renal disease, diabetes, alcohol, ...
    high_risk: bool | None = None  # high risk of progression to severe disease (influenza, COVID-19)
    mrsa_risk: bool | None = None  # meets the guideline's criteria for empiric MRSA cover
    pseudomonas_risk: bool | None = None  # meets the guideline's criteria for empiric Pseudomonas cover
    pao2_mmhg: float | None = Field(default=None, gt=0)  # on room air
    aa_gradient_mmhg: float | None = Field(default=None, ge=0)

    @field_validator("psi_class", mode="before")
    @classmethod
    def _roman_class(cls, value: Any) -> Any:
        roman = {"I": 1, "II": 2, "III": 3, "IV": 4, "V": 5}
        if isinstance(value, str):
            cleaned = value.strip().upper().removeprefix("CLASS").strip()
            return roman.get(cleaned, cleaned)
        return value


def _all_of(outcomes: Iterable[bool | None]) -> bool | None:
    known = list(outcomes)
    if False in known:
        return False
    if known and None not in known:
        return True
    return None


def _any_of(outcomes: Iterable[bool | None]) -> bool | None:
    known = list(outcomes)
    if True in known:
        return True
    if known and all(outcome is False for outcome in known):
        return False
    return None


Comparison = Callable[[Any, Any], bool]
# (criteria field, severity field, comparison of the patient's value with the criteria's)
_CHECKS: tuple[tuple[str, str, Comparison], ...] = (
    ("curb65_min", "curb65", operator.ge),
    ("curb65_max", "curb65", operator.le),
    ("crb65_min", "crb65", operator.ge),
    ("crb65_max", "crb65", operator.le),
    ("psi_class_min", "psi_class", operator.ge),
    ("psi_class_max", "psi_class", operator.le),
    ("ats_idsa_major_min", "ats_idsa_major", operator.ge),
    ("ats_idsa_minor_min", "ats_idsa_minor", operator.ge),
    ("needs_oxygen", "needs_oxygen", operator.eq),
    ("icu", "icu", operator.eq),
    ("hospitalised", "hospitalised", operator.eq),
    ("comorbidities", "comorbidities", operator.eq),
    ("high_risk", "high_risk", operator.eq),
    ("mrsa_risk", "mrsa_risk", operator.eq),
    ("pseudomonas_risk", "pseudomonas_risk", operator.eq),
    ("pao2_below", "pao2_mmhg", operator.lt),
    ("pao2_at_least", "pao2_mmhg", operator.ge),
    ("aa_gradient_below", "aa_gradient_mmhg", operator.lt),
    ("aa_gradient_at_least", "aa_gradient_mmhg", operator.ge),
)


class SeverityCriteria(KBModel):
    """Who a rule or regimen is for: `text` for the reader, the other fields for the machine (all must hold)."""

    text: str
    curb65_min: int | None = Field(default=None, ge=0, le=5)
    curb65_max: int | None = Field(default=None, ge=0, le=5)
    crb65_min: int | None = Field(default=None, ge=0, le=4)
    crb65_max: int | None = Field(default=None, ge=0, le=4)
    psi_class_min: int | None = Field(default=None, ge=1, le=5)
    psi_class_max: int | None = Field(default=None, ge=1, le=5)
    ats_idsa_major_min: int | None = Field(default=None, ge=0, le=2)
    ats_idsa_minor_min: int | None = Field(default=None, ge=0, le=9)
    needs_oxygen: bool | None = None
    icu: bool | None = None
    hospitalised: bool | None = None
    comorbidities: bool | None = None
    high_risk: bool | None = None
    mrsa_risk: bool | None = None
    pseudomonas_risk: bool | None = None
    pao2_below: float | None = None
    pao2_at_least: float | None = None
    aa_gradient_below: float | None = None
    aa_gradient_at_least: float | None = None
    any_of: list[SeverityCriteria] = Field(default_factory=list)  # at least one must hold

    def declared_checks(self) -> list[tuple[str, str, Comparison]]:
        return [check for check in _CHECKS if getattr(self, check[0]) is not None]

    @property
    def machine_checkable(self) -> bool:
        return bool(self.declared_checks()) or any(c.machine_checkable for c in self.any_of)

    def evaluate(self, severity: Severity) -> bool | None:
        outcomes = [self._check(severity, *check) for check in self.declared_checks()]
        if self.any_of:
            outcomes.append(_any_of(criteria.evaluate(severity) for criteria in self.any_of))
        return _all_of(outcomes)

    def _check(
        self, severity: Severity, limit_field: str, value_field: str, compare: Comparison
    ) -> bool | None:
        value = getattr(severity, value_field)
        return None if value is None else compare(value, getattr(self, limit_field))


class SeverityRule(KBModel):
    """Maps what is known about severity to the settings of care, with the publication behind the mapping."""

    settings: list[Setting] = Field(min_length=1)
    when: SeverityCriteria
    sources: list[Source] = Field(min_length=1)

    @field_validator("when")
    @classmethod
    def _checkable(cls, when: SeverityCriteria) -> SeverityCriteria:
        if not when.machine_checkable:
            raise ValueError("a setting rule needs at least one machine-checkable field besides text")
        return when


class Regimen(KBModel):
    id: str = Field(pattern=r"^[a-z0-9_]+(\.[a-z0-9-]+)+$")  # stable: "<condition key>.<setting>.<what>"
    summary: str
    settings: list[Setting] = Field(min_length=1)
    line: Line
    severity: SeverityCriteria
    components: list[Component] = Field(default_factory=list)  # none only for a supportive regimen
    duration: str
    monitoring: list[str] = Field(min_length=1)
    advice: list[str] = Field(default_factory=list)  # safety-net advice for the patient or carers
    de_escalation: list[str] = Field(default_factory=list)
    cautions: Cautions = Field(default_factory=Cautions)
    sources: list[Source] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)
    verify: bool = False  # a figure in this regimen could not be checked against its source

    @model_validator(mode="after")
    def _drugs_unless_supportive(self) -> Regimen:
        if (self.line == "supportive") == bool(self.components):
            raise ValueError("a supportive regimen has no components; every other regimen has at least one")
        return self

    def drugs(self) -> list[Drug]:
        return [drug for component in self.components for drug in component.options]

    def allergy_classes(self) -> list[str]:
        """Drug classes a documented allergy should be checked against, 'beta-lactam' included where relevant."""
        classes = {drug.drug_class for drug in self.drugs()}
        if classes & BETA_LACTAM_CLASSES:
            classes.add("beta-lactam")
        return sorted(classes)


# ---- conditions and the manifest ----------------------------------------------------------------------------------


class Condition(KBModel):
    """One data file: a condition, how severity maps to settings of care, and its regimens."""

    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    name: str
    version: str = Field(pattern=VERSION)
    reviewed: dt.date
    scope: str  # population the content applies to, e.g. "immunocompetent adults"
    population: Population = "adult"  # whose regimens: a child is never offered an adult's doses
    # The condition as a differential names it, by cause ("Bacterial community-acquired pneumonia"), when `name`
    # does not say the cause; offered to the model as a candidate diagnosis.
    differential_name: str | None = Field(None, max_length=80)
    synonyms: list[str] = Field(default_factory=list)
    snomed_ct: list[CodedConcept] = Field(default_factory=list)
    icd10: list[CodedConcept] = Field(default_factory=list)
    references: dict[str, Source] = Field(default_factory=dict)  # YAML anchors reused by the entries below
    severity_rules: list[SeverityRule] = Field(default_factory=list)
    severity_rules_from: str | None = None  # key of a condition whose rules apply unchanged
    regimens: list[Regimen] = Field(min_length=1)
    notes: list[str] = Field(default_factory=list)

    @field_validator("snomed_ct")
    @classmethod
    def _snomed_codes(cls, concepts: list[CodedConcept]) -> list[CodedConcept]:
        return _matching(concepts, SNOMED_CODE, "SNOMED CT")

    @field_validator("icd10")
    @classmethod
    def _icd10_codes(cls, concepts: list[CodedConcept]) -> list[CodedConcept]:
        return _matching(concepts, ICD10_CODE, "ICD-10")

    @model_validator(mode="after")
    def _consistent(self) -> Condition:
        ids = [regimen.id for regimen in self.regimens]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate regimen ids: {', '.join(duplicates)}")
        foreign = [i for i in ids if not i.startswith(f"{self.key}.")]
        if foreign:
            raise ValueError(f"regimen ids must start with '{self.key}.': {', '.join(foreign)}")
        if bool(self.severity_rules) == bool(self.severity_rules_from):
            raise ValueError("give either severity_rules or severity_rules_from")
        if self.population == "paediatric":
            fixed = [f"{r.id}: {d.name}" for r in self.regimens for d in r.drugs() if d.per_kg is None]
            if fixed:
                raise ValueError(f"paediatric drugs need a dose by weight (per_kg): {', '.join(fixed)}")
        return self


def _matching(concepts: list[CodedConcept], pattern: str, system: str) -> list[CodedConcept]:
    for concept in concepts:
        if not re.match(pattern, concept.code):
            raise ValueError(f"{concept.code!r} is not a {system} code")
    return concepts


class ChangelogEntry(KBModel):
    version: str = Field(pattern=VERSION)
    date: dt.date
    changes: list[str] = Field(min_length=1)


class Manifest(KBModel):
    """regimens/_knowledge_base.yaml: the knowledge-base version, its condition files and its changelog."""

    version: str = Field(pattern=VERSION)
    reviewed: dt.date
    disclaimer: str
    conditions: list[str] = Field(min_length=1)  # keys; each must have exactly one <key>.yaml
    changelog: list[ChangelogEntry] = Field(min_length=1)  # newest first

    @model_validator(mode="after")
    def _newest_entry_is_this_version(self) -> Manifest:
        if self.changelog[0].version != self.version:
            raise ValueError(f"the first changelog entry must be version {self.version}")
        return self


def json_schema() -> dict[str, Any]:
    """JSON Schema of a condition file (regimens/<key>.yaml), for editors and external validators."""
    return Condition.model_json_schema()

