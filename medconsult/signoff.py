"""Clinician sign-off: the graph pauses on the draft (a LangGraph interrupt) until a physician decides.

The interrupt carries a `SignOffRequest`; the run resumes with a `SignOff`. The CLI asks at the terminal, batch runs
pass `--auto-approve`, and a web UI can answer the same interrupt: nothing here knows who answers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from pydantic import BaseModel, Field


class SignOffRequest(BaseModel):
    """What the physician is asked to sign: where the draft is and what needs their attention."""

    case_id: str
    draft_report: str
    working_diagnosis: str | None = None
    safety_flags: list[str] = Field(default_factory=list)
    unsupported_statements: int = 0
    gaps: int = 0


class SignOff(BaseModel):
    decision: Literal["approve", "edit", "reject"]
    reviewer: str = Field("unnamed reviewer", max_length=120)
    note: str | None = Field(None, max_length=4000, description="amendments (edit) or the reason (reject)")


Approver = Callable[[SignOffRequest], SignOff]


def auto_approve(request: SignOffRequest) -> SignOff:
    """Batch runs: approval is recorded as automatic, never as a physician's."""
    return SignOff(decision="approve", reviewer="auto-approve (batch run, not reviewed by a physician)")
