"""A physician's follow-up question on a consult: answered from the case's facts, cited, and checked.

Before the model answers, the question may send the graph back to the chart, deterministically (the model never
calls tools freely): an analyte it names that the record holds gets its history, and "notes", "encounters" or
"all labs" their fuller look-ups (`chart_requests`); a question on doses or kidney function gets the chosen
regimen's dose bands from the knowledge base (`dosing_request`). What they return is appended to the case's facts.

The model sees the consult's own system prompt (the record, byte for byte: the server's cached prefix), the draft
under review, the thread's earlier questions and the question, quoted. It fills `followup_request`: an answer of at
most four sentences and the facts it rests on (an enum of this case's facts). The answer is then checked like the
draft: every number against the facts, every citation written in the text ("F3") against the case, findings
against the record. An answer never changes the draft or the signed report.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, create_model

from medconsult.agents.deterministic.grounding import GroundingFlag, sentence_at, verify_grounding
from medconsult.agents.deterministic.quantities import find_analytes, scan_quantities
from medconsult.agents.evidence import citation_label, consult_system_prompt, fact_id
from medconsult.agents.evidence_requests import EvidenceRequest, observed_analytes
from medconsult.agents.schemas import Differential, TreatmentPlan
from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import Fact, Gap, ToolRecord
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool
from medconsult.tools.runner import records_of

QUESTION_LIMIT = 500
EARLIER_TURNS = 3  # the thread's last turns shown with a new question
_WRITTEN_ID_RE = re.compile(r"\bF\d+\b")


class FollowUpTurn(BaseModel):
    """One question and its answer, as the thread keeps them."""

    question: str
    asked_by: str
    answer: str
    evidence: list[str] = Field(default_factory=list)  # fact ids
    flags: list[GroundingFlag] = Field(default_factory=list)  # what the check found unsupported
    at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    error: str | None = None  # the model failed: no answer


_NOTES_RE = re.compile(r"\b(notes?|documented|progress note|history and physical)\b", re.IGNORECASE)
_ENCOUNTERS_RE = re.compile(
    r"\b(encounters?|admissions?|admitted|visits?|hospitali[sz]ations?)\b", re.IGNORECASE
)
_ALL_LABS_RE = re.compile(
    r"\b(all|other|every|full)\s+(the\s+)?(labs?|laboratory|blood (tests|results))\b", re.IGNORECASE
)


def chart_requests(question: str, records: list[ToolRecord]) -> list[EvidenceRequest]:
    """The look-ups a question asks for: the history of each analyte it names that the record holds (matched by
    the analyte vocabulary of the grounding check), older notes, more encounters, all labs."""
    named = {mention.analyte for mention in find_analytes(question)}
    held = {
        display: {m.analyte for m in find_analytes(display)} for display in observed_analytes(records)
    }
    requests = [
        EvidenceRequest(kind="history", analyte=display, reason="named in the follow-up question")
        for display, analytes in held.items() if analytes & named
    ][:3]
    if _ALL_LABS_RE.search(question):
        requests.append(EvidenceRequest(kind="all_labs", reason="the follow-up question asks for all labs"))
    if _NOTES_RE.search(question):
        requests.append(
            EvidenceRequest(kind="more_notes", reason="the follow-up question asks about the notes")
        )
    if _ENCOUNTERS_RE.search(question):
        requests.append(
            EvidenceRequest(kind="more_encounters", reason="the follow-up question asks about visits")
        )
    return requests


_DOSING_RE = re.compile(r"\b(dos(e|es|ing)|renal|kidney|e?gfr|crcl|creatinine clearance)\b", re.IGNORECASE)
_KIDNEY_VALUE_RE = re.compile(r"\b(?:e?gfr|crcl|creatinine clearance)\D{0,12}?(\d{1,3}(?:\.\d)?)", re.IGNORECASE)


def dosing_request(question: str, regimen_id: str | None, records: list[ToolRecord]) -> dict | None:
    """`regimen_dosing` arguments when the question asks about doses or kidney function and the plan chose a
    knowledge-base regimen: at the kidney function the question gives ("dose for eGFR 25?"), else the record's."""
    if not regimen_id or not _DOSING_RE.search(question):
        return None
    given = _KIDNEY_VALUE_RE.search(question)
    egfr = float(given.group(1)) if given else _recorded_egfr(records)
    return {"regimen_id": regimen_id, **({"egfr": egfr} if egfr else {})}


def _recorded_egfr(records: list[ToolRecord]) -> float | None:
    found = [r.result.get("egfr") for r in records_of(records, EgfrCkdEpi2021Tool)]
    return next((value for value in found if value), None)


def followup_request(labels: list[str]) -> type[BaseModel]:
    if not labels:
        raise ValueError("a follow-up needs at least one fact to cite")
    label = Literal[tuple(labels)]
    return create_model(
        "FollowUpAnswer", __doc__="The answer to the physician's question, and the facts it rests on.",
        answer=(str, Field(..., max_length=600)),
        evidence=(list[label], Field(..., min_length=1, max_length=4)),  # an answer rests on the record
    )


async def answer_followup(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    question: str,
    asked_by: str,
    facts: list[Fact],
    gaps: list[Gap],
    differential: Differential | None,
    plan: TreatmentPlan | None,
    earlier: list[FollowUpTurn],
    as_of: date | None = None,
    synthetic_dates: bool = False,
    config: RunnableConfig | None = None,
) -> FollowUpTurn:
    question = " ".join(question.split())[:QUESTION_LIMIT]
    ask = render("followup.user.md", question=question, differential=differential, plan=plan,
                 earlier=earlier[-EARLIER_TURNS:])
    messages = [SystemMessage(consult_system_prompt(facts, gaps, as_of, synthetic_dates)), HumanMessage(ask)]
    schema = followup_request([citation_label(f) for f in facts])
    reply = (await structured_call(model, schema, messages, method=method, config=config)).model_dump()
    evidence = list(dict.fromkeys(fact_id(label) for label in reply["evidence"]))
    return FollowUpTurn(question=question, asked_by=asked_by, answer=reply["answer"], evidence=evidence,
                        flags=check_answer(reply["answer"], facts, question))


def check_answer(answer: str, facts: list[Fact], question: str = "") -> list[GroundingFlag]:
    """The draft's grounding check on the answer's text, and every fact id written in it must be the case's.
    A number the physician's question gave ("what if the CRP were 10?") is theirs to reason with, not a claim."""
    given = {q.value for q in scan_quantities(question)}
    flags = [
        flag
        for flag in verify_grounding(None, None, facts, {"followup.answer": answer}).flags
        if not (flag.kind == "number" and {q.value for q in scan_quantities(flag.claim)} <= given)
    ]
    known = {fact.id for fact in facts}
    for match in _WRITTEN_ID_RE.finditer(answer):
        if match.group() not in known:
            flags.append(GroundingFlag(location="followup.answer", statement=sentence_at(answer, match.start()),
                                       claim=match.group(), reason=f"cites {match.group()}, which does not exist",
                                       kind="citation"))
    return flags
