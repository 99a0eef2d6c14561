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

Reading numbers out of text is agents/deterministic/quantities.py, what the facts state is recorded.py, and the
units and their conversions are medconsult/clinical/codes.py; this module compares the two sides and builds the
report. It is deliberately conservative: numbers that are not measurements (doses, durations, thresholds, targets,
ranges, list numbering, names with digits such as CURB-65 or COVID-19) are not checked, and no general language
understanding is attempted.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, computed_field

from medconsult.agents.deterministic.quantities import (
    AnalyteMention,
    Quantity,
    find_analytes,
    related_analytes,
    scan_quantities,
)
from medconsult.agents.deterministic.recorded import Record, RecordedStatus, RecordedValue, Status
from medconsult.agents.schemas import Differential, TreatmentPlan
from medconsult.clinical.codes import BARE_ALTERNATIVES, UNITS, convert
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
    readings = [s for s in record.statuses if s.analyte in related_analytes(assertion.analyte)]
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
