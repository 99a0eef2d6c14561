from __future__ import annotations

import json

import pytest

from medconsult.agents.deterministic.grounding import GroundingFlag, GroundingReport
from medconsult.clinical.etiology import pathogen
from medconsult.evals.scorers import (
    ANOTHER_CONDITION,
    balanced_accuracy,
    diagnosis_scores,
    grounding_score,
    macro_recall,
    reference_baselines,
    safety_score,
    to_agentevals_trajectory,
    trajectory_score,
)
from medconsult.evals.trace_stats import time_split
from medconsult.safety import SafetyFinding
from medconsult.stats import bootstrap_ci, paired_difference_ci

# --- Pathogen ----------------------------------------------------------------------------------------------
# (the etiology classes have their own tables in test_etiology.py)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Streptococcus", "streptococcus"),
        ("S. pneumoniae pneumonia", "streptococcus"),
        ("E.Coli", "escherichia coli"),
        ("Mycoplasma Bacterial Pneumonia", "mycoplasma"),
        ("COVID-19, ARDS", "sars-cov-2"),
        ("Pneumocystis jirovecii pneumonia", "pneumocystis"),
        ("Influenza with secondary Staphylococcus aureus pneumonia", "influenza virus"),
        ("Haemophilus influenzae", "haemophilus influenzae"),
        ("Bacterial", None),
        ("Pneumonia", None),
        ("No Finding", None),
    ],
)
def test_pathogen(text, expected):
    assert pathogen(text) == expected


# --- Diagnosis ------------------------------------------------------------------------------------------------


def test_wrong_diagnosis_is_a_top1_miss_but_a_top3_hit():
    score = diagnosis_scores(
        [
            "COVID-19 pneumonia",
            "Viral pneumonia",
            "Pneumocystis jirovecii pneumonia",
            "Streptococcal pneumonia",
        ],
        "Pneumocystis",
    )
    assert score.label_class == "fungal"
    assert score.top1 is False
    assert score.top3 is True
    assert (score.pathogen_top1, score.pathogen_top3) == (False, True)


def test_right_class_wrong_organism():
    score = diagnosis_scores(["Klebsiella pneumonia", "Legionella pneumonia"], "Streptococcus")
    assert score.top1 is True
    assert score.pathogen_top1 is False
    assert score.pathogen_top3 is False


def test_pathogen_level_is_none_when_the_label_names_no_organism():
    score = diagnosis_scores(["Bacterial pneumonia"], "Bacterial")
    assert score.top1 is True
    assert score.pathogen_top1 is None and score.pathogen_top3 is None


def test_an_unspecified_pneumonia_label_is_not_an_etiology_and_is_not_scored():
    # The old scorer mapped "Pneumonia" to bacterial and counted a drafted "community-acquired pneumonia" as a hit.
    score = diagnosis_scores(["Community-acquired pneumonia", "Bacterial pneumonia"], "Pneumonia")
    assert score.label_class == "unspecified"
    assert score.top1 is None and score.top3 is None


@pytest.mark.parametrize("drafted", ["Community-acquired pneumonia", "Pneumonia", "CAP", "Bacterial or viral pneumonia",
                                     "Pneumonia (bacterial vs viral)"])
def test_a_diagnosis_naming_no_cause_never_scores_a_hit(drafted):
    for label in ("Streptococcus", "Bacterial", "COVID-19", "Varicella"):
        score = diagnosis_scores([drafted], label)
        assert score.predicted_classes == ["unspecified"]
        assert score.top1 is False and score.top3 is False


def test_a_hedge_is_not_read_as_its_first_named_class():
    assert diagnosis_scores(["Bacterial or viral pneumonia"], "Streptococcus").top1 is False
    assert diagnosis_scores(["Bacterial pneumonia", "Viral pneumonia"], "Streptococcus").top1 is True


def test_another_non_infectious_disease_is_not_a_hit_on_an_other_label():
    # The old rule read "COPD" and "Laryngeal carcinoma" as class "other" and scored them hits on a lipoid label.
    missed = diagnosis_scores(["Laryngeal carcinoma", "COPD exacerbation"], "Lipoid")
    assert missed.top1 is False and missed.top3 is False
    assert missed.predicted_classes == [ANOTHER_CONDITION, ANOTHER_CONDITION]
    assert diagnosis_scores(["COPD exacerbation", "Lipoid pneumonia"], "Lipoid").top3 is True
    assert diagnosis_scores(["Acute respiratory distress syndrome"], "ARDS").top1 is True
    assert diagnosis_scores(["COPD exacerbation"], "COVID-19").predicted_classes == ["other"]  # a plain miss


def test_unmappable_label_is_not_scored():
    score = diagnosis_scores(["COVID-19 pneumonia"], "todo")
    assert score.top1 is None and score.top3 is None


# --- Balanced accuracy and baselines --------------------------------------------------------------------------


def test_balanced_accuracy_matches_hand_computation():
    pairs = [
        ("covid-19", "covid-19"), ("covid-19", "covid-19"), ("covid-19", "covid-19"), ("bacterial", "covid-19"),
        ("bacterial", "bacterial"), ("covid-19", "bacterial"),
        (None, "fungal"),
    ]
    # recall: covid-19 3/4, bacterial 1/2, fungal 0/1 -> (0.75 + 0.5 + 0) / 3
    assert balanced_accuracy(pairs) == pytest.approx((0.75 + 0.5 + 0.0) / 3)


def test_macro_recall_counts_a_class_only_the_agent_predicted_as_a_zero():
    pairs = [("covid-19", "covid-19"), ("covid-19", "covid-19"), ("fungal", "bacterial"), ("unspecified", "bacterial")]
    assert balanced_accuracy(pairs) == pytest.approx((1.0 + 0.0) / 2)  # covid-19 and bacterial
    assert macro_recall(pairs) == pytest.approx((1.0 + 0.0 + 0.0) / 3)  # fungal was predicted, never a label


def test_balanced_accuracy_rejects_no_pairs():
    with pytest.raises(ValueError):
        balanced_accuracy([])


def test_constant_ranking_baseline_gets_a_high_top3_on_an_imbalanced_suite():
    labels = (
        ["COVID-19"] * 30 + ["Streptococcus"] * 9 + ["Pneumocystis"] * 8 + ["Klebsiella"] * 5
        + ["Varicella"] * 4 + ["Lipoid"] + ["No Finding"] + ["todo", "Pneumonia"]
    )
    baselines = reference_baselines(labels)
    assert baselines["cases"] == 58 and baselines["unmapped"] == 2  # "Pneumonia" names no etiology
    majority, ranking = baselines["majority"], baselines["constant_ranking"]
    assert majority.ranking == ["covid-19"]
    assert majority.top1 == pytest.approx(30 / 58)
    assert majority.top3 == majority.top1  # a single answer
    assert majority.balanced_accuracy == pytest.approx(1 / 6)  # six classes, all of one recalled
    assert ranking.ranking == ["covid-19", "bacterial", "fungal"]
    assert ranking.top3 == pytest.approx((30 + 14 + 8) / 58)
    assert ranking.top3 > 0.85


# --- Trajectory -----------------------------------------------------------------------------------------------



def _tool(name: str, start: int, **args) -> dict:
    return {
        "kind": "tool", "name": name, "start": f"2026-01-01T00:00:{start:02d}+00:00", "duration_s": 1.0,
        "error": None, "result_id": f"{name}:{start}", "args": args, "summary": f"{name} done",
    }


def _good_calls() -> list[dict]:
    return [
        _tool("fhir_find_patient", 0, query="ieee8023-101"),
        _tool("fhir_conditions", 1, patient_id="p1", as_of="2020-03-02"),
        _tool("fhir_allergies", 2, patient_id="p1", as_of="2020-03-02"),
        _tool("crb65", 3, patient_id="p1", as_of="2020-03-01"),
    ]


def test_trajectory_passes_with_required_tools_and_sane_arguments():
    score = trajectory_score(
        _good_calls(), {"fhir_allergies", "fhir_conditions"}, {"fhir_write"}, "2020-03-02"
    )
    assert score.passed, score


def test_missing_required_tool_is_caught():
    calls = [c for c in _good_calls() if c["name"] != "fhir_allergies"]
    score = trajectory_score(calls, {"fhir_allergies", "fhir_conditions"}, set(), "2020-03-02")
    assert score.missing_required == ["fhir_allergies"]
    assert not score.passed


def test_forbidden_tool_and_bad_arguments_are_caught():
    calls = [
        *_good_calls(),
        _tool("fhir_write", 4, patient_id="p1"),
        _tool("fhir_observations", 5, as_of="2020-03-02"),  # no patient
        _tool("fhir_medications", 6, patient_id="p1", as_of="2020-04-01"),  # looks past the case's day
    ]
    score = trajectory_score(calls, set(), {"fhir_write"}, "2020-03-02")
    assert score.forbidden_called == ["fhir_write"]
    assert score.argument_problems == [
        "fhir_observations: no patient_id",
        "fhir_medications: as_of 2020-04-01 is after the case's 2020-03-02",
    ]
    assert not score.passed


def test_agentevals_trajectory_pairs_each_call_with_its_result_in_start_order():
    calls = list(reversed(_good_calls()))  # traces are written when calls finish, not when they start
    messages = to_agentevals_trajectory([{"kind": "node", "name": "intake"}, *calls])
    assert [m["role"] for m in messages] == ["assistant", "tool"] * 4
    first = messages[0]["tool_calls"][0]
    assert first["function"]["name"] == "fhir_find_patient"
    assert json.loads(first["function"]["arguments"]) == {"query": "ieee8023-101"}
    assert messages[1] == {"role": "tool", "tool_call_id": first["id"], "content": "fhir_find_patient done"}


# --- Grounding, safety, cost ----------------------------------------------------------------------------------


def test_fabricated_value_is_counted():
    report = GroundingReport(
        checked_numbers=4,
        checked_citations=2,
        flags=[
            GroundingFlag(
                location="differential.diagnoses[0].reasoning", statement="CRP 180 mg/L supports it.",
                claim="CRP 180 mg/L", reason="no fact states a CRP of 180 mg/L", kind="number",
            ),
        ],
    )
    score = grounding_score(report)
    assert score["fabricated_values"] == 1
    assert score["numbers_supported"] == pytest.approx(0.75)
    assert score["citations_supported"] == 1.0
    assert grounding_score(report.model_dump()) == score


def test_clean_grounding_and_the_trace_line_form():
    assert (
        grounding_score(GroundingReport(checked_numbers=3, checked_citations=0, flags=[]))[
            "fabricated_values"
        ]
        == 0
    )
    line = {
        "kind": "node",
        "name": "grounding",
        "checked_numbers": 8,
        "checked_citations": 2,
        "unsupported": 1,
    }
    score = grounding_score(line)
    assert score["fabricated_values"] == 1
    assert score["numbers_supported"] == pytest.approx(0.9)


def _finding(rule: str, severity: str) -> SafetyFinding:
    return SafetyFinding(rule=rule, severity=severity, drug="amoxicillin", message="m", source="s")


def test_unsafe_plan_after_review_is_caught():
    before = [_finding("allergy", "block"), _finding("interaction", "block"), _finding("record-gap", "warn")]
    after = [_finding("allergy", "block"), _finding("record-gap", "warn")]
    score = safety_score(before, [f.model_dump() for f in after])
    assert score["total_violations_before"] == 2
    assert score["total_violations_after"] == 1
    assert score["violations_after"] == {"allergy": 1}
    assert score["warnings_after"] == {"record-gap": 1}


def test_review_that_resolves_every_block_scores_zero_after():
    score = safety_score([_finding("renal", "block")], [])
    assert score["violations_before"] == {"renal": 1}
    assert score["total_violations_after"] == 0


def test_the_cost_of_a_case_from_its_trace_lines():
    lines = [
        {"kind": "llm", "name": "differential", "start": "2026-01-01T00:00:01+00:00", "duration_s": 5.0,
         "prompt_tokens": 100, "completion_tokens": 20},
        {"kind": "llm", "name": "plan", "start": "2026-01-01T00:00:07+00:00", "duration_s": 2.0,
         "prompt_tokens": 50, "completion_tokens": 10},
        {"kind": "node", "name": "consult", "start": "2026-01-01T00:00:00+00:00", "duration_s": 10.0},
    ]
    cost = time_split(lines)
    assert cost["wall_s"] == 10.0 and cost["llm_s"] == 7.0
    assert (cost["llm_calls"], cost["prompt_tokens"], cost["completion_tokens"]) == (2, 150, 30)


# --- Statistics -----------------------------------------------------------------------------------------------


def test_bootstrap_ci_contains_the_point_and_is_reproducible():
    values = [1.0] * 12 + [0.0] * 8
    point, low, high = bootstrap_ci(values, seed=7)
    assert point == pytest.approx(0.6)
    assert low <= point <= high
    assert low < high
    assert bootstrap_ci(values, seed=7) == (point, low, high)
    assert bootstrap_ci(values, seed=8) != (point, low, high)


def test_bootstrap_ci_takes_another_statistic():
    point, low, high = bootstrap_ci([1.0, 2.0, 3.0, 100.0], statistic=lambda v: float(sorted(v)[0]), seed=1)
    assert point == 1.0 and low == 1.0 and high <= 100.0


def test_paired_difference_ci():
    a = [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    b = [0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]
    point, low, high = paired_difference_ci(a, b, seed=3)
    assert point == pytest.approx(0.6)
    assert 0.0 < low <= point <= high
    with pytest.raises(ValueError):
        paired_difference_ci(a, b[:-1])


def test_the_vectorised_patient_bootstrap_of_a_mean_draws_like_the_general_one():
    from medconsult.stats import grouped_bootstrap_ci, grouped_mean_ci, mean_of

    values = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.5]
    groups = ["a", "a", "b", "c", "c", "c", "d", "e"]
    general = grouped_bootstrap_ci(values, groups, mean_of, seed=5)
    assert grouped_mean_ci(values, groups, seed=5) == pytest.approx(general)
    assert grouped_mean_ci(values, list(range(8)), seed=5) == pytest.approx(bootstrap_ci(values, seed=5))
