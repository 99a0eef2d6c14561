"""The scorecard over a run's results: metrics with intervals, references, confusion, and failures kept apart."""

from __future__ import annotations

import json
from pathlib import Path

from medconsult.evals.scorecard import build_scorecard, write_scorecard


def _result(case: str, finding: str, diagnoses: list[str], *, flags: int = 0, blocks: int = 0) -> dict:
    return {
        "case": case, "status": "done", "label": {"finding": finding},
        "differential": {"diagnoses": [{"diagnosis": d} for d in diagnoses]},
        "grounding": {"flags": [{"kind": "number"}] * flags},
        "safety_findings": [{"severity": "block"}] * blocks,
        "time": {"wall_s": 10.0, "llm_calls": 3, "prompt_tokens": 6000, "completion_tokens": 400},
    }  # fmt: skip


def test_scorecard_catches_a_wrong_diagnosis_a_fabrication_and_an_unsafe_plan(tmp_path: Path):
    results = [
        _result("right", "Streptococcus", ["Pneumococcal pneumonia", "COVID-19"]),
        _result("wrong", "COVID-19", ["Lipoid pneumonia", "Lung cancer", "Pulmonary oedema"], flags=2),
        _result("unsafe", "Pneumocystis", ["Pneumocystis pneumonia"], blocks=1),
        {"case": "crashed", "status": "error", "error": "boom", "label": {"finding": "COVID-19"}},
    ]
    (tmp_path / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    card = build_scorecard(tmp_path)
    assert card["status"] == {"done": 3, "error": 1}
    assert card["metrics"]["top1"]["mean"] == round(2 / 3, 4) and card["metrics"]["top1"]["n"] == 3
    assert card["metrics"]["unsupported_statements"]["mean"] == round(2 / 3, 4)
    assert card["metrics"]["safety_blocks_left"]["mean"] == round(1 / 3, 4)
    low, high = card["metrics"]["top1"]["ci95"]
    assert low <= card["metrics"]["top1"]["mean"] <= high
    assert card["confusion"]["covid-19"] == {"other": 1}
    assert card["references"]["majority"]["top1"] is not None
    write_scorecard(tmp_path)
    markdown = (tmp_path / "scorecard.md").read_text()
    assert "| top1 | 0.667 |" in markdown and "constant_ranking" in markdown
