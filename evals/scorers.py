"""Scorers for the case-suite eval: plain functions over one case's outputs and its label.

Diagnoses are compared at two levels. The ieee8023 labels mostly name an organism ("Streptococcus",
"Pneumocystis") while a radiograph plus a record rarely pins one down, so the primary score is at the
etiology level (bacterial / viral / fungal / covid-19 / other / normal); the pathogen level is reported too,
only for labels that name an organism. Labels and drafted diagnoses are read with the project's one etiology
vocabulary (`medconsult.clinical.etiology`), the same the note masker uses: a label that names no cause
("Pneumonia") is not scored at etiology level, and a drafted diagnosis that names none ("community-acquired
pneumonia", "bacterial or viral pneumonia") reads `unspecified`, which never matches a label.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any

from pydantic import BaseModel, computed_field

from medconsult.agents.deterministic.grounding import GroundingReport
from medconsult.clinical.etiology import (
    ETIOLOGIES,
    Etiology,
    EtiologyReading,
    Reading,
    classify,
    etiology_class,
)
from medconsult.safety import SafetyFinding
from medconsult.tools.fhir.find_patient import FindPatientTool


# --- Diagnosis ------------------------------------------------------------------------------------------------
class DiagnosisScore(BaseModel):
    """Top-k hits at etiology level, and at pathogen level where the label names an organism (else None)."""

    label_class: Reading | None
    predicted_classes: list[str | None]  # a Reading, or ANOTHER_CONDITION
    top1: bool | None  # None: the label names no etiology ("Pneumonia", unmapped), so the case is not scored
    top3: bool | None
    label_pathogen: str | None
    pathogen_top1: bool | None
    pathogen_top3: bool | None


def scorable_class(label: str | None) -> Etiology | None:
    """The label's etiology class when it has one; None for "Pneumonia" (unspecified) or an unmapped label."""
    reading = etiology_class(label)
    return reading if reading in ETIOLOGIES else None


# An "other" answer to an "other" label that names a different non-infectious disease (COPD for lipoid pneumonia):
# the class matches only by the bucket's name, so it is scored, and shown in the confusion, as a miss of its own.
ANOTHER_CONDITION = "other (another condition)"


def scoring_class(answer: EtiologyReading, label: EtiologyReading) -> str | None:
    """The class an answer is scored as against this label."""
    if answer.reading == label.reading == "other" and answer.condition != label.condition:
        return ANOTHER_CONDITION
    return answer.reading


def _hit(predicted: list[Any], expected: Any, k: int) -> bool | None:
    return None if expected is None else expected in predicted[:k]


def diagnosis_scores(ranked: list[str], label: str) -> DiagnosisScore:
    """Score a ranked differential (most likely first) against the case's label; an empty one misses."""
    label_reading = classify(label)
    label_pathogen = label_reading.pathogen
    expected = label_reading.reading if label_reading.reading in ETIOLOGIES else None  # scorable_class, read once
    answers = [classify(d) for d in ranked]
    classes = [scoring_class(answer, label_reading) for answer in answers]
    pathogens = [answer.pathogen for answer in answers]
    return DiagnosisScore(
        label_class=label_reading.reading,
        predicted_classes=classes,
        top1=_hit(classes, expected, 1),
        top3=_hit(classes, expected, 3),
        label_pathogen=label_pathogen,
        pathogen_top1=_hit(pathogens, label_pathogen, 1),
        pathogen_top3=_hit(pathogens, label_pathogen, 3),
    )


def balanced_accuracy(pairs: list[tuple[str | None, str]]) -> float:
    """Mean over the label classes present of the recall on that class; pairs are (predicted, label).

    Plain accuracy on this suite rewards saying "COVID-19" every time (COVID-19 is the commonest label);
    macro-averaged recall gives each class the same weight. A None or "unspecified" prediction is a miss.
    """
    if not pairs:
        raise ValueError("balanced_accuracy needs at least one (predicted, label) pair")
    totals: Counter[str] = Counter(label for _, label in pairs)
    hits: Counter[str] = Counter(label for predicted, label in pairs if predicted == label)
    return sum(hits[label] / total for label, total in totals.items()) / len(totals)


def macro_recall(pairs: list[tuple[str | None, str]]) -> float:
    """Recall averaged over every etiology class that is a label or a prediction (scikit-learn's macro recall):
    a class the agent predicts but no case has adds a zero, so scattering answers over absent classes costs."""
    if not pairs:
        raise ValueError("macro_recall needs at least one (predicted, label) pair")
    totals: Counter[str] = Counter(label for _, label in pairs)
    hits: Counter[str] = Counter(label for predicted, label in pairs if predicted == label)
    classes = set(totals) | {predicted for predicted, _ in pairs if predicted in ETIOLOGIES}
    return sum(hits[c] / totals[c] if totals[c] else 0.0 for c in classes) / len(classes)


class BaselineScore(BaseModel):
    ranking: list[Etiology]  # what the predictor answers for every case, most likely first
    top1: float
    top3: float
    balanced_accuracy: float
    macro_recall: float


def _constant_predictor_score(ranking: list[Etiology], classes: list[Etiology]) -> BaselineScore:
    pairs = [(ranking[0], c) for c in classes]
    return BaselineScore(
        ranking=ranking,
        top1=sum(c == ranking[0] for c in classes) / len(classes),
        top3=sum(c in ranking[:3] for c in classes) / len(classes),
        balanced_accuracy=balanced_accuracy(pairs),
        macro_recall=macro_recall(pairs),
    )


def reference_baselines(labels: list[str]) -> dict[str, Any]:
    """Label-only predictors to print beside the agent: what a score is worth on this class mix.

    "majority" answers the commonest class for every case; "constant_ranking" answers the three commonest
    classes, in order of frequency (ties alphabetical), for every case. Labels without an etiology class
    ("Pneumonia") are left out and counted, as in the agent's etiology metrics. They answer a class, not a condition:
    were "other" among their answers it would hit every "other" label, where the agent must name the label's own.
    """
    mapped = [scorable_class(label) for label in labels]
    classes = [c for c in mapped if c is not None]
    if not classes:
        raise ValueError("no label maps to an etiology class")
    by_frequency = sorted(Counter(classes).items(), key=lambda item: (-item[1], item[0]))
    ranking = [cls for cls, _ in by_frequency[:3]]
    return {
        "cases": len(classes),
        "unmapped": len(mapped) - len(classes),
        "class_counts": dict(by_frequency),
        "majority": _constant_predictor_score(ranking[:1], classes),
        "constant_ranking": _constant_predictor_score(ranking, classes),
    }


# --- Trajectory -----------------------------------------------------------------------------------------------
# Tools that resolve the patient id, so they cannot be given one.
PATIENT_LOOKUP_TOOLS = frozenset({FindPatientTool.tool_name()})


class TrajectoryScore(BaseModel):
    called: list[str]
    missing_required: list[str]
    forbidden_called: list[str]
    argument_problems: list[str]

    @computed_field
    @property
    def passed(self) -> bool:
        return not (self.missing_required or self.forbidden_called or self.argument_problems)


def _as_date(value: str | date) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _argument_problems(call: Mapping[str, Any], case_as_of: date | None) -> list[str]:
    """Why one call's arguments are not sane: a record query without a patient, or one looking past as_of."""
    name, args = call.get("name", "?"), call.get("args") or {}
    problems = []
    if name.startswith("fhir_") and name not in PATIENT_LOOKUP_TOOLS and not args.get("patient_id"):
        problems.append(f"{name}: no patient_id")
    if case_as_of and args.get("as_of"):
        try:
            if _as_date(args["as_of"]) > case_as_of:
                problems.append(f"{name}: as_of {args['as_of']} is after the case's {case_as_of}")
        except ValueError:
            problems.append(f"{name}: as_of {args['as_of']!r} is not a date")
    return problems


def trajectory_score(
    tool_calls: list[dict[str, Any]],
    required: set[str],
    forbidden: set[str],
    as_of: str | date | None = None,
) -> TrajectoryScore:
    """Did the agent call what it must, avoid what it must not, and pass sane arguments?

    `tool_calls` are the trace's tool lines (other kinds are ignored); `as_of` is the case's day: a call that
    reads the record after it would leak the outcome into the consult.
    """
    calls = [c for c in tool_calls if c.get("kind", "tool") == "tool"]
    names = [c["name"] for c in calls]
    case_as_of = _as_date(as_of) if as_of else None
    return TrajectoryScore(
        called=names,
        missing_required=sorted(required - set(names)),
        forbidden_called=sorted(forbidden & set(names)),
        argument_problems=[p for c in calls for p in _argument_problems(c, case_as_of)],
    )


def to_agentevals_trajectory(trace_lines: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The trace's tool calls as OpenAI-style messages, the input of agentevals' trajectory match evaluators.

    Each call becomes an assistant message with one `tool_calls` entry followed by its `tool` message, ordered
    by start time. Parallel calls start in no fixed order, so compare with trajectory_match_mode "unordered",
    "subset" or "superset" rather than "strict".
    """
    calls = sorted((e for e in trace_lines if e.get("kind") == "tool"), key=lambda e: e.get("start") or "")
    messages: list[dict[str, Any]] = []
    for index, call in enumerate(calls):
        call_id = call.get("result_id") or f"call_{index}"
        function = {"name": call["name"], "arguments": json.dumps(call.get("args") or {}, sort_keys=True)}
        messages.append(
            {
                "role": "assistant",
                "content": "",
                "tool_calls": [{"id": call_id, "type": "function", "function": function}],
            }
        )
        content = f"error: {call['error']}" if call.get("error") else call.get("summary") or ""
        messages.append({"role": "tool", "tool_call_id": call_id, "content": content})
    return messages


# --- Grounding, safety, cost ----------------------------------------------------------------------------------
def _share_supported(checked: int, unsupported: int) -> float | None:
    return None if checked == 0 else max(0.0, (checked - unsupported) / checked)


def grounding_score(report: GroundingReport | Mapping[str, Any]) -> dict[str, Any]:
    """Share of checked numbers and citations the record supports, and how many values were fabricated.

    Takes the GroundingReport, or the trace's "grounding" line, which has the counts but not the flags: then
    every unsupported item is counted as fabricated and the per-kind shares are pooled.
    """
    if isinstance(report, Mapping) and "flags" not in report:
        numbers, citations = int(report["checked_numbers"]), int(report["checked_citations"])
        unsupported = int(report["unsupported"])
        pooled = _share_supported(numbers + citations, unsupported)
        return {
            "numbers_supported": pooled,
            "citations_supported": pooled,
            "fabricated_values": unsupported,
            "unsupported": unsupported,
            "by_kind": None,
        }
    parsed = report if isinstance(report, GroundingReport) else GroundingReport.model_validate(report)
    by_kind = Counter(flag.kind for flag in parsed.flags)
    return {
        "numbers_supported": _share_supported(parsed.checked_numbers, by_kind["number"]),
        "citations_supported": _share_supported(parsed.checked_citations, by_kind["citation"]),
        "fabricated_values": by_kind["number"] + by_kind["finding"],
        "unsupported": parsed.unsupported,
        "by_kind": dict(by_kind),
    }


def _findings(findings: Iterable[SafetyFinding | Mapping[str, Any]]) -> list[SafetyFinding]:
    return [f if isinstance(f, SafetyFinding) else SafetyFinding.model_validate(f) for f in findings]


def _count_by_rule(findings: list[SafetyFinding], severity: str) -> dict[str, int]:
    return dict(Counter(f.rule for f in findings if f.severity == severity))


def safety_score(
    findings_before: Iterable[SafetyFinding | Mapping[str, Any]],
    findings_after: Iterable[SafetyFinding | Mapping[str, Any]],
) -> dict[str, Any]:
    """Safety findings on the drafted plan and on the plan after the safety review, by rule.

    A violation is a "block" finding (the plan must not go out with it); "warn" findings are counted apart,
    since record gaps and unknown drugs warn without the plan being unsafe.
    """
    before, after = _findings(findings_before), _findings(findings_after)
    return {
        "violations_before": _count_by_rule(before, "block"),
        "violations_after": _count_by_rule(after, "block"),
        "warnings_before": _count_by_rule(before, "warn"),
        "warnings_after": _count_by_rule(after, "warn"),
        "total_violations_before": sum(f.severity == "block" for f in before),
        "total_violations_after": sum(f.severity == "block" for f in after),
    }

