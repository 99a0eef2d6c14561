"""The ReAct baseline agent's schemas and messages: the evaluation's point of comparison for the consult graph.

MedRAX-style: one model, the same registered tools, free choice of which tool to call next and when to stop; no
fixed record steps, no fact enum, no knowledge-base regimens, no safety review in the loop. Each step is one
schema-constrained call whose schema is a union: a thought plus either one tool with that tool's own argument
schema, or the final answer. (Small models do not call tools reliably with `tool_choice="auto"`; a forced union
keeps the choice the model's while making every call parseable, on llama.cpp and vLLM alike.)
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from langchain_core.tools import BaseTool
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic.fields import FieldInfo

from medconsult.agents.deterministic.grounding import GroundingReport, verify_grounding
from medconsult.agents.deterministic.safety_review import DRUG_CATEGORIES
from medconsult.agents.schemas import ActionCategory, Likelihood
from medconsult.cases import Case
from medconsult.inert import inert
from medconsult.records import Fact, ToolRecord
from medconsult.safety import PlannedDrug, SafetyContext, SafetyFinding, parse_drugs, review_plan
from medconsult.tools.base import ToolResult
from medconsult.tools.fhir.find_patient import FindPatientTool

FINAL = "final_answer"
PATIENT_LOOKUP = FindPatientTool.tool_name()
OBSERVATION_CHARS = 1200  # per tool result: six steps and the answer fit an 8k context
ARGS_SET_BY_HARNESS = ("as_of",)
GRAMMAR_STRING_CAP = 256  # the case's review date: later records must stay hidden, whatever the model asks


class AnswerDiagnosis(BaseModel):
    diagnosis: str = Field(..., max_length=80)
    likelihood: Likelihood
    reasoning: str = Field(..., max_length=300)


class AnswerAction(BaseModel):
    action: str = Field(..., max_length=140)
    category: ActionCategory
    rationale: str = Field(..., max_length=200)


class ReactAnswer(BaseModel):
    """The final answer: ranked differential and prioritised plan, most likely / most urgent first."""

    summary: str = Field(..., max_length=400)
    diagnoses: list[AnswerDiagnosis] = Field(..., min_length=1, max_length=4)
    plan: list[AnswerAction] = Field(..., min_length=1, max_length=6)


class FinalAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool: Literal["final_answer"]
    answer: ReactAnswer


def step_model(tools: list[BaseTool], *, final_only: bool = False) -> type[BaseModel]:
    """`ReactStep`: a thought and one action. Tools with the same arguments share one branch of the union (the
    calculators all take just a patient id), which keeps the schema, sent with every step, small."""
    action: Any = FinalAnswer
    if not final_only:
        choices = (*(_call_model(group) for group in _by_arguments(tools)), FinalAnswer)
        action = Annotated[Union[choices], Field(discriminator="tool")]  # noqa: UP007 - a union built at run time
    return create_model(
        "ReactStep",
        __doc__="One step: what you think, then one tool call or the final answer.",
        thought=(str, Field(..., max_length=300)),
        action=(action, ...),
    )


def _arguments_model(tool: BaseTool) -> type[BaseModel]:
    fields = {
        name: _capped(field) for name, field in tool.args_schema.model_fields.items() if name not in ARGS_SET_BY_HARNESS
    }
    return create_model(f"{tool.args_schema.__name__}_arguments", **fields)


def _capped(field: FieldInfo) -> tuple[Any, FieldInfo]:
    """llama.cpp expands maxLength into nested rules and rejects a grammar with 1024-character paths; the tool's own
    schema still validates the value."""
    limit = next((m.max_length for m in field.metadata if getattr(m, "max_length", None)), None)
    if field.annotation is str and limit and limit > GRAMMAR_STRING_CAP:
        default = ... if field.is_required() else field.default
        return str, Field(default, description=field.description, max_length=GRAMMAR_STRING_CAP)
    return field.annotation, field


def ordered_tools(tools: list[BaseTool]) -> list[BaseTool]:
    """The order a clinician works in: find the patient, read the record, then the rest (image, calculators).
    Small models lean towards the first option of a list, so the prompt and the schema both use this order."""
    return sorted(tools, key=lambda t: (t.name != PATIENT_LOOKUP, not t.name.startswith("fhir_"), t.name))


def _by_arguments(tools: list[BaseTool]) -> list[list[BaseTool]]:
    groups: dict[str, list[BaseTool]] = {}
    for tool in ordered_tools(tools):
        key = json.dumps(_arguments_model(tool).model_json_schema(), sort_keys=True)
        groups.setdefault(key, []).append(tool)
    return list(groups.values())


def _call_model(group: list[BaseTool]) -> type[BaseModel]:
    names = tuple(t.name for t in group)
    return create_model(
        f"call_{names[0]}" + ("_or_similar" if len(names) > 1 else ""),
        __config__=ConfigDict(extra="forbid"),
        tool=(Literal[names], ...),  # type: ignore[valid-type]
        arguments=(_arguments_model(group[0]), ...),
    )


def image_aliases(case: Case) -> dict[str, str]:
    """"image-1.dcm" -> the file's path. The model names images by alias: a path can name the data set or the
    source's diagnosis (folder and file names), which must not reach it."""
    return {f"image-{index}{Path(path).suffix.lower()}": path for index, path in enumerate(case.images, start=1)}


def tool_arguments(
    tool: BaseTool, arguments: BaseModel, as_of: date | None, images: dict[str, str] | None = None
) -> dict[str, Any]:
    """The model's arguments plus the harness's (as_of; an image alias replaced by its path); validated by the
    tool's own schema (its validators included)."""
    values = arguments.model_dump(mode="json", exclude_none=True)
    values = {key: (images or {}).get(value.strip(), value) if isinstance(value, str) else value
              for key, value in values.items()}
    if "as_of" in tool.args_schema.model_fields and as_of is not None:
        values["as_of"] = as_of.isoformat()
    tool.args_schema.model_validate(values)
    return values


def observation(record: ToolRecord | None, error: str | None, result_models: dict[str, type[ToolResult]]) -> str:
    """What the model reads back: the tool's evidence statements (as the consult graph's record block shows
    them), else its JSON, cut to a fixed size; errors verbatim."""
    if record is None or not record.ok:
        return f"Observation: error: {error or (record.error if record else 'unknown')}"
    model = result_models.get(record.tool)
    try:
        lines = [e.text for e in model.model_validate(record.result).evidence()] if model else []
    except ValidationError:
        lines = []
    body = "\n".join(f"- {line}" for line in lines) if lines else json.dumps(record.result, default=str)
    if len(body) > OBSERVATION_CHARS:
        body = body[:OBSERVATION_CHARS] + " [cut]"
    return f"Observation from {record.tool} (result {record.id}), quoted record data:\n{body}"


def answer_texts(answer: ReactAnswer) -> dict[str, str]:
    """Free text of the answer by location, for the grounding check."""
    texts = {"answer.summary": answer.summary}
    texts |= {f"answer.diagnoses[{i}].reasoning": d.reasoning for i, d in enumerate(answer.diagnoses)}
    texts |= {f"answer.plan[{i}]": f"{a.action}. {a.rationale}" for i, a in enumerate(answer.plan)}
    return texts


def check_answer(answer: ReactAnswer, facts: list[Fact]) -> GroundingReport:
    """The same number and citation checks the consult graph gets, against the tool results the agent saw."""
    return verify_grounding(None, None, facts, extra_texts=answer_texts(answer))


def review_answer(answer: ReactAnswer, context: SafetyContext) -> list[SafetyFinding]:
    """The consult graph's deterministic safety review, run after the fact on the drugs the answer names."""
    drugs: list[PlannedDrug] = []
    for index, action in enumerate(answer.plan):
        if action.category not in DRUG_CATEGORIES:
            continue
        named = parse_drugs(f"{action.action} {action.rationale}")
        if not named and action.category == "antimicrobial":
            named = [action.action]  # "antibiotics" names no drug: reported as not checked, as the consult does
        drugs += [PlannedDrug(name=name, action_index=index) for name in named]
    return review_plan(drugs, context) if drugs else []


def render_answer(case_id: str, answer: ReactAnswer | None, problem: str | None) -> str:
    """The answer as a Markdown report for a person to read; the model's text is written inert, as in the consult
    report (it may repeat hostile record text)."""
    lines = [f"# ReAct baseline answer: {inert(case_id)}", ""]
    if answer is None:
        return "\n".join([*lines, f"No answer: {inert(problem)}", ""])
    lines += [inert(answer.summary), "", "## Differential diagnosis", ""]
    lines += [f"{i}. **{inert(d.diagnosis)}** ({d.likelihood}): {inert(d.reasoning)}"
              for i, d in enumerate(answer.diagnoses, 1)]
    lines += ["", "## Plan", ""]
    lines += [f"{i}. \\[{a.category}\\] {inert(a.action)}: {inert(a.rationale)}" for i, a in enumerate(answer.plan, 1)]
    return "\n".join(lines) + "\n"
