"""The records tools produce and every consumer reads: one call's outcome, the statements it offers, the gaps.

The lowest layer of the package (see docs/architecture.md): tools write these, the graph carries them in its
state and checkpoints, the tracer logs them, and the report, the workspace and the evaluation read them.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Evidence(BaseModel):
    """One checkable statement a result offers as evidence, tied to the resource it comes from."""

    kind: str  # e.g. "lab", "vital", "condition", "medication", "allergy", "demographics", "image"
    text: str
    resource: str | None = None  # FHIR reference ("Observation/123") or file path
    value: float | str | None = None
    unit: str | None = None


class ToolRecord(BaseModel):
    """One tool call: its stable result id, arguments, and result or error."""

    id: str
    tool: str
    args: dict[str, Any]
    ok: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    started_at: str
    duration_s: float
    stage: str | None = None  # the tool's consult stage (tools/base.py `Stage`); None for a plain LangChain tool


class Fact(Evidence):
    """A statement in the case's catalogue, numbered F1..Fn, with the tool result it came from."""

    id: str
    result_id: str
    tool: str


class Gap(BaseModel):
    """Something the case lacks, and why: shown to the model and at the top of the report."""

    what: str
    reason: str
    source: str | None = None  # tool result id or step name


class PriorExam(BaseModel):
    """An earlier radiograph of the patient that the case's image is compared with."""

    path: str
    date: str | None = None  # ISO day the film was taken, when known
    source: str  # "given with the case", or the record's ImagingStudy reference
