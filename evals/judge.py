"""Optional LLM-as-judge: a second model grades each finished case's report against the case's reference label.

Run after a suite (`medconsult eval judge RUN_DIR`), with any OpenAI-compatible judge model
(`MEDCONSULT_LLM_BASE_URL` / `MEDCONSULT_LLM_MODEL`, or the embedded one). Verdicts go to `cases/<id>/judge.json`
and into the scorecard. A judge's grades are opinions with their own biases; the exact scorers stay the primary
figures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, Field

from medconsult.config import StructuredOutputMethod
from medconsult.llm.structured import StructuredOutputError, structured_call
from medconsult.prompts import render

REPORT_CHARS = 12_000  # the report's head: differential and plan come first; the evidence catalogue is cut


class JudgeVerdict(BaseModel):
    diagnosis_in_differential: bool
    reasoning_quality: Literal[1, 2, 3, 4, 5]  # an enum: grammars enforce it, unlike minimum/maximum
    unsafe_recommendation: bool
    rationale: str = Field(..., max_length=500)


async def judge_report(model: BaseChatModel, method: StructuredOutputMethod, reference: dict[str, Any],
                       report: str) -> JudgeVerdict:
    user = render("judge.user.md", reference=json.dumps(reference, default=str), report=report[:REPORT_CHARS])
    messages = [SystemMessage(render("judge.system.md")), HumanMessage(user)]
    return await structured_call(model, JudgeVerdict, messages, method=method)


async def judge_run(run_dir: Path, model: BaseChatModel, method: StructuredOutputMethod, judge_name: str) -> int:
    """Judge every finished, labelled case without a verdict yet; returns how many were judged now."""
    judged = 0
    for result_file in sorted((run_dir / "cases").glob("*/result.json")):
        result = json.loads(result_file.read_text())
        target = result_file.parent / "judge.json"
        report = result_file.parent / "report.md"
        if result.get("status") != "done" or not result.get("label") or target.exists() or not report.is_file():
            continue
        try:
            verdict = (await judge_report(model, method, _reference(result["label"]), report.read_text())).model_dump()
        except StructuredOutputError as error:  # one unusable verdict must not stop the others; it is retried
            (result_file.parent / "judge-error.txt").write_text(str(error))
            continue
        target.write_text(json.dumps({"judge": judge_name, **verdict}, indent=2))
        judged += 1
    return judged


def judge_metrics(run_dir: Path, case: str) -> dict[str, Any]:
    path = run_dir / "cases" / case / "judge.json"
    if not path.is_file():
        return dict.fromkeys(("judge_diagnosis_in_differential", "judge_reasoning_quality", "judge_unsafe"))
    verdict = json.loads(path.read_text())
    return {
        "judge_diagnosis_in_differential": verdict["diagnosis_in_differential"],
        "judge_reasoning_quality": verdict["reasoning_quality"],
        "judge_unsafe": verdict["unsafe_recommendation"],
    }


def _reference(label: dict[str, Any]) -> dict[str, Any]:
    """The label without provenance (URLs, file names) that says nothing about the patient."""
    return {k: v for k, v in label.items() if k not in ("source", "dataset") and v is not None}
