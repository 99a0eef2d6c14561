from __future__ import annotations

import json

from medconsult.cli.stream_view import StreamView

DIFFERENTIAL = {
    "summary": "Febrile man with cough.",
    "diagnoses": [
        {"diagnosis": "Bacterial pneumonia", "likelihood": "high", "supporting": [], "reasoning": "r"},
        {"diagnosis": "[bold red]Influenza[/]", "likelihood": "low", "supporting": [], "reasoning": "r"},
    ],
}


def _stream(view: StreamView, step: str, reply: dict) -> None:
    text = json.dumps(reply)
    for end in range(1, len(text) + 1):
        view(step, text[:end])


def test_each_diagnosis_is_shown_once_its_name_and_likelihood_are_complete():
    shown = []
    _stream(StreamView(lambda line: shown.append(line.plain.strip())), "differential", DIFFERENTIAL)
    assert shown == ["1. Bacterial pneumonia (high)", "2. [bold red]Influenza[/] (low)"]  # model text stays text


def test_plan_actions_are_shown_as_they_complete_and_a_redraft_starts_again():
    plan = {
        "working_diagnosis": "Bacterial pneumonia",
        "regimen": "cap-outpatient",
        "actions": [{"action": "Start amoxicillin", "category": "antimicrobial", "priority": "immediate",
                     "rationale": "r"}],
    }
    shown = []
    view = StreamView(lambda line: shown.append(line.plain.strip()))
    _stream(view, "plan", plan)
    _stream(view, "plan", plan)
    expected = ["working diagnosis: Bacterial pneumonia", "[immediate] Start amoxicillin (antimicrobial)"]
    assert shown == expected * 2


def test_other_steps_and_unparsable_text_show_nothing():
    shown = []
    view = StreamView(shown.append)
    view("request_evidence", '{"requests": []}')
    view("differential", "not json at all {")
    assert shown == []
