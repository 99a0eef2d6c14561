"""Asking for more of the record before the differential: a bounded, schema-constrained loop.

The model never calls tools freely. It fills `EvidenceRequests`, whose analytes are an enum of what this case's
record holds, and the graph maps each request to a registered tool with fixed arguments. The graph bounds the
rounds (`evidence_rounds`); every request is written to the trace with the tool calls it caused.
"""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from medconsult.agents.differential import DEFAULT_QUESTION
from medconsult.agents.evidence import consult_system_prompt
from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import Fact, Gap, ToolRecord
from medconsult.tools.base import MedTool
from medconsult.tools.fhir.clinical_notes import ClinicalNotesTool
from medconsult.tools.fhir.encounters import EncountersTool
from medconsult.tools.fhir.observations import ObservationsTool
from medconsult.tools.runner import records_of

RequestKind = Literal["history", "all_labs", "more_notes", "more_encounters"]


class EvidenceRequest(BaseModel):
    kind: RequestKind
    analyte: str | None = Field(None, description="for `history`: the analyte, as named in the record")
    reason: str = Field(..., max_length=80)


class EvidenceRequests(BaseModel):
    """Further look-ups in the record wanted before the differential; an empty list when the record suffices."""

    requests: list[EvidenceRequest] = Field(default_factory=list, max_length=3)


def observed_analytes(records: list[ToolRecord]) -> dict[str, tuple[str, str]]:
    """Analyte name -> (LOINC code, observation category), from this case's observation results."""
    analytes: dict[str, tuple[str, str]] = {}
    for record in records_of(records, ObservationsTool):
        for item in record.result.get("observations", []):
            if item.get("display") and item.get("loinc"):
                analytes.setdefault(item["display"], (item["loinc"], record.result["category"]))
    return analytes


def request_schema(analytes: list[str]) -> type[BaseModel]:
    """`EvidenceRequests` with `analyte` restricted to the record's analytes (none: no history requests)."""
    analyte_type: Any = Literal[tuple(analytes)] | None if analytes else None
    request = create_model("EvidenceRequest", __base__=EvidenceRequest, analyte=(analyte_type, None))
    return create_model(
        "EvidenceRequests", __base__=EvidenceRequests, __doc__=EvidenceRequests.__doc__,
        requests=(list[request], Field(default_factory=list, max_length=3)),
    )


async def ask_for_evidence(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    facts: list[Fact],
    gaps: list[Gap],
    analytes: list[str],
    question: str | None,
    as_of: date | None,
    synthetic_dates: bool = False,
    round_number: int,
    rounds: int,
    config: RunnableConfig | None = None,
) -> EvidenceRequests:
    messages = [
        SystemMessage(consult_system_prompt(facts, gaps, as_of, synthetic_dates)),
        HumanMessage(
            render("evidence_request.user.md", question=question or DEFAULT_QUESTION, round=round_number, rounds=rounds)
        ),
    ]
    answer = await structured_call(model, request_schema(analytes), messages, method=method, config=config)
    return EvidenceRequests.model_validate(answer.model_dump())


def tool_call_for(
    request: EvidenceRequest, analytes: dict[str, tuple[str, str]]
) -> tuple[type[MedTool], dict] | None:
    """The registered tool and arguments that answer a request; None for a history of an unknown analyte."""
    if request.kind == "history":
        if request.analyte not in analytes:
            return None
        code, category = analytes[request.analyte]
        return ObservationsTool, {"category": category, "loinc_codes": [code], "latest_per_code": False,
                                     "limit": 8}
    if request.kind == "all_labs":
        return ObservationsTool, {"category": "laboratory", "limit": 80}
    if request.kind == "more_notes":
        return ClinicalNotesTool, {"limit": 6}
    return EncountersTool, {"limit": 12}
