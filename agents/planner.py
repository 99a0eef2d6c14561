"""Treatment-plan step: one schema-constrained LLM call over the differential and the evidence catalogue."""

from __future__ import annotations

from datetime import date

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from medconsult.agents.differential import DEFAULT_QUESTION
from medconsult.agents.evidence import Fact, Gap, citation_label, consult_system_prompt, fact_id
from medconsult.agents.schemas import Differential, TreatmentPlan, plan_request
from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import structured_call
from medconsult.prompts import render


async def draft_plan(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    differential: Differential,
    facts: list[Fact],
    gaps: list[Gap],
    question: str | None,
    as_of: date | None,
    config: RunnableConfig | None = None,
) -> TreatmentPlan:
    messages = [
        SystemMessage(consult_system_prompt(facts, gaps, as_of)),
        HumanMessage(
            render("plan.user.md", question=question or DEFAULT_QUESTION, diagnoses=differential.diagnoses)
        ),
    ]
    schema = plan_request([citation_label(f) for f in facts])
    draft = (await structured_call(model, schema, messages, method=method, config=config)).model_dump()
    for action in draft["actions"]:
        action["evidence"] = [fact_id(label) for label in action["evidence"]]
    return TreatmentPlan.model_validate(draft)
