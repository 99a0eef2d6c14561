"""The scorecard over a run's results: metrics with intervals, references, confusion, and failures kept apart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from medconsult.evals.scorecard import build_scorecard, case_metrics, render_markdown, write_scorecard
from medconsult.evals.scorers import ANOTHER_CONDITION


def _flag(kind: str) -> dict[str, str]:
    return {"location": "plan.actions[0].rationale", "statement": "CRP 250 mg/L.", "claim": "CRP 250 mg/L",
            "reason": "not in the record", "kind": kind}


def _finding(severity: str = "block") -> dict[str, str]:
    return {"rule": "allergy", "severity": severity, "drug": "amoxicillin", "message": "penicillin allergy",
            "source": "label"}


def _result(case: str, finding: str | None, diagnoses: list[str], *, flags: int = 0, blocks: int = 0,
            blocks_before: int = 0, checks: list[bool] | None = None) -> dict[str, Any]:
    return {
        "case": case, "status": "done", "agent": "consult", "label": {"finding": finding} if finding else {},
        "differential": {"diagnoses": [{"diagnosis": d} for d in diagnoses]},
        "grounding": {"checked_numbers": 4, "checked_citations": 2, "flags": [_flag("number")] * flags},
        "safety_findings": [_finding()] * blocks,
        "first_draft_findings": [_finding()] * blocks_before,
        "checks": [{"name": f"c{i}", "kind": "answer", "expected": "x", "passed": p, "detail": ""}
                   for i, p in enumerate(checks or [])],
        "time": {"wall_s": 10.0, "llm_calls": 3, "tool_calls": 5, "prompt_tokens": 6000, "completion_tokens": 400},
    }


def _write(run_dir: Path, results: list[dict[str, Any]]) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in results))
    return run_dir


def test_scorecard_catches_a_wrong_diagnosis_a_fabrication_and_an_unsafe_plan(tmp_path: Path):
    results = [
        _result("right", "Streptococcus", ["Pneumococcal pneumonia", "COVID-19"]),
        _result("wrong", "COVID-19", ["Lipoid pneumonia", "Lung cancer", "Pulmonary oedema"], flags=2),
        _result("unsafe", "Pneumocystis", ["Pneumocystis pneumonia"], blocks=1),
        {"case": "crashed", "status": "error", "error": "boom", "label": {"finding": "COVID-19"}},
    ]
    card = build_scorecard(_write(tmp_path, results))
    assert card["status"] == {"done": 3, "error": 1}
    assert card["agent"] == "consult"
    # The crashed case is a miss: 2 of the 4 cases asked for, not 2 of the 3 that finished.
    assert card["metrics"]["top1"]["mean"] == 0.5 and card["metrics"]["top1"]["n"] == 4
    assert card["finished"] == 3 and card["finished_share"] == 0.75
    assert card["metrics"]["unsupported_statements"]["mean"] == round(2 / 3, 4)  # over what the 3 finished wrote
    assert card["metrics"]["safety_blocks_left"]["mean"] == round(1 / 3, 4)
    low, high = card["metrics"]["top1"]["ci95"]
    assert low <= card["metrics"]["top1"]["mean"] <= high
    assert card["confusion"]["covid-19"] == {"other": 1, "unfinished": 1}
    assert card["references"]["majority"]["top1"] is not None
    write_scorecard(tmp_path)
    markdown = (tmp_path / "scorecard.md").read_text()
    assert "| top1 | 0.5 |" in markdown and "constant_ranking" in markdown and "Agent: consult" in markdown
    assert "finished: 3 (75%)" in markdown


@pytest.mark.parametrize("status", ["error", "timeout", "llm_unavailable"])
def test_a_case_that_did_not_finish_misses_every_outcome_metric(tmp_path: Path, status: str):
    failed = _result("failed", "Streptococcus", ["Streptococcal pneumonia"], checks=[True]) | {"status": status}
    failed["label"]["checks"] = [{"name": "CRP", "kind": "text", "expected": "CRP"}]
    metrics = build_scorecard(_write(tmp_path, [failed]))["per_case"][0]
    assert metrics["top1"] is False and metrics["top3"] is False and metrics["pathogen_top1"] is False
    assert metrics["checks_passed"] == 0 and metrics["trajectory_passed"] is False
    assert metrics["required_tools_called"] == 0
    assert metrics["numbers_supported"] is None and metrics["wall_s"] is None  # nothing produced to measure


def test_a_case_asked_for_but_never_run_is_a_miss(tmp_path: Path):
    run = _write(tmp_path, [_result("ran", "Streptococcus", ["Streptococcal pneumonia"])])
    asked = [{"case": "ran"}, {"case": "never", "patient": "p2", "label": {"finding": "COVID-19"}}]
    (run / "run.json").write_text(json.dumps({"cases_asked": asked}))
    card = build_scorecard(run)
    assert card["cases"] == 2 and card["status"] == {"done": 1, "not_run": 1}
    assert card["metrics"]["top1"]["n"] == 2 and card["metrics"]["top1"]["mean"] == 0.5
    assert card["per_case"][1]["trajectory_passed"] is False and card["finished_share"] == 0.5


def test_unspecified_labels_are_left_out_of_the_etiology_metrics_and_listed(tmp_path: Path):
    results = [
        _result("strep", "Streptococcus", ["Community-acquired pneumonia"]),  # names no cause: a miss
        _result("pneumonia", "Pneumonia", ["Community-acquired pneumonia"]),  # the old scorer's free hit
        _result("covid", "COVID-19", ["COVID-19 pneumonia"]),
    ]
    card = build_scorecard(_write(tmp_path, results))
    assert card["metrics"]["top1"]["n"] == 2 and card["metrics"]["top1"]["mean"] == 0.5
    assert card["etiology"] == {"scored": 2, "excluded": [{"case": "pneumonia", "label": "Pneumonia"}]}
    assert card["metrics"]["balanced_accuracy"]["n"] == 2
    assert card["references"]["cases"] == 2 and card["references"]["unmapped"] == 1
    assert "left out (the label names no etiology): 1" in render_markdown(card)


def test_label_visible_cases_are_counted(tmp_path: Path):
    results = [_result("clean", "COVID-19", ["COVID-19"]) | {"label_visible": False},
               _result("leaked", "COVID-19", ["COVID-19"]) | {"label_visible": True}]
    card = build_scorecard(_write(tmp_path, results))
    assert card["label_visible"] == {"checked": 2, "visible": 1, "cases": ["leaked"]}
    assert "1 of 2 case(s): leaked" in render_markdown(card)


def test_intervals_resample_patients_not_images(tmp_path: Path):
    """Five images of one patient, all right, beside five patients with one wrong image each: by images the top-1
    would look known to within a few points; by patients it is one draw among six."""
    right = [_result(f"p1-{i}", "Streptococcus", ["Streptococcal pneumonia"]) | {"patient": "p1"} for i in range(5)]
    wrong = [_result(f"p{i}", "Streptococcus", ["COVID-19"]) | {"patient": f"p{i}"} for i in range(2, 7)]
    top1 = build_scorecard(_write(tmp_path, right + wrong))["metrics"]["top1"]
    assert top1["mean"] == 0.5 and top1["n"] == 10 and top1["patients"] == 6
    from medconsult.stats import bootstrap_ci

    _, case_low, case_high = bootstrap_ci([1.0] * 5 + [0.0] * 5)
    low, high = top1["ci95"]
    assert high - low > case_high - case_low  # wider: the five images are one patient


def test_balanced_accuracy_has_an_interval(tmp_path: Path):
    labels = ["Streptococcus", "COVID-19", "Pneumocystis"] * 4
    results = [_result(f"c{i}", label, [label if i % 2 else "Lipoid"]) for i, label in enumerate(labels)]
    balanced = build_scorecard(_write(tmp_path, results))["metrics"]["balanced_accuracy"]
    low, high = balanced["ci95"]
    assert low <= balanced["mean"] <= high and high > low and balanced["n"] == 12


def test_every_label_class_reaches_balanced_accuracy_and_the_confusion(tmp_path: Path):
    """A lipoid pneumonia label (class "other") and a "No Finding" one count like the infectious classes."""
    labels = ["Lipoid", "No Finding", "Varicella", "Legionella", "Pneumocystis", "COVID-19"]
    results = [_result(f"c{i}", label, ["Pneumonia"]) for i, label in enumerate(labels)]
    card = build_scorecard(_write(tmp_path, results))
    assert card["metrics"]["balanced_accuracy"]["n"] == 6
    assert set(card["confusion"]) == {"other", "normal", "viral", "bacterial", "fungal", "covid-19"}


def test_another_condition_on_an_other_label_is_a_miss_in_balanced_accuracy_and_the_confusion(tmp_path: Path):
    results = [_result("lipoid", "Lipoid", ["COPD exacerbation"]), _result("covid", "COVID-19", ["COVID-19"])]
    card = build_scorecard(_write(tmp_path, results))
    assert card["confusion"]["other"] == {ANOTHER_CONDITION: 1}
    assert card["metrics"]["balanced_accuracy"]["mean"] == 0.5


def test_a_fabricated_value_is_counted_and_lowers_the_supported_share():
    clean = case_metrics(_result("clean", "COVID-19", ["COVID-19 pneumonia"]))
    fabricated = case_metrics(_result("fabricated", "COVID-19", ["COVID-19 pneumonia"], flags=1))
    assert clean is not None and fabricated is not None
    assert clean["fabricated_values"] == 0 and clean["numbers_supported"] == 1.0
    assert fabricated["fabricated_values"] == 1 and fabricated["numbers_supported"] == 0.75
    assert fabricated["citations_supported"] == 1.0  # a number flag says nothing about the citations


def test_an_unsafe_first_draft_fixed_by_the_review_shows_before_and_after():
    fixed = case_metrics(_result("fixed", "COVID-19", ["COVID-19"], blocks_before=1))
    left = case_metrics(_result("left", "COVID-19", ["COVID-19"], blocks_before=2, blocks=1))
    assert fixed is not None and left is not None
    assert (fixed["safety_violations_before"], fixed["safety_violations_after"]) == (1, 0)
    assert (left["safety_violations_before"], left["safety_violations_after"], left["safety_blocks_left"]) == (2, 1, 1)


def test_a_warning_is_not_a_violation():
    result = _result("warned", "COVID-19", ["COVID-19"])
    result["first_draft_findings"] = [_finding("warn")]
    metrics = case_metrics(result)
    assert metrics is not None and metrics["safety_violations_before"] == 0


def test_unlabelled_cases_keep_their_grounding_safety_checks_and_cost(tmp_path: Path):
    results = [
        _result("q1", None, [], checks=[True, True, False, True], flags=1),
        _result("q2", None, [], checks=[True, False], blocks_before=1),
        _result("q3", None, []),  # no checks: not counted in checks_passed
    ]
    card = build_scorecard(_write(tmp_path, results))
    metrics = card["metrics"]
    assert metrics["top1"] is None and metrics["balanced_accuracy"] is None
    assert card["references"] is None and card["confusion"] == {}
    assert metrics["checks_passed"]["mean"] == round((0.75 + 0.5) / 2, 4) and metrics["checks_passed"]["n"] == 2
    assert metrics["fabricated_values"]["mean"] == round(1 / 3, 4) and metrics["fabricated_values"]["n"] == 3
    assert metrics["safety_violations_before"]["mean"] == round(1 / 3, 4)
    assert metrics["tool_calls"]["mean"] == 5 and metrics["wall_s"]["n"] == 3
    assert [c["top1"] for c in card["per_case"]] == [None, None, None]


def test_a_case_without_grounding_or_checks_has_none_not_zero():
    result = _result("bare", "COVID-19", ["COVID-19"])
    del result["grounding"], result["checks"]
    metrics = case_metrics(result)
    assert metrics is not None
    assert metrics["numbers_supported"] is None and metrics["fabricated_values"] is None
    assert metrics["checks_passed"] is None and metrics["top1"] is True


def test_nothing_checked_gives_no_share():
    result = _result("unchecked", "COVID-19", ["COVID-19"])
    result["grounding"] = {"checked_numbers": 0, "checked_citations": 0, "flags": []}
    metrics = case_metrics(result)
    assert metrics is not None and metrics["numbers_supported"] is None and metrics["fabricated_values"] == 0


def test_an_empty_run_scores_without_crashing(tmp_path: Path):
    card = write_scorecard(_write(tmp_path, []))
    assert card["cases"] == 0 and card["metrics"]["top1"] is None and card["plots"] == []
    assert "Agent: -" in (tmp_path / "scorecard.md").read_text()


def test_a_trajectory_that_skips_the_allergies_fails_and_is_exported_for_agentevals(tmp_path: Path):
    run = _write(tmp_path, [_result("skipped", "COVID-19", ["COVID-19"]) | {"as_of": "2020-03-02"}])
    trace = run / "cases" / "skipped" / "trace.jsonl"
    trace.parent.mkdir(parents=True)
    calls = [("fhir_find_patient", {"query": "MRN-1"}), ("fhir_conditions", {"patient_id": "p1"}),
             ("fhir_medications", {"patient_id": "p1"}), ("fhir_observations", {"patient_id": "p1",
             "as_of": "2020-03-09"}), ("load_image", {"path": "x.dcm"})]
    trace.write_text("".join(json.dumps({"kind": "tool", "name": n, "args": a, "result_id": f"{n}:1",
                                         "summary": "ok", "error": None}) + "\n" for n, a in calls))
    case = build_scorecard(run)["per_case"][0]
    assert case["trajectory_passed"] is False
    assert case["required_tools_called"] == 5 / 6  # fhir_allergies is missing
    assert case["argument_problems"] == 1  # observations read a week past the case's day
    exported = json.loads((trace.parent / "trajectory.json").read_text())
    assert [c["function"]["name"] for m in exported if m["role"] == "assistant" for c in m["tool_calls"]] == [
        n for n, _ in calls]


def test_bacterial_vs_viral_scores_only_cases_labelled_either_and_an_unfinished_one_misses():
    from medconsult.evals.scorecard import case_metrics

    def result(finding: str, answer: str | None, status: str = "done") -> dict:
        differential = {"diagnoses": [{"diagnosis": answer}]} if answer else None
        return {"case": "c", "patient": "p", "status": status, "label": {"finding": finding},
                "differential": differential}

    assert case_metrics(result("Viral pneumonia", "Viral lower respiratory tract infection"))["bacterial_vs_viral"]
    assert case_metrics(result("Bacterial pneumonia", "Viral pneumonia"))["bacterial_vs_viral"] is False
    assert case_metrics(result("Bacterial pneumonia", "Normal chest radiograph"))["bacterial_vs_viral"] is False
    assert case_metrics(result("Bacterial pneumonia", None, status="error"))["bacterial_vs_viral"] is False
    assert case_metrics(result("Normal", "Normal chest radiograph"))["bacterial_vs_viral"] is None
    assert case_metrics(result("COVID-19", "COVID-19 pneumonia"))["bacterial_vs_viral"] is None
