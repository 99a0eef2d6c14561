"""Measurements the harness takes after an agent finishes a case, from outside the agent.

- answer checks: the case label's expected answers (evals/record_checks.py) against the text the model wrote (its
  summary, reasoning, differential and plan), never the report's record catalogue or score tables, which the
  template fills from the tool results whatever the model says; both agents are checked on the same fields;
- calculator agreement: the calculators the agent ran against an independent recomputation (evals/calculator_check.py)
  from the raw FHIR resources, read here as JSON without the project's record tools;
- label visibility: whether a statement the model was shown names the case's answer.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from medconsult.clinical.etiology import reveals
from medconsult.evals.calculator_check import calculator_agreement, recompute_calculators
from medconsult.evals.record_checks import score_checks
from medconsult.fhir.client import FhirGateway

RECORD_LIMIT = 2000  # resources of one type for one patient; the recomputation filters by date itself


def answer_checks(label: dict[str, Any] | None, outputs: dict[str, Any]) -> list[dict[str, Any]] | None:
    checks = (label or {}).get("checks")
    if not checks:
        return None
    return [result.model_dump(mode="json") for result in score_checks(checks, model_text(outputs))]


def model_text(outputs: dict[str, Any]) -> str:
    """Every field the model wrote, one per line, from the agent's outputs (the same shape for both agents)."""
    differential = outputs.get("differential") or {}
    plan = outputs.get("plan") or {}
    parts: list[Any] = [differential.get("summary")]
    for diagnosis in differential.get("diagnoses") or []:
        parts += [diagnosis.get("diagnosis"), diagnosis.get("reasoning"), diagnosis.get("discriminating_test")]
    parts += [plan.get("working_diagnosis"), plan.get("regimen_reason"), *(plan.get("off_knowledge_base") or [])]
    for action in plan.get("actions") or []:
        parts += [action.get("action"), action.get("rationale")]
    parts += plan.get("cautions") or []
    return "\n".join(str(part) for part in parts if part)


def raw_record(gateway: FhirGateway, patient_id: str) -> dict[str, list[dict]]:
    """The patient, its observations and conditions as plain FHIR JSON."""
    patient_id = patient_id.removeprefix("Patient/")
    return {
        "Patient": [gateway.read(Patient, patient_id).as_json()],
        "Observation": [o.as_json() for o in gateway.search(Observation, {"patient": patient_id}, RECORD_LIMIT)],
        "Condition": [c.as_json() for c in gateway.search(Condition, {"patient": patient_id}, RECORD_LIMIT)],
    }


def calculator_check(
    calculators: dict[str, dict], patient_id: str | None, as_of: date | None, gateway: FhirGateway
) -> list[dict[str, Any]] | None:
    """None when the agent ran none of the checked calculators or never identified the patient."""
    if not calculators or not patient_id:
        return None
    recomputed = recompute_calculators(raw_record(gateway, patient_id), as_of or date.today())
    return calculator_agreement(recomputed, calculators)


SEEN_FILE = "seen.json"
INFERRED_KINDS = ("score", "estimate")  # evidence a model or calculator inferred: it may name a class


def label_visibility(label: dict[str, Any] | None, seen: list[dict[str, str]]) -> dict[str, Any]:
    """Whether any statement the agent saw gives its label away, by the scorer's own vocabulary (what the masker
    withholds). Scores and estimates are left out: "favours bacterial" is the markers calculator's inference from
    the labs, and an etiology estimate or a similar case's label is a model's inference from the image and record;
    the agent is meant to have them, and they are not the label."""
    finding = (label or {}).get("finding")
    if not finding:
        return {}
    hits = [{"kind": item["kind"], "words": words, "text": item["text"][:200]} for item in seen
            if item.get("kind") not in INFERRED_KINDS and (words := reveals(item["text"], finding))]
    return {"label_visible": bool(hits), "label_visible_in": hits[:5]}
