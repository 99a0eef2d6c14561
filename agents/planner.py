"""Treatment-plan step: one schema-constrained LLM call over the differential and the evidence catalogue."""

from __future__ import annotations

from datetime import date

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from langchain_core.runnables import RunnableConfig

from medconsult.agents.deterministic.regimens import drug_names
from medconsult.agents.differential import DEFAULT_QUESTION
from medconsult.agents.evidence import citation_label, consult_system_prompt, fact_id
from medconsult.agents.schemas import Differential, TreatmentPlan, plan_request
from medconsult.config import StructuredOutputMethod
from medconsult.knowledge import SelectedRegimen
from medconsult.llm.structured import structured_call
from medconsult.prompts import render
from medconsult.records import Fact, Gap
from medconsult.safety import SafetyFinding


async def draft_plan(
    model: BaseChatModel,
    *,
    method: StructuredOutputMethod,
    differential: Differential,
    facts: list[Fact],
    gaps: list[Gap],
    question: str | None,
    as_of: date | None,
    synthetic_dates: bool = False,
    regimens: list[SelectedRegimen] = (),
    safety_findings: list[SafetyFinding] = (),
    config: RunnableConfig | None = None,
) -> TreatmentPlan:
    """`regimens` are the knowledge-base options; `safety_findings` the blocks a previous draft ran into."""
    reasons = list(dict.fromkeys(r.selection_reason for r in regimens))
    prompt = render(
        "plan.user.md",
        question=question or DEFAULT_QUESTION,
        diagnoses=differential.diagnoses,
        shared_reason=reasons[0] if len(reasons) == 1 else None,  # said once instead of on every line
        regimens=[{"id": r.id, "line": r.line, "settings": r.settings,
                   "why": None if len(reasons) == 1 else r.selection_reason, "what": drug_names(r)}
                  for r in regimens],
        findings=[f.message for f in safety_findings if f.severity == "block"],
    )
    messages = [SystemMessage(consult_system_prompt(facts, gaps, as_of, synthetic_dates)), HumanMessage(prompt)]
    schema = plan_request([citation_label(f) for f in facts], [r.id for r in regimens])
    draft = (await structured_call(model, schema, messages, method=method, config=config)).model_dump()
    for action in draft["actions"]:
        action["evidence"] = [fact_id(label) for label in action["evidence"]]
    return TreatmentPlan.model_validate(draft)
