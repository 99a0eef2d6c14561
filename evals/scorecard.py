"""The scorecard of a suite run: each metric with a 95% patient-bootstrap interval, beside the reference predictors.

Read from RUN_DIR/results.jsonl (evals/runner.py) and RUN_DIR/run.json (the cases asked for); written as
RUN_DIR/scorecard.json, scorecard.md and plots/.

Denominators. Every case asked for is in the scorecard. A case that crashed, timed out, lost its LLM or never ran
is a miss on every outcome metric (`MISS_IF_UNFINISHED`: diagnosis hits, answer checks, trajectory), never left
out; the finished share is shown beside. Metrics that are shares of what a case produced (numbers supported,
citations supported, calculators agreeing) and counts and cost are over the cases that produced them, with their n.
Etiology metrics leave out cases whose label names no etiology ("Pneumonia"), and list them.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import ValidationError

from medconsult.clinical.etiology import ETIOLOGIES
from medconsult.evals.judge import judge_metrics
from medconsult.evals.measure import SEEN_FILE, label_visibility
from medconsult.evals.scorers import (
    balanced_accuracy,
    diagnosis_scores,
    grounding_score,
    macro_recall,
    reference_baselines,
    safety_score,
    scorable_class,
    to_agentevals_trajectory,
    trajectory_score,
)
from medconsult.stats import grouped_bootstrap_ci, grouped_mean_ci
from medconsult.tools.fhir.allergies import AllergiesTool
from medconsult.tools.fhir.conditions import ConditionsTool
from medconsult.tools.fhir.find_patient import FindPatientTool
from medconsult.tools.fhir.medications import MedicationsTool
from medconsult.tools.fhir.observations import ObservationsTool
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tracing import read_trace

FINISHED = "done"
NOT_RUN = "not_run"  # asked for, but no result: the run was stopped before it


def load_results(run_dir: Path) -> list[dict[str, Any]]:
    """RUN_DIR/results.jsonl, one result per case; an empty list where the run wrote none."""
    path = run_dir / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def asked_results(run_dir: Path) -> list[dict[str, Any]]:
    """One result per case asked for (run.json `cases_asked`: the case, its patient and label); a case asked for
    without a result is `not_run`, and a miss like any other unfinished case."""
    results = load_results(run_dir)
    run = run_dir / "run.json"
    asked = json.loads(run.read_text()).get("cases_asked") if run.is_file() else None
    if not asked:
        return results
    by_case = {r["case"]: r for r in results}
    entries = [entry if isinstance(entry, dict) else {"case": entry} for entry in asked]
    return [by_case.get(e["case"], {**e, "status": NOT_RUN, "error": "not run"}) for e in entries]


def patient_of(result: dict[str, Any]) -> str:
    """The bootstrap's unit: the case's patient (several images of one patient are one draw)."""
    return str(result.get("patient") or (result.get("label") or {}).get("patient") or result["case"])


def case_metrics(result: dict[str, Any]) -> dict[str, Any]:
    """One case's numbers. A case that did not finish misses every outcome metric; the rest are None for it.

    A case without a label finding (a record-questions suite) still gets its grounding, safety, checks and cost
    metrics; its diagnosis metrics are None.
    """
    finished = result.get("status") == FINISHED
    metrics: dict[str, Any] = {
        "case": result["case"],
        "patient": patient_of(result),
        "status": result.get("status"),
        "label_visible": result.get("label_visible"),
        **_diagnosis_metrics(result),
        "checks_passed": _checks_passed(result.get("checks")) if finished else _miss_if(_has_checks(result)),
    }
    if not finished:
        return metrics | dict.fromkeys(OUTPUT_METRICS)
    cost = result.get("time") or {}
    return metrics | {
        **_grounding_metrics(result.get("grounding")),
        **_safety_metrics(result),
        "calculators_agree": _calculators_agree(result.get("calculator_agreement")),
        "trap_findings_after": _trap_findings(result),
        "wall_s": cost.get("wall_s", result.get("wall_s")),
        "llm_calls": cost.get("llm_calls"),
        "tool_calls": cost.get("tool_calls"),
        "prompt_tokens": cost.get("prompt_tokens"),
        "completion_tokens": cost.get("completion_tokens"),
    }


def _miss_if(applies: bool) -> float | None:
    return 0.0 if applies else None


def _has_checks(result: dict[str, Any]) -> bool:
    return bool((result.get("label") or {}).get("checks"))


_NO_DIAGNOSIS = dict.fromkeys(
    ("label_class", "predicted_class", "top1", "top3", "bacterial_vs_viral", "pathogen_top1", "pathogen_top3")
)
# Among the cases labelled bacterial or viral, whether the top-1 answer names the right one of the two: the question
# that decides an antibiotic (a case answering anything else, or unfinished, is a miss).
BACTERIAL_OR_VIRAL = ("bacterial", "viral")


def _diagnosis_metrics(result: dict[str, Any]) -> dict[str, Any]:
    finding = (result.get("label") or {}).get("finding")
    if not finding:
        return dict(_NO_DIAGNOSIS)
    ranked = [d["diagnosis"] for d in (result.get("differential") or {}).get("diagnoses", [])]
    if result.get("status") != FINISHED:
        ranked = []  # whatever an unfinished case left is not an answer: a miss
    scored = diagnosis_scores(ranked, finding)
    return {
        "label_class": scored.label_class,
        "predicted_class": scored.predicted_classes[0] if scored.predicted_classes else None,
        "top1": scored.top1,
        "top3": scored.top3,
        "bacterial_vs_viral": scored.top1 if scored.label_class in BACTERIAL_OR_VIRAL else None,
        "pathogen_top1": scored.pathogen_top1,
        "pathogen_top3": scored.pathogen_top3,
    }


def _grounding_metrics(grounding: dict[str, Any] | None) -> dict[str, Any]:
    """Supported shares and fabricated values; None where the case has no (readable) grounding report."""
    flags = (grounding or {}).get("flags") or []
    metrics: dict[str, Any] = {"unsupported_statements": len(flags), "numbers_supported": None,
                               "citations_supported": None, "fabricated_values": None}
    if not grounding:
        return metrics
    try:
        score = grounding_score(grounding)
    except (ValidationError, KeyError, TypeError, ValueError):
        return metrics  # a malformed report must not sink the scorecard of a long run
    metrics.update({key: score[key] for key in ("numbers_supported", "citations_supported", "fabricated_values")})
    return metrics


def _safety_metrics(result: dict[str, Any]) -> dict[str, int]:
    try:
        score = safety_score(result.get("first_draft_findings") or [], result.get("safety_findings") or [])
    except ValidationError:
        return {}  # a malformed result must not sink the scorecard of a long run
    after = score["total_violations_after"]
    return {"safety_blocks_left": after, "safety_violations_before": score["total_violations_before"],
            "safety_violations_after": after}


def _calculators_agree(rows: list[dict[str, Any]] | None) -> float | None:
    """Share of the agent's calculator results that match the independent recomputation (comparable ones only)."""
    comparable = [row["agree"] for row in rows or [] if row.get("agree") is not None]
    return sum(comparable) / len(comparable) if comparable else None


def _trap_findings(result: dict[str, Any]) -> int | None:
    """Findings of a trap's rule (allergy, interaction, renal, pregnancy) left in the final plan, warnings included:
    the plan still names the tempting drug. None for a case without traps."""
    traps = {t.get("rule") for t in (result.get("label") or {}).get("traps") or []}
    if not traps:
        return None
    return sum(f.get("rule") in traps for f in result.get("safety_findings") or [])


def _checks_passed(checks: list[dict[str, Any]] | None) -> float | None:
    if not checks:
        return None
    return sum(bool(c.get("passed")) for c in checks) / len(checks)


# What a consult must look at before it can be trusted: the patient, problems, medications and allergies (safe
# prescribing), results, and the image. A case label can override it with `required_tools` / `forbidden_tools`.
DEFAULT_REQUIRED_TOOLS = frozenset(tool.tool_name() for tool in (
    FindPatientTool, ConditionsTool, MedicationsTool, AllergiesTool, ObservationsTool, LoadImageTool
))


def trajectory_metrics(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """Required tools called, forbidden ones not, arguments sane, from the case's trace; the trajectory is also
    written in agentevals' message format (cases/<id>/trajectory.json) for its strict/unordered/subset matchers.
    A case that did not finish fails its trajectory (the tools it did call still count for required_tools_called)."""
    finished = result.get("status") == FINISHED
    trace = run_dir / "cases" / result["case"] / "trace.jsonl"
    if not trace.is_file():
        if finished:
            return dict.fromkeys(("trajectory_passed", "required_tools_called", "argument_problems"))
        return {"trajectory_passed": False, "required_tools_called": 0.0, "argument_problems": None}
    lines = read_trace(trace)
    label = result.get("label") or {}
    required = set(label.get("required_tools") or DEFAULT_REQUIRED_TOOLS)
    score = trajectory_score(lines, required, set(label.get("forbidden_tools") or ()), result.get("as_of"))
    (trace.parent / "trajectory.json").write_text(json.dumps(to_agentevals_trajectory(lines), indent=1))
    return {
        "trajectory_passed": score.passed and finished,
        "required_tools_called": 1 - len(score.missing_required) / len(required) if required else None,
        "argument_problems": len(score.argument_problems),
    }


def visibility_metrics(run_dir: Path, result: dict[str, Any]) -> dict[str, Any]:
    """label_visible rechecked with today's vocabulary over what the agent was shown (cases/<id>/seen.json), so a
    rescored run applies the same check as a new one; the runner's own verdict where the file is absent."""
    seen = run_dir / "cases" / result["case"] / SEEN_FILE
    if result.get("status") != FINISHED or not seen.is_file():
        return {}
    return {"label_visible": label_visibility(result.get("label"), json.loads(seen.read_text())).get("label_visible")}


def scored_cases(run_dir: Path, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The metrics of every case asked for, finished or not, its trajectory and judge verdicts included."""
    cases = [case_metrics(r) | visibility_metrics(run_dir, r) | trajectory_metrics(run_dir, r)
             | judge_metrics(run_dir, r["case"]) for r in results]
    if any(c["judge_diagnosis_in_differential"] is not None for c in cases):
        for case in cases:  # a judged run: a case that never reached the judge is a miss there too
            if case["status"] != FINISHED and case["label_class"] is not None:
                case["judge_diagnosis_in_differential"] = False
    return cases


def build_scorecard(run_dir: Path) -> dict[str, Any]:
    results = asked_results(run_dir)
    cases = scored_cases(run_dir, results)
    finished = sum(r.get("status") == FINISHED for r in results)
    scorecard: dict[str, Any] = {
        "run": str(run_dir),
        "agent": _agent(results),
        "cases": len(results),
        "patients": len({c["patient"] for c in cases}),
        "finished": finished,
        "finished_share": round(finished / len(results), 4) if results else None,
        "status": dict(Counter(r.get("status") for r in results)),
        "etiology": _etiology_coverage(results),
        "label_visible": _label_visibility(cases),
        "metrics": {name: _interval(cases, name) for name in METRICS},
        "references": _references([(r.get("label") or {}).get("finding") for r in results]),
        "confusion": _confusion(cases),
        "per_case": cases,
    }
    scored = [c for c in cases if scorable_class_of(c) is not None]
    for name, statistic in zip(CLASS_METRICS, (balanced_accuracy, macro_recall), strict=True):
        scorecard["metrics"][name] = _class_interval(scored, statistic)
    return scorecard


def scorable_class_of(case: dict[str, Any]) -> str | None:
    """The case's label class when it is an etiology. `label_class` is already a class name: reading it again as
    label text would lose "other", which no term spells."""
    label_class = case.get("label_class")
    return label_class if label_class in ETIOLOGIES else None


def _etiology_coverage(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Which cases the etiology metrics score, and which labels they leave out (no etiology named)."""
    excluded = []
    scored = 0
    for result in results:
        finding = (result.get("label") or {}).get("finding")
        if not finding:
            continue
        if scorable_class(finding) is None:
            excluded.append({"case": result["case"], "label": finding})
        else:
            scored += 1
    return {"scored": scored, "excluded": excluded}


def _label_visibility(cases: list[dict[str, Any]]) -> dict[str, Any]:
    """How many cases had their label in a fact the agent saw (evals/runner.py checks every fact it saw)."""
    checked = [c for c in cases if c.get("label_visible") is not None]
    visible = [c["case"] for c in checked if c["label_visible"]]
    return {"checked": len(checked), "visible": len(visible), "cases": visible}


def _agent(results: list[dict[str, Any]]) -> str | None:
    """The agent the run evaluated; several joined with "+" (a run folder resumed with another agent)."""
    agents = sorted({r["agent"] for r in results if r.get("agent")})
    return "+".join(agents) if agents else None


# Shares in [0, 1] (plotted on one axis), then counts and cost.
SHARE_METRICS = ("top1", "top3", "bacterial_vs_viral", "pathogen_top1", "pathogen_top3", "numbers_supported",
                 "citations_supported", "checks_passed", "calculators_agree", "trajectory_passed",
                 "required_tools_called", "judge_diagnosis_in_differential", "judge_unsafe")
METRICS = (*SHARE_METRICS, "unsupported_statements", "fabricated_values", "safety_violations_before",
           "safety_violations_after", "safety_blocks_left", "trap_findings_after", "argument_problems",
           "judge_reasoning_quality", "wall_s", "llm_calls", "tool_calls", "prompt_tokens",
           "completion_tokens")
# Class-averaged statistics of the top-1 etiology answers (over the cases whose label names an etiology).
CLASS_METRICS = ("balanced_accuracy", "macro_recall")
# Outcome metrics: an unfinished case scores 0 on them (where they apply to its label), never None.
MISS_IF_UNFINISHED = ("top1", "top3", "bacterial_vs_viral", "pathogen_top1", "pathogen_top3", "checks_passed",
                      "trajectory_passed", "required_tools_called", "judge_diagnosis_in_differential")
# Measured on what a finished case produced: None for a case that did not finish.
OUTPUT_METRICS = tuple(m for m in METRICS if m not in MISS_IF_UNFINISHED and not m.startswith("judge_"))


def _references(labels: list[str | None]) -> dict[str, Any] | None:
    labels = [label for label in labels if label]
    if not any(scorable_class(label) for label in labels):
        return None
    references = reference_baselines(labels)
    return {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in references.items()}


def _interval(cases: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """Mean with a 95% patient-bootstrap interval over the cases that have the value (booleans as 0/1)."""
    having = [(float(c[name]), c["patient"]) for c in cases if c.get(name) is not None]
    if not having:
        return None
    numbers, patients = [v for v, _ in having], [p for _, p in having]
    point, low, high = grouped_mean_ci(numbers, patients)
    return {"mean": round(point, 4), "ci95": [round(low, 4), round(high, 4)], "n": len(numbers),
            "patients": len(set(patients)), "median": round(float(np.median(numbers)), 4)}


def _class_interval(scored: list[dict[str, Any]], statistic: Callable[[list], float]) -> dict[str, Any] | None:
    """A class-averaged statistic of the top-1 answers with its patient-bootstrap interval (a replicate averages over
    the classes it drew)."""
    if not scored:
        return None
    pairs = [(c["predicted_class"], scorable_class_of(c)) for c in scored]
    point, low, high = grouped_bootstrap_ci(pairs, [c["patient"] for c in scored], statistic)
    return {"mean": round(point, 4), "ci95": [round(low, 4), round(high, 4)], "n": len(pairs),
            "patients": len({c["patient"] for c in scored})}


def _confusion(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Label class -> predicted top-1 class -> count ("none" where nothing was predicted, "unfinished" where the
    case did not finish); only labels with an etiology class."""
    matrix: dict[str, Counter[str]] = {}
    for case in cases:
        label = scorable_class_of(case)
        if label is None:
            continue
        predicted = case["predicted_class"] or ("none" if case["status"] == FINISHED else "unfinished")
        matrix.setdefault(label, Counter())[predicted] += 1
    return {label: dict(row) for label, row in sorted(matrix.items())}


def write_scorecard(run_dir: Path) -> dict[str, Any]:
    """scorecard.json, scorecard.md and plots/*.png in RUN_DIR; the Markdown links the plots."""
    from medconsult.evals.plots import write_plots  # matplotlib only where plots are drawn

    scorecard = build_scorecard(run_dir)
    scorecard["plots"] = [path.relative_to(run_dir).as_posix() for path in write_plots(scorecard, run_dir)]
    (run_dir / "scorecard.json").write_text(json.dumps(scorecard, indent=2))
    (run_dir / "scorecard.md").write_text(render_markdown(scorecard))
    return scorecard


def render_markdown(scorecard: dict[str, Any]) -> str:
    finished = scorecard.get("finished_share")
    lines = [f"# Scorecard: {scorecard['run']}", "", f"Agent: {scorecard.get('agent') or '-'}", "",
             f"Cases asked for: {scorecard['cases']} ({scorecard.get('patients', '-')} patients); finished: "
             f"{scorecard.get('finished', '-')}" + (f" ({finished:.0%})" if finished is not None else "")
             + f"; status: {scorecard['status']}", ""]
    lines += _coverage_lines(scorecard)
    lines += ["| metric | mean | 95% CI (patients resampled) | n |", "|---|---|---|---|"]
    for name, value in scorecard["metrics"].items():
        if value is None:
            lines.append(f"| {name} | - | - | 0 |")
        else:
            low, high = value["ci95"]
            lines.append(f"| {name} | {value['mean']:.3g} | {low:.3g}-{high:.3g} | {value['n']} |")
    lines += ["", "Outcome metrics (" + ", ".join(MISS_IF_UNFINISHED) + ") count a case that did not finish as a "
              "miss; the others are over the cases that produced them."]
    references = scorecard.get("references")
    if references:
        lines += ["", "Reference predictors on the same labels:", "",
                  "| predictor | ranking | top-1 | top-3 | balanced | macro-recall |",
                  "|---|---|---|---|---|---|"]
        for name in ("majority", "constant_ranking"):
            ref = references[name]
            lines.append(f"| {name} | {', '.join(ref['ranking'])} | {ref['top1']:.3g} | {ref['top3']:.3g} | "
                         f"{ref['balanced_accuracy']:.3g} | {ref['macro_recall']:.3g} |")
    if scorecard["confusion"]:
        predicted = sorted({p for row in scorecard["confusion"].values() for p in row})
        lines += ["", "Confusion (rows: label class, columns: predicted top-1 class):", "",
                  "| label | " + " | ".join(predicted) + " |", "|---|" + "---|" * len(predicted)]
        for label, row in scorecard["confusion"].items():
            lines.append(f"| {label} | " + " | ".join(str(row.get(p, 0)) for p in predicted) + " |")
    if scorecard.get("plots"):
        lines += ["", "Plots:", ""] + [f"- [{Path(p).name}]({p})" for p in scorecard["plots"]]
    return "\n".join(lines) + "\n"


def _coverage_lines(scorecard: dict[str, Any]) -> list[str]:
    lines = []
    etiology = scorecard.get("etiology") or {}
    if etiology.get("scored") or etiology.get("excluded"):
        excluded = etiology.get("excluded") or []
        lines.append(f"Etiology metrics score {etiology.get('scored', 0)} case(s); left out (the label names no "
                     f"etiology): {len(excluded)}" + (" (" + ", ".join(f"{e['case']}: {e['label']}" for e in excluded)
                                                       + ")" if excluded else ""))
    visible = scorecard.get("label_visible") or {}
    if visible.get("checked"):
        lines.append(f"Label visible to the agent (a fact it saw names the answer): {visible['visible']} of "
                     f"{visible['checked']} case(s)" + (f": {', '.join(visible['cases'])}" if visible["cases"] else ""))
    return [line for text in lines for line in (text, "")]
