"""Differential-diagnosis step: one schema-constrained LLM call over the evidence catalogue."""

from __future__ import annotations

from datetime import date

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from medconsult.agents.deterministic.candidates import Candidate
from medconsult.agents.evidence import citation_label, consult_system_prompt, fact_id
from medconsult.agents.schemas import Differential, differential_from_request, differential_request
from medconsult.clinical.acute import explains_acute_respiratory
from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import Fact, Gap

DEFAULT_QUESTION = "What is the differential diagnosis for this patient's current presentation?"


async def draft_differential(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    facts: list[Fact],
    gaps: list[Gap],
    question: str | None,
    as_of: date | None,
    synthetic_dates: bool = False,
    reconsider: Differential | None = None,
    candidates: list[Candidate] | None = None,
    config: RunnableConfig | None = None,
) -> Differential:
    """`reconsider`: an earlier draft whose top two diagnoses explain nothing acute; the model is told so.
    `candidates`: diagnoses named by cause, the tools' suggestions first (agents.candidates)."""
    ask = render("differential.user.md", question=question or DEFAULT_QUESTION, candidates=candidates or [])
    if reconsider is not None:
        top = [d.diagnosis for d in reconsider.diagnoses[:2]]
        ask += render("differential_reconsider.user.md", first=top[0], second=top[1] if len(top) > 1 else None)
    messages = [SystemMessage(consult_system_prompt(facts, gaps, as_of, synthetic_dates)), HumanMessage(ask)]
    schema = differential_request([citation_label(f) for f in facts])
    answer = (await structured_call(model, schema, messages, method=method, config=config)).model_dump()
    draft = differential_from_request(answer, fact_id)
    draft["diagnoses"] = _distinct([_candidate_named(d, candidates or []) for d in draft["diagnoses"]])
    return Differential.model_validate(draft)  # the static type: storable in the checkpoint


def explains_presentation(differential: Differential) -> bool:
    """Whether the first or second diagnosis can explain an acute respiratory presentation."""
    return any(explains_acute_respiratory(d.diagnosis) for d in differential.diagnoses[:2])


def _candidate_named(diagnosis: dict, candidates: list[Candidate]) -> dict:
    """A small model copies a candidate's line whole, figures included ("Viral ... in a child (similar cases 5 of
    5)"): keep the candidate's name, which the knowledge base and the scorer know."""
    text = " ".join(diagnosis["diagnosis"].split())
    for candidate in candidates:
        if text.lower().startswith(candidate.name.lower()) and text[len(candidate.name):].lstrip().startswith("("):
            return {**diagnosis, "diagnosis": candidate.name}
    return diagnosis


def _distinct(diagnoses: list[dict]) -> list[dict]:
    """Small models sometimes repeat a diagnosis at lower ranks; keep its first, highest-ranked, entry."""
    seen: set[str] = set()
    kept = []
    for diagnosis in diagnoses:
        key = " ".join(diagnosis["diagnosis"].lower().split())
        if key not in seen:
            seen.add(key)
            kept.append(diagnosis)
    return kept
