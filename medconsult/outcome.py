"""Whether a consult produced what it exists for, in one line: the CLI's exit status and the report's first line.

A consult that could not identify the patient, could not reach the FHIR server, got no answer from any LLM step or
drafted no differential still writes its report (it says what is missing), but it is not a consult a physician can
use, and a script that ran it must be able to tell: `medconsult run` then exits non-zero with this reason.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

FHIR_DOWN = "FHIR server unreachable"


def consult_failure(state: Mapping[str, Any], trace_events: Iterable[Mapping[str, Any]]) -> str | None:
    """The reason the consult failed, or None. Checked in order: the FHIR server, the patient, the LLM, the
    differential (the model answered, but nothing usable: invalid JSON after the repair, or no evidence)."""
    gaps = list(state.get("gaps") or [])
    down = next((g for g in gaps if FHIR_DOWN in g.reason), None)
    if down is not None:
        return f"{FHIR_DOWN}: {down.what}: {down.reason}"
    if state.get("case") is not None and not state.get("patient_id"):
        patient = next((g for g in gaps if g.what == "patient record"), None)
        return "patient not found: " + (patient.reason if patient else f"{state['case'].patient!r}")
    llm = [e for e in trace_events if e.get("kind") == "llm"]
    if not any(not e.get("error") for e in llm):
        errors = [str(e["error"]) for e in llm if e.get("error")]
        why = errors[0] if errors else next((g.reason for g in gaps if g.what == "differential"), "none ran")
        return f"no LLM step succeeded: {why}"[:400]
    if state.get("case") is not None and state.get("differential") is None:
        why = next((g.reason for g in gaps if g.what == "differential"), "not drafted")
        return f"no differential: {why}"[:400]
    return None
