"""What the case page shows, read from the consult's checkpointed state: safety first, then the draft with every
citation resolvable, then the perception tools' results. Plain data; the templates escape every value."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from medconsult.agents.followup import FollowUpTurn
from medconsult.records import Fact, Gap, ToolRecord
from medconsult.tools.base import Stage
from medconsult.tools.imaging.compare_radiographs import CompareRadiographsTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool

PERCEPTION_STAGES = (Stage.IMAGE, Stage.LUNGS, Stage.PRIOR)  # what the tools saw in the radiograph, beside its overlay


@dataclass(frozen=True)
class Citation:
    fact_id: str
    stance: str  # "supports" | "opposes" | "cites"
    text: str  # the fact's statement (empty when the id is unknown: the grounding check flags it)


@dataclass(frozen=True)
class DiagnosisView:
    name: str
    likelihood: str
    reasoning: str
    test: str
    citations: list[Citation]


@dataclass(frozen=True)
class ActionView:
    action: str
    category: str
    priority: str
    rationale: str
    citations: list[Citation]


@dataclass(frozen=True)
class Overlay:
    result_id: str
    image: str  # the radiograph's path
    summary: str
    warnings: list[str]


@dataclass(frozen=True)
class DraftLine:
    text: str
    citations: list[Citation]
    note: str  # "measured" (a tool's own sentence), "citation corrected", or ""


@dataclass(frozen=True)
class RadiologyView:
    sections: list[tuple[str, list[DraftLine]]]  # Findings, Comparison, Impression
    withheld: list[str]
    compared_with: list[str]
    comparisons: list[ToolRecord]  # compare_radiographs results: their prior | current image
    note: str | None


@dataclass
class CaseEvidence:
    safety: list[str] = field(
        default_factory=list
    )  # safety findings, withheld actions, unsupported statements
    gaps: list[Gap] = field(default_factory=list)
    summary: str | None = None
    diagnoses: list[DiagnosisView] = field(default_factory=list)
    working_diagnosis: str | None = None
    regimen: str | None = None
    actions: list[ActionView] = field(default_factory=list)
    cautions: list[str] = field(default_factory=list)
    overlays: list[Overlay] = field(default_factory=list)
    radiology: RadiologyView | None = None
    perception: list[ToolRecord] = field(default_factory=list)
    scores: list[ToolRecord] = field(default_factory=list)
    facts: dict[str, Fact] = field(default_factory=dict)
    records: dict[str, ToolRecord] = field(default_factory=dict)
    turns: list[tuple[FollowUpTurn, list[tuple[str, str | None]]]] = field(
        default_factory=list
    )  # answer pieces
    report_ready: bool = False
    signed: bool = False

    @property
    def empty(self) -> bool:
        return not (self.diagnoses or self.actions or self.records)


def case_evidence(state: dict[str, Any], followups: dict[str, Any] | None = None) -> CaseEvidence:
    """`followups`: the follow-up thread's state; its look-ups and the facts they added can be cited too."""
    followups = followups or {}
    records: list[ToolRecord] = list(state.get("tool_records") or [])
    facts = {fact.id: fact for fact in state.get("facts") or []}
    facts |= {fact.id: fact for fact in followups.get("facts") or []}
    evidence = CaseEvidence(
        gaps=list(state.get("gaps") or []),
        facts=facts,
        records={record.id: record for record in [*records, *(followups.get("tool_records") or [])]},
        report_ready=bool(state.get("report_path")),
        signed=state.get("sign_off") is not None,
    )
    evidence.safety = _safety_lines(state)
    evidence.turns = [(turn, answer_segments(turn.answer, facts)) for turn in followups.get("turns") or []]
    differential = state.get("differential")
    if differential is not None:
        evidence.summary = differential.summary
        evidence.diagnoses = [
            DiagnosisView(d.diagnosis, d.likelihood, d.reasoning, d.discriminating_test,
                          [_citation(facts, c.fact, c.stance) for c in d.evidence])
            for d in differential.diagnoses
        ]
    plan = state.get("plan")
    if plan is not None:
        evidence.working_diagnosis = plan.working_diagnosis
        chosen = state.get("chosen_regimen") or {}
        evidence.regimen = chosen.get("summary") or chosen.get("id") or None
        evidence.actions = [
            ActionView(
                a.action,
                a.category,
                a.priority,
                a.rationale,
                [_citation(facts, f, "cites") for f in a.evidence],
            )
            for a in plan.actions
        ]
        evidence.cautions = list(plan.cautions)
    evidence.radiology = _radiology(state.get("radiology_draft"), facts, records)
    for record in records:
        if not record.ok or not record.result:
            continue
        if record.tool == SegmentLungsTool.tool_name():
            evidence.overlays.append(Overlay(record.id, record.result["image"], record.result["summary"],
                                             list(record.result.get("warnings") or [])))
        elif record.stage in PERCEPTION_STAGES:
            evidence.perception.append(record)
        elif record.stage == Stage.SCORES:
            evidence.scores.append(record)
    return evidence


def _radiology(draft: Any, facts: dict[str, Fact], records: list[ToolRecord]) -> RadiologyView | None:
    """The checked radiology draft (agents/schemas.RadiologyDraft), each statement with its citations."""
    if draft is None:
        return None
    sections = [
        (name.capitalize(), [
            DraftLine(s.text, [_citation(facts, f, "cites") for f in s.facts],
                      "measured" if s.source == "measurement" else "citation corrected" if s.recited else "")
            for s in statements
        ])
        for name, statements in draft.sections()
    ]
    comparisons = [r for r in records if r.tool == CompareRadiographsTool.tool_name() and r.ok]
    return RadiologyView(sections, [f"{w.section}: \"{w.text}\": {w.reason}" for w in draft.withheld],
                         list(draft.compared_with), comparisons, draft.note)


def _citation(facts: dict[str, Fact], fact_id: str, stance: str) -> Citation:
    fact = facts.get(fact_id)
    return Citation(fact_id, stance, fact.text if fact else "")


def _safety_lines(state: dict[str, Any]) -> list[str]:
    lines = [f"{f.severity.upper()}: {f.message}" for f in state.get("safety_findings") or []]
    lines += [
        f"Withheld from the {w.draft} ({w.field}; it repeats an instruction found in the record): {w.action}"
        for w in state.get("withheld_actions") or []
    ]
    grounding = state.get("grounding")
    if grounding is not None:
        lines += [
            f"Unsupported ({flag.kind}): {flag.claim} in \u201c{flag.statement}\u201d"
            for flag in grounding.flags
        ]
    return lines


_FACT_ID_RE = re.compile(r"\bF\d+\b")


def answer_segments(text: str, known: set[str] | dict) -> list[tuple[str, str | None]]:
    """A follow-up answer as (text, fact id) pieces: a fact id the case holds becomes a link, the rest stays text."""
    pieces: list[tuple[str, str | None]] = []
    position = 0
    for match in _FACT_ID_RE.finditer(text):
        if match.group() in known:
            pieces += [(text[position : match.start()], None), (match.group(), match.group())]
            position = match.end()
    return [*pieces, (text[position:], None)]


def fhir_reference(resource: str | None) -> str | None:
    """A relative FHIR reference ("Observation/123") a citation can open; None for files and absolute URLs."""
    if not resource or "://" in resource or resource.startswith("/"):
        return None
    kind, _, identifier = resource.partition("/")
    if kind[:1].isupper() and kind.isalpha() and identifier and "/" not in identifier:
        return resource
    return None


def inside(folder: Path, path: str | Path) -> Path | None:
    """`path` when it lies inside `folder` (after resolving links), else None: the only files a case may serve."""
    resolved = Path(path).resolve()
    return resolved if resolved.is_relative_to(folder.resolve()) and resolved.is_file() else None
