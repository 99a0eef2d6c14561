"""Two runs of the same suite compared case by case: per metric, B - A with a paired 95% bootstrap interval.

Cases are paired by id and only where both runs scored them (case_metrics not None), so a case that failed in
one run does not bias the comparison; the unpaired ones are listed apart. Pairing removes the case-difficulty
variance, so an interval excluding 0 means the runs differ on this suite.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medconsult.evals.scorecard import METRICS, load_results, scored_cases
from medconsult.evals.stats import paired_difference_ci


def _scored(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Case id -> metrics of the cases the run scored."""
    return {metrics["case"]: metrics for metrics in scored_cases(run_dir, load_results(run_dir))}


def compare_runs(run_a: Path, run_b: Path) -> dict[str, Any]:
    """Per metric: mean of A and of B, the paired difference B - A with its 95% CI, and the pairs it rests on."""
    a, b = _scored(run_a), _scored(run_b)
    paired = sorted(a.keys() & b.keys())
    return {
        "run_a": str(run_a),
        "run_b": str(run_b),
        "paired_cases": len(paired),
        "only_in_a": sorted(a.keys() - b.keys()),
        "only_in_b": sorted(b.keys() - a.keys()),
        "metrics": {name: _metric_difference([a[c][name] for c in paired], [b[c][name] for c in paired])
                    for name in METRICS},  # fmt: skip
    }


def _metric_difference(values_a: list[Any], values_b: list[Any]) -> dict[str, Any] | None:
    """None where no pair has the metric in both runs (a diagnosis metric on an unlabelled suite)."""
    pairs = [(float(x), float(y)) for x, y in zip(values_a, values_b, strict=True) if x is not None and y is not None]
    if not pairs:
        return None
    xs, ys = (np.array(column) for column in zip(*pairs, strict=True))
    point, low, high = paired_difference_ci(ys, xs)
    return {"mean_a": round(float(xs.mean()), 4), "mean_b": round(float(ys.mean()), 4),
            "difference": round(point, 4), "ci95": [round(low, 4), round(high, 4)], "n": len(pairs)}  # fmt: skip


def render_comparison(comparison: dict[str, Any]) -> str:
    """A Markdown table of the comparison; "*" marks a difference whose interval excludes 0."""
    lines = [f"# Comparison: A = {comparison['run_a']}, B = {comparison['run_b']}", "",
             f"Paired cases: {comparison['paired_cases']}", "",
             "| metric | A | B | B - A | 95% CI | n |", "|---|---|---|---|---|---|"]  # fmt: skip
    for name, value in comparison["metrics"].items():
        if value is None:
            continue
        low, high = value["ci95"]
        mark = " *" if low > 0 or high < 0 else ""
        lines.append(f"| {name} | {value['mean_a']:.3g} | {value['mean_b']:.3g} | {value['difference']:+.3g}{mark} "
                     f"| {low:.3g} to {high:.3g} | {value['n']} |")  # fmt: skip
    absent = [name for name, value in comparison["metrics"].items() if value is None]
    if absent:
        lines += ["", f"No pair has: {', '.join(absent)}"]
    for side in ("a", "b"):
        if comparison[f"only_in_{side}"]:
            lines += ["", f"Scored only in {side.upper()}: {', '.join(comparison[f'only_in_{side}'])}"]
    return "\n".join(lines) + "\n"
