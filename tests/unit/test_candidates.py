"""Candidate diagnoses for a radiograph consult: every condition named by its cause, the population's own, and the
tools' suggestions first with their figures."""

from __future__ import annotations

from medconsult.agents.deterministic.candidates import NORMAL, candidate_diagnoses
from medconsult.evals.scorers import diagnosis_scores
from medconsult.knowledge import load_knowledge
from medconsult.prompts import render
from medconsult.records import ToolRecord

KB = load_knowledge()

# Written for this test, apart from the project's etiology vocabulary: the word each cause's name must carry.
CAUSE_WORDS = {
    "bacterial": ("bacterial", "legionella", "aspiration"),
    "viral": ("viral", "influenza", "varicella"),
    "covid-19": ("covid",),
    "fungal": ("pneumocystis",),
    "normal": ("normal",),
}


def _record(tool: str, result: dict) -> ToolRecord:
    return ToolRecord(id=f"{tool}:1", tool=tool, args={}, ok=True, result=result, started_at="2026-01-01T00:00:00",
                      duration_s=0.1)


def _estimate(abstained: bool = False, **probabilities: float) -> ToolRecord:
    return _record("etiology_estimate", {"summary": "e", "abstained": abstained, "probabilities": probabilities})


def _similar(of: str = "adult", **vote: int) -> ToolRecord:
    """Similar cases of population `of` with these label counts."""
    labels = [label for label, count in vote.items() for _ in range(count)]
    cases = [{"case_id": f"c{i}", "label": label, "population": of} for i, label in enumerate(labels)]
    return _record("similar_cases", {"summary": "s", "cases": cases, "vote": vote})


def test_every_candidate_names_its_cause_and_is_scored_as_that_cause():
    for population in ("adult", "paediatric"):
        for candidate in candidate_diagnoses(KB, [_similar(population, normal=1)], population):
            assert any(word in candidate.name.lower() for word in CAUSE_WORDS[candidate.etiology]), candidate
            label = {"covid-19": "COVID-19", "normal": "No Finding"}.get(candidate.etiology, candidate.etiology)
            assert diagnosis_scores([candidate.name], label).top1 is True, candidate


def test_each_population_gets_all_its_own_conditions_and_no_other():
    for population in ("adult", "paediatric"):
        listed = [c.condition for c in candidate_diagnoses(KB, [], population)]
        own = {key for key, c in KB.conditions.items() if c.population == population}
        assert set(listed) == own and len(listed) == len(own)


def test_normal_is_offered_only_when_a_tool_points_to_it():
    unprompted = [[_similar(bacterial=5)], [_estimate(bacterial=0.97, normal=0.01)]]  # under 0.05: no suggestion
    for records, population in zip(unprompted, ("adult", "paediatric"), strict=True):
        assert NORMAL not in [c.name for c in candidate_diagnoses(KB, records, population)]
    listed = candidate_diagnoses(KB, [_estimate(normal=0.9, bacterial=0.1)], "paediatric")
    assert listed[0].line() == f"{NORMAL} (etiology estimate 0.90)"


def test_a_candidate_name_finds_its_regimens():
    for population in ("adult", "paediatric"):
        for candidate in candidate_diagnoses(KB, [], population):
            if candidate.condition:
                assert KB.match_condition(candidate.name, population).key == candidate.condition


def test_the_tools_suggestions_come_first_with_their_figures():
    estimate = _estimate(**{"covid-19": 0.6, "bacterial": 0.3, "viral": 0.1})
    records = [estimate, _similar(**{"covid-19": 3, "bacterial": 2})]
    candidates = candidate_diagnoses(KB, records, "adult")
    assert [c.etiology for c in candidates[:2]] == ["covid-19", "bacterial"]
    assert candidates[0].line() == "COVID-19 pneumonia (etiology estimate 0.60; similar cases 3 of 5)"
    assert candidates[1].name == "Bacterial community-acquired pneumonia"  # the class's lead, then the others
    assert candidates[2].support == ()  # figures stand beside the class's first candidate only
    assert NORMAL not in [c.name for c in candidates]  # no tool points to it


def test_an_abstaining_estimate_suggests_nothing():
    records = [_estimate(abstained=True, viral=0.9), _similar("paediatric", bacterial=4, normal=1)]
    candidates = candidate_diagnoses(KB, records, "paediatric")
    assert [c.etiology for c in candidates] == ["bacterial", "normal", "viral"]
    assert all("estimate" not in part for c in candidates for part in c.support)


def test_a_class_one_tool_leaves_out_counts_as_zero_for_that_tool():
    # Estimate says viral 0.55; similar cases say bacterial 5 of 5: bacterial (0.2 + 1.0) / 2 beats viral 0.55 / 2.
    records = [_estimate(viral=0.55, bacterial=0.2, normal=0.25), _similar("paediatric", bacterial=5)]
    assert candidate_diagnoses(KB, records, "paediatric")[0].etiology == "bacterial"


def test_only_similar_cases_of_the_patients_population_vote():
    # An adult of unknown age is searched among everyone (ieee8023-65-1 found five healthy children).
    children = _similar("paediatric", normal=4, bacterial=1)
    assert NORMAL not in [c.name for c in candidate_diagnoses(KB, [children], "adult")]
    assert all(c.support == () for c in candidate_diagnoses(KB, [children], "adult"))
    mixed = _record("similar_cases", {"summary": "s", "vote": {"normal": 3, "viral": 2}, "cases": [
        {"case_id": "c1", "label": "normal", "population": "paediatric"},
        {"case_id": "c2", "label": "viral", "population": "adult"},
        {"case_id": "c3", "label": "normal", "population": "paediatric"},
        {"case_id": "c4", "label": "viral", "population": "adult"},
        {"case_id": "c5", "label": "normal", "population": "paediatric"},
    ]})
    assert candidate_diagnoses(KB, [mixed], "adult")[0].line() == "Influenza pneumonia (similar cases 2 of 2)"


def test_the_differential_prompt_lists_the_candidates_only_when_given():
    candidates = candidate_diagnoses(KB, [_similar("paediatric", viral=5)], "paediatric")
    asked = render("differential.user.md", question="Q", candidates=candidates)
    assert "- Viral lower respiratory tract infection in a child (similar cases 5 of 5)\n- Bacterial pneumonia" in asked
    assert "Candidate diagnoses" not in render("differential.user.md", question="Q", candidates=[])


def test_a_candidate_copied_with_its_figures_keeps_only_its_name():
    from medconsult.agents.differential import _candidate_named

    candidates = candidate_diagnoses(KB, [_similar("paediatric", viral=5)], "paediatric")
    copied = {"diagnosis": "Viral lower respiratory tract infection in a child (similar cases 5 of 5)", "x": 1}
    assert _candidate_named(copied, candidates) == {"diagnosis": candidates[0].name, "x": 1}
    assert KB.match_condition(_candidate_named(copied, candidates)["diagnosis"], "paediatric").key == (
        "paediatric_viral_lrti")
    own = {"diagnosis": "Bronchiolitis (RSV)"}
    assert _candidate_named(own, candidates) == own  # a diagnosis of the model's own is left as written
