"""Radiology-draft step: Findings, Comparison and Impression from the image measurements, one schema-constrained LLM
call, then a deterministic check of every statement.

The model words the draft; the measurements (lung_zones, compare_radiographs) are its only sources. Each statement
must cite them, and every number and date in it must be one a fact states (the grounding verifier): a statement
that fails is withheld, with the reason, never shown as the draft's; so is one that repeats an instruction planted in
record text (agents/deterministic/injection.py), one whose percentages are given to the wrong zone or as a change
instead of a level (zone_claims.py), and one that calls the chest worse or better when the comparison found the
films within the same-day noise. A section left empty, and a Comparison without the change
score (which names both films and the verdict), get the tool's own sentence, marked as a measurement, so the draft
always describes the image and cites both exams when there are two.
"""

from __future__ import annotations

import re
from datetime import date

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from medconsult.agents.deterministic.grounding import check_quantity, verify_grounding
from medconsult.agents.deterministic.injection import PlantedText
from medconsult.agents.deterministic.quantities import scan_quantities
from medconsult.agents.deterministic.recorded import Record
from medconsult.agents.deterministic.zone_claims import misattributed
from medconsult.agents.evidence import citation_label, consult_system_prompt, fact_id
from medconsult.agents.schemas import DraftStatement, RadiologyDraft, WithheldStatement, radiology_request
from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import Fact, Gap

DRAFT_KINDS = ("image finding", "comparison")


def draft_facts(facts: list[Fact]) -> list[Fact]:
    """The facts a radiology draft may cite: the image measurements and the comparison."""
    return [f for f in facts if f.kind in DRAFT_KINDS]


async def draft_radiology(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    facts: list[Fact],
    gaps: list[Gap],
    as_of: date | None,
    synthetic_dates: bool = False,
    prior_date: str | None = None,
    config: RunnableConfig | None = None,
) -> RadiologyDraft:
    """The model's draft, unchecked (`check_draft` does that)."""
    citable = draft_facts(facts)
    comparison = any(f.kind == "comparison" for f in citable)
    ask = task_prompt(citable, prior_date)
    messages = [SystemMessage(consult_system_prompt(facts, gaps, as_of, synthetic_dates)), HumanMessage(ask)]
    schema = radiology_request([citation_label(f) for f in citable], comparison)
    answer = (await structured_call(model, schema, messages, method=method, config=config)).model_dump()
    sections = {
        name: [DraftStatement(text=" ".join(s["text"].split()), facts=list(dict.fromkeys(map(fact_id, s["cites"]))))
               for s in answer.get(name, [])]
        for name in ("findings", "comparison", "impression")
    }
    return RadiologyDraft(**sections)


def task_prompt(citable: list[Fact], prior_date: str | None) -> str:
    """The task, naming the facts each section rests on (small models otherwise cite a neighbouring label)."""
    findings = [f.id for f in citable if f.kind == "image finding"]
    comparison = [f.id for f in citable if f.kind == "comparison"]
    return render("radiology_draft.user.md", findings=findings, comparison=comparison, prior_date=prior_date)


def check_draft(draft: RadiologyDraft, facts: list[Fact], prior_dates: list[str], steady: bool = False
                ) -> RadiologyDraft:
    """Withhold each statement that cites no measurement, states a number or date no fact states (or in the wrong
    role), calls the chest worse or better when the comparison is `steady` (compare_radiographs found nothing beyond
    the noise, or could not compare), or repeats planted record text, the task's instructions or an earlier
    statement; refill empty sections, and a Comparison without the change score, with the measurements' own
    sentences."""
    by_id = {f.id: f for f in facts}
    kept: dict[str, list[DraftStatement]] = {}
    withheld = list(draft.withheld)
    citable = draft_facts(facts)
    instructions = _shingles(task_prompt(citable, prior_dates[0] if prior_dates else None))
    planted = PlantedText(facts)
    seen: set[str] = set()
    for section, statements in draft.sections():
        kept[section] = []
        for index, statement in enumerate(statements):
            key = " ".join(statement.text.lower().split())
            echo = planted.echo(statement.text) if planted else None
            if echo:
                reason = f"repeats an instruction planted in the record ({', '.join(echo[1])})"
            elif key in seen:
                reason = "repeats an earlier statement"
            elif _echoes(statement.text, instructions):
                reason = "repeats the task's instructions, not a finding"
            else:
                statement = _cite_sources(statement, citable)
                reason = _unsupported(section, index, statement, facts, by_id, steady)
            seen.add(key)
            if reason:
                withheld.append(WithheldStatement(section=section, text=statement.text, reason=reason))
            else:
                kept[section].append(statement)
    zones = [f for f in citable if f.kind == "image finding" and f.tool == "lung_zones"]
    compared = [f for f in citable if f.kind == "comparison"]
    if compared and not any(_states_score(s.text, compared[0]) for s in kept["comparison"]):
        kept["comparison"].insert(0, _measurement(compared[0]))  # the change score names both films and the verdict
    # lung_zones states: the zone table, the opacified zones with laterality and pattern, size and texture;
    # compare_radiographs: the change score, the zones beyond the noise (or the largest change), the size change.
    if not kept["findings"] and zones:
        kept["findings"] = [_measurement(f) for f in zones[:1] + zones[2:3]]
    if not kept["impression"] and (zones or compared):
        kept["impression"] = [_measurement(f) for f in zones[1:2] + compared[1:2]] or [_measurement(compared[0])]
    return draft.model_copy(update={**kept, "withheld": withheld})


def measured_draft(facts: list[Fact], prior_dates: list[str], why: str) -> RadiologyDraft:
    """No model draft (the call failed): the measurements' own sentences, said to be only that."""
    checked = check_draft(RadiologyDraft(), facts, prior_dates)
    return checked.model_copy(update={"drafted_by": "measurements only", "note": why})


_CHANGE_WORDS_RE = re.compile(
    r"\b(?:worse\w*|worsen\w*|progress\w*|deteriorat\w*|improv\w*|better|resolv\w*|significant\w*|new opacit\w*)\b",
    re.IGNORECASE,
)
_NEGATED_RE = re.compile(r"\b(?:no|not|without|neither|nor)\b[^.;]{0,40}$", re.IGNORECASE)


def _claims_change(text: str) -> bool:
    """Says the chest got worse or better (not "no significant change", "not worse")."""
    return any(not _NEGATED_RE.search(text, 0, m.start()) for m in _CHANGE_WORDS_RE.finditer(text))


def _cite_copied(statement: DraftStatement, cited: list[Fact], citable: list[Fact]) -> DraftStatement:
    """A statement with no figure that copies a measurement fact's words cites that fact."""
    own = _shingles(statement.text, 3)
    if not own:
        return statement
    overlap = {f.id: len(own & _shingles(f.text, 3)) / len(own) for f in citable}
    best = max(overlap, key=overlap.get, default=None)
    if best is None or overlap[best] < 0.5 or max((overlap[f.id] for f in cited), default=0) >= 0.5:
        return statement
    return statement.model_copy(update={"facts": [best], "recited": True})


def _shingles(text: str, size: int = 5) -> set[tuple[str, ...]]:
    words = re.findall(r"[a-z0-9%]+", text.lower())
    return {tuple(words[i : i + size]) for i in range(max(0, len(words) - size + 1))}


def _echoes(text: str, instructions: set[tuple[str, ...]]) -> bool:
    """Half or more of the statement's five-word runs are the prompt's: a small model copying its task."""
    own = _shingles(text)
    return bool(own) and len(own & instructions) >= 0.5 * len(own)


def _states_score(text: str, score_fact: Fact) -> bool:
    """Whether a statement gives the change score (the fact's value) with its verdict."""
    if not isinstance(score_fact.value, int | float):
        return False
    number = f"{abs(score_fact.value):g}"
    return re.search(rf"(?<![\d.]){re.escape(number)}(?![\d.])", text) is not None and (
        "noise" in text.lower() or "worse" in text.lower() or "better" in text.lower())


def _measurement(fact: Fact) -> DraftStatement:
    return DraftStatement(text=fact.text, facts=[fact.id], source="measurement")


def _unsupported(section: str, index: int, statement: DraftStatement, facts: list[Fact],
                 by_id: dict[str, Fact], steady: bool) -> str | None:
    cited = [by_id[f] for f in statement.facts if f in by_id]
    if not cited:
        return "cites no measurement"
    if section == "comparison" and not any(f.kind == "comparison" for f in cited):
        return "a comparison that cites no comparison of the two films"
    if steady and _claims_change(statement.text):
        return "states a change that the comparison measured as within the same-day noise"
    report = verify_grounding(None, None, facts, {f"radiology_draft.{section}[{index}]": statement.text})
    if report.flags:
        flag = report.flags[0]
        return f"{flag.claim}: {flag.reason}"
    return misattributed(statement.text, draft_facts(facts))


def _cite_sources(statement: DraftStatement, citable: list[Fact]) -> DraftStatement:
    """A statement whose numbers and dates its cited facts do not state, but other measurement facts do (a small
    model picks a neighbouring label), is re-cited to those facts, and marked so."""
    claims = [q for q in scan_quantities(statement.text) if q.kind != "skip"]
    cited = [f for f in citable if f.id in statement.facts]
    if not claims:
        return _cite_copied(statement, cited, citable)
    if all(check_quantity(q, Record(cited)) is None for q in claims):
        return statement
    whole = [f for f in citable if all(check_quantity(q, Record([f])) is None for q in claims)]
    if whole:  # one fact states every figure: cite it alone
        return statement.model_copy(update={"facts": [whole[0].id], "recited": True})
    sources = []
    for claim in claims:
        stating = [f for f in citable if check_quantity(claim, Record([f])) is None]
        if not stating:
            return statement  # a number no measurement states: the grounding check withholds it
        sources += [f.id for f in stating[:1] if f.id not in sources]
    return statement.model_copy(update={"facts": sources, "recited": True})


def draft_texts(draft: RadiologyDraft | None) -> dict[str, str]:
    """The draft's statements by location, for the consult's grounding report."""
    if draft is None:
        return {}
    return {f"radiology_draft.{section}[{i}]": s.text
            for section, statements in draft.sections() for i, s in enumerate(statements)}
