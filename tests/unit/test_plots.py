"""The scorecard's plots: valid PNG files for a small run, linked from scorecard.md; nothing drawn without data."""

from __future__ import annotations

import json
from pathlib import Path

from medconsult.evals.plots import write_plots
from medconsult.evals.scorecard import build_scorecard, write_scorecard

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _result(case: str, finding: str, diagnosis: str, wall_s: float) -> dict:
    return {
        "case": case, "status": "done", "agent": "react", "label": {"finding": finding},
        "differential": {"diagnoses": [{"diagnosis": diagnosis}]},
        "grounding": {"checked_numbers": 3, "checked_citations": 1, "flags": []},
        "checks": [{"name": "a", "kind": "answer", "expected": "x", "passed": True, "detail": ""}],
        "time": {"wall_s": wall_s, "llm_calls": 2, "tool_calls": 4, "prompt_tokens": 5000 + int(wall_s),
                 "completion_tokens": 300},
    }


def _run(tmp_path: Path) -> Path:
    results = [
        _result("a", "COVID-19", "COVID-19 pneumonia", 12.0),
        _result("b", "Streptococcus", "Viral pneumonia", 20.0),
        _result("c", "Pneumocystis", "Pneumocystis jirovecii pneumonia", 31.0),
        {"case": "d", "status": "timeout", "label": {"finding": "COVID-19"}},
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return tmp_path


def test_write_scorecard_draws_three_valid_pngs_and_links_them(tmp_path: Path):
    card = write_scorecard(_run(tmp_path))
    assert card["plots"] == ["plots/metrics.png", "plots/confusion.png", "plots/cost.png"]
    for relative in card["plots"]:
        data = (tmp_path / relative).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 1000
    markdown = (tmp_path / "scorecard.md").read_text()
    assert "(plots/metrics.png)" in markdown and "(plots/cost.png)" in markdown


def test_plots_without_data_are_skipped(tmp_path: Path):
    (tmp_path / "results.jsonl").write_text("")
    assert write_plots(build_scorecard(tmp_path), tmp_path) == []
    assert not (tmp_path / "plots").exists()


def test_an_unlabelled_run_gets_no_confusion_plot(tmp_path: Path):
    result = _result("q", "COVID-19", "COVID-19", 5.0)
    result["label"] = {}
    (tmp_path / "results.jsonl").write_text(json.dumps(result) + "\n")
    written = write_plots(build_scorecard(tmp_path), tmp_path)
    assert [p.name for p in written] == ["metrics.png", "cost.png"]
