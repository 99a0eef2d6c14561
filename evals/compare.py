"""Two runs of the same suite compared case by case: per metric, B - A with a paired 95% bootstrap interval.

Cases are paired by id over every case both runs were asked for: a case that crashed or timed out in one run is a
miss there (as in the scorecard), so a run cannot gain by failing its hard cases. Whole patients are resampled.
A difference is marked only when its interval excludes 0. Balanced accuracy and macro-recall are compared as
paired differences of the class-averaged statistic on the same resampled patients.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from medconsult.evals.scorecard import METRICS, asked_results, scorable_class_of, scored_cases
from medconsult.evals.scorers import balanced_accuracy, macro_recall
from medconsult.stats import grouped_bootstrap_ci, paired_difference_ci


def _scored(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Case id -> metrics of every case the run was asked for."""
    return {metrics["case"]: metrics for metrics in scored_cases(run_dir, asked_results(run_dir))}


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    """Per metric: mean of A and of B, the paired difference B - A with its 95% CI, and the pairs it rests on."""
    a, b = _scored(run_a), _scored(run_b)
    paired = sorted(a.keys() & b.keys())
    patients = {case: a[case]["patient"] for case in paired}
    metrics = {name: _metric_difference([a[c][name] for c in paired], [b[c][name] for c in paired],
                                        [patients[c] for c in paired]) for name in METRICS}
    for name, statistic in (("balanced_accuracy", balanced_accuracy), ("macro_recall", macro_recall)):
        metrics[name] = _class_difference([a[c] for c in paired], [b[c] for c in paired], statistic)
    return {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "paired_cases": len(paired),
        "paired_patients": len(set(patients.values())),
        "unfinished_a": sorted(c for c in paired if a[c]["status"] != "done"),
        "unfinished_b": sorted(c for c in paired if b[c]["status"] != "done"),
        "only_in_a": sorted(a.keys() - b.keys()),
        "only_in_b": sorted(b.keys() - a.keys()),
        "metrics": metrics,
    }


def _metric_difference(values_a: list[Any], values_b: list[Any], patients: list[str]) -> dict[str, Any] | None:
    """None where no pair has the metric in both runs (a diagnosis metric on an unlabelled suite)."""
    pairs = [(float(x), float(y), p) for x, y, p in zip(values_a, values_b, patients, strict=True)
             if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = np.array([x for x, _, _ in pairs]), np.array([y for _, y, _ in pairs])
    point, low, high = paired_difference_ci(ys, xs, groups=[p for _, _, p in pairs])
    return _row(float(xs.mean()), float(ys.mean()), point, low, high, len(pairs))


def _class_difference(cases_a: list[dict[str, Any]], cases_b: list[dict[str, Any]],
                      statistic: Callable[[list], float]) -> dict[str, Any] | None:
    """statistic(B) - statistic(A) over the cases with an etiology label, both runs on the same resampled patients."""
    pairs = [(a, b) for a, b in zip(cases_a, cases_b, strict=True) if scorable_class_of(a) is not None]
    if not pairs:
        return None

    def answers(side: int, drawn: list[tuple[dict, dict]]) -> list[tuple[str | None, str]]:
        return [(case[side]["predicted_class"], scorable_class_of(case[side])) for case in drawn]

    def difference(drawn: list[tuple[dict, dict]]) -> float:
        return statistic(answers(1, drawn)) - statistic(answers(0, drawn))

    point, low, high = grouped_bootstrap_ci(pairs, [a["patient"] for a, _ in pairs], difference)
    return _row(statistic(answers(0, pairs)), statistic(answers(1, pairs)), point, low, high, len(pairs))


def _row(mean_a: float, mean_b: float, point: float, low: float, high: float, n: int) -> dict[str, Any]:
    return {"mean_a": round(mean_a, 4), "mean_b": round(mean_b, 4), "difference": round(point, 4),
            "ci95": [round(low, 4), round(high, 4)], "n": n, "differs": bool(low > 0 or high < 0)}


def render_comparison(comparison: dict[str, Any]) -> str:
    """A Markdown table of the comparison; "*" marks a difference whose interval excludes 0 (and only those)."""
    lines = [f"# Comparison: A = {comparison['run_a']}, B = {comparison['run_b']}", "",
             f"Paired cases: {comparison['paired_cases']} ({comparison.get('paired_patients', '-')} patients; "
             "intervals resample patients)", "",
             "| metric | A | B | B - A | 95% CI | n |", "|---|---|---|---|---|---|"]
    for name, value in comparison["metrics"].items():
        if value is None:
            continue
        low, high = value["ci95"]
        mark = " *" if value.get("differs", low > 0 or high < 0) else ""
        lines.append(f"| {name} | {value['mean_a']:.3g} | {value['mean_b']:.3g} | {value['difference']:+.3g}{mark} "
                     f"| {low:.3g} to {high:.3g} | {value['n']} |")
    differing = [name for name, value in comparison["metrics"].items() if value and value.get("differs")]
    lines += ["", "Differences whose interval excludes 0: " + (", ".join(differing) if differing else "none")]
    absent = [name for name, value in comparison["metrics"].items() if value is None]
    if absent:
        lines += ["", f"No pair has: {', '.join(absent)}"]
    for side in ("a", "b"):
        if comparison.get(f"unfinished_{side}"):
            lines += ["", f"Not finished in {side.upper()} (scored as misses): "
                      f"{', '.join(comparison[f'unfinished_{side}'])}"]
        if comparison[f"only_in_{side}"]:
            lines += ["", f"Only in {side.upper()}: {', '.join(comparison[f'only_in_{side}'])}"]
    return "\n".join(lines) + "\n"
