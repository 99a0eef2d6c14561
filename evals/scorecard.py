"""The scorecard of a suite run: each metric with a 95% bootstrap interval, beside the reference predictors.

Read from RUN_DIR/results.jsonl (evals/runner.py); written as RUN_DIR/scorecard.json and scorecard.md. Diagnosis
metrics are at the etiology-class level (and pathogen level where the label names one); the majority-class and
constant-ranking references are computed from the same labels, because on an imbalanced suite a constant answer
already scores high.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from medconsult.evals.scorers import balanced_accuracy, diagnosis_scores, reference_baselines
from medconsult.evals.stats import bootstrap_ci


def case_metrics(result: dict[str, Any]) -> dict[str, Any] | None:
    """One finished case's numbers; None for a case that did not finish or has no label."""
    finding = (result.get("label") or {}).get("finding")
    if result.get("status") != "done" or not finding:
        return None
    ranked = [d["diagnosis"] for d in (result.get("differential") or {}).get("diagnoses", [])]
    scored = diagnosis_scores(ranked, finding)
    grounding = result.get("grounding") or {}
    findings = result.get("safety_findings") or []
    cost = result.get("time") or {}
    return {
        "case": result["case"],
        "label_class": scored.label_class,
        "predicted_class": scored.predicted_classes[0] if scored.predicted_classes else None,
        "top1": scored.top1,
        "top3": scored.top3,
        "pathogen_top1": scored.pathogen_top1,
        "pathogen_top3": scored.pathogen_top3,
        "unsupported_statements": len(grounding.get("flags", [])),
        "safety_blocks_left": sum(f.get("severity") == "block" for f in findings),
        "wall_s": cost.get("wall_s"),
        "llm_calls": cost.get("llm_calls"),
        "prompt_tokens": cost.get("prompt_tokens"),
        "completion_tokens": cost.get("completion_tokens"),
    }


def build_scorecard(run_dir: Path) -> dict[str, Any]:
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]
    cases = [m for m in (case_metrics(r) for r in results) if m is not None]
    labels = [(r.get("label") or {}).get("finding") for r in results if r.get("status") == "done"]
    scorecard: dict[str, Any] = {
        "run": str(run_dir),
        "cases": len(results),
        "status": dict(Counter(r["status"] for r in results)),
        "metrics": {name: _interval([c[name] for c in cases]) for name in METRICS},
        "references": _references([label for label in labels if label]),
        "confusion": _confusion(cases),
        "per_case": cases,
    }
    scored = [(c["predicted_class"], c["label_class"]) for c in cases if c["label_class"] is not None]
    balanced = {"point": balanced_accuracy(scored), "n": len(scored)} if scored else None
    scorecard["metrics"]["balanced_accuracy"] = balanced
    return scorecard


METRICS = ("top1", "top3", "pathogen_top1", "pathogen_top3", "unsupported_statements", "safety_blocks_left",
           "wall_s", "llm_calls", "prompt_tokens", "completion_tokens")  # fmt: skip


def _references(labels: list[str]) -> dict[str, Any] | None:
    if not labels:
        return None
    references = reference_baselines(labels)
    return {k: v.model_dump() if hasattr(v, "model_dump") else v for k, v in references.items()}


def _interval(values: list[Any]) -> dict[str, Any] | None:
    """Mean with a 95% bootstrap interval over the cases that have the value (booleans as 0/1)."""
    numbers = [float(v) for v in values if v is not None]
    if not numbers:
        return None
    point, low, high = bootstrap_ci(numbers)
    return {"mean": round(point, 4), "ci95": [round(low, 4), round(high, 4)], "n": len(numbers),
            "median": round(float(np.median(numbers)), 4)}  # fmt: skip


def _confusion(cases: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """Label class -> predicted top-1 class -> count ("none" where nothing mappable was predicted)."""
    matrix: dict[str, Counter[str]] = {}
    for case in cases:
        if case["label_class"] is not None:
            matrix.setdefault(case["label_class"], Counter())[case["predicted_class"] or "none"] += 1
    return {label: dict(row) for label, row in sorted(matrix.items())}


def write_scorecard(run_dir: Path) -> dict[str, Any]:
    scorecard = build_scorecard(run_dir)
    (run_dir / "scorecard.json").write_text(json.dumps(scorecard, indent=2))
    (run_dir / "scorecard.md").write_text(render_markdown(scorecard))
    return scorecard


def render_markdown(scorecard: dict[str, Any]) -> str:
    lines = [f"# Scorecard: {scorecard['run']}", "", f"Cases: {scorecard['cases']} ({scorecard['status']})", "",
             "| metric | mean | 95% CI | n |", "|---|---|---|---|"]  # fmt: skip
    for name, value in scorecard["metrics"].items():
        if value is None:
            lines.append(f"| {name} | - | - | 0 |")
        elif "ci95" in value:
            low, high = value["ci95"]
            lines.append(f"| {name} | {value['mean']:.3g} | {low:.3g}-{high:.3g} | {value['n']} |")
        else:
            lines.append(f"| {name} | {value['point']:.3g} | - | {value['n']} |")
    references = scorecard.get("references")
    if references:
        lines += ["", "Reference predictors on the same labels:", "",
                  "| predictor | ranking | top-1 | top-3 | balanced |", "|---|---|---|---|---|"]  # fmt: skip
        for name in ("majority", "constant_ranking"):
            ref = references[name]
            lines.append(f"| {name} | {', '.join(ref['ranking'])} | {ref['top1']:.3g} | {ref['top3']:.3g} | "
                         f"{ref['balanced_accuracy']:.3g} |")  # fmt: skip
    if scorecard["confusion"]:
        predicted = sorted({p for row in scorecard["confusion"].values() for p in row})
        lines += ["", "Confusion (rows: label class, columns: predicted top-1 class):", "",
                  "| label | " + " | ".join(predicted) + " |", "|---|" + "---|" * len(predicted)]  # fmt: skip
        for label, row in scorecard["confusion"].items():
            lines.append(f"| {label} | " + " | ".join(str(row.get(p, 0)) for p in predicted) + " |")
    return "\n".join(lines) + "\n"
