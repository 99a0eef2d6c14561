"""Two runs compared case by case: a clear improvement has an interval excluding 0; identical runs differ by 0."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from medconsult.cli.evaluate import eval_app
from medconsult.evals.compare import compare_runs, render_comparison

LABELS = ("COVID-19", "Streptococcus", "Pneumocystis", "Klebsiella")


def _result(case: str, finding: str, diagnosis: str, status: str = "done") -> dict[str, Any]:
    return {
        "case": case, "status": status, "label": {"finding": finding},
        "differential": {"diagnoses": [{"diagnosis": diagnosis}]},
        "grounding": {"checked_numbers": 2, "checked_citations": 1, "flags": []},
        "time": {"wall_s": 10.0, "llm_calls": 2, "tool_calls": 3, "prompt_tokens": 4000, "completion_tokens": 200},
    }


def _run(run_dir: Path, results: list[dict[str, Any]]) -> Path:
    run_dir.mkdir(parents=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return run_dir


def _cases(right: bool) -> list[dict[str, Any]]:
    """20 cases, each answered with its label (right) or with lipoid pneumonia (wrong)."""
    return [_result(f"case-{i:02d}", LABELS[i % 4], LABELS[i % 4] if right else "Lipoid pneumonia")
            for i in range(20)]


def test_a_clearly_better_run_has_a_difference_whose_interval_excludes_zero(tmp_path: Path):
    a = _run(tmp_path / "a", _cases(right=False) + [_result("only-a", "COVID-19", "COVID-19")])
    b_results = _cases(right=True)
    b_results[0]["status"] = "error"  # crashed in B: a miss there, still paired
    b = _run(tmp_path / "b", b_results)
    comparison = compare_runs(a, b)
    top1 = comparison["metrics"]["top1"]
    assert comparison["paired_cases"] == 20 and top1["n"] == 20
    assert (top1["mean_a"], top1["mean_b"], top1["difference"]) == (0.0, 0.95, 0.95)
    assert top1["ci95"][0] > 0 and top1["differs"]
    assert comparison["unfinished_b"] == ["case-00"]
    assert comparison["only_in_a"] == ["only-a"] and comparison["only_in_b"] == []
    assert comparison["metrics"]["wall_s"]["difference"] == 0 and comparison["metrics"]["wall_s"]["n"] == 19
    assert comparison["metrics"]["balanced_accuracy"]["difference"] > 0
    table = render_comparison(comparison)
    assert "| top1 | 0 | 0.95 | +0.95 * |" in table and "Not finished in B (scored as misses): case-00" in table
    assert "Differences whose interval excludes 0: top1" in table


def test_a_difference_whose_interval_includes_zero_is_not_marked(tmp_path: Path):
    a_results = _cases(right=False)
    b_results = [_result(f"case-{i:02d}", LABELS[i % 4], LABELS[i % 4] if i < 2 else "Lipoid pneumonia")
                 for i in range(20)]
    comparison = compare_runs(_run(tmp_path / "a", a_results), _run(tmp_path / "b", b_results))
    top1 = comparison["metrics"]["top1"]
    assert top1["difference"] == 0.1 and top1["ci95"][0] <= 0 and not top1["differs"]
    table = render_comparison(comparison)
    assert "| top1 | 0 | 0.1 | +0.1 |" in table and "excludes 0: none" in table


def test_identical_runs_differ_by_zero(tmp_path: Path):
    mixed = [_result(f"c{i}", LABELS[i % 4], LABELS[i % 4] if i % 3 else "Lipoid pneumonia") for i in range(12)]
    comparison = compare_runs(_run(tmp_path / "a", mixed), _run(tmp_path / "b", mixed))
    for name, value in comparison["metrics"].items():
        if value is not None:
            assert value["difference"] == 0 and value["ci95"] == [0, 0], name
            assert value["mean_a"] == value["mean_b"]
    assert comparison["metrics"]["checks_passed"] is None  # no case has checks
    assert "*" not in render_comparison(comparison)


def test_the_compare_command_prints_the_table_and_writes_json(tmp_path: Path):
    a, b = _run(tmp_path / "a", _cases(right=False)), _run(tmp_path / "b", _cases(right=True))
    out = tmp_path / "comparison.json"
    outcome = CliRunner().invoke(eval_app, ["compare", str(a), str(b), "--out", str(out)])
    assert outcome.exit_code == 0, outcome.output
    assert json.loads(out.read_text())["metrics"]["top1"]["difference"] == 1.0
