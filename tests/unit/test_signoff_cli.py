"""The terminal's sign-off: what the physician types becomes the recorded decision."""

from __future__ import annotations

import importlib

import pytest

from medconsult.signoff import SignOffRequest, auto_approve

run_cli = importlib.import_module("medconsult.cli.run")  # the package exports the command under the same name

REQUEST = SignOffRequest(
    case_id="c1",
    draft_report="out/report.md",
    working_diagnosis="Pneumonia",
    safety_flags=["block: amoxicillin with a penicillin allergy"],
    unsupported_statements=1,
)


@pytest.mark.parametrize(
    ("answers", "decision", "note"),
    [
        (["approve", "Dr A"], "approve", None),
        (["edit", "Dr A", "Use levofloxacin instead."], "edit", "Use levofloxacin instead."),
        (["reject", "Dr B", "Wrong patient."], "reject", "Wrong patient."),
    ],
)
def test_the_physician_answers_at_the_terminal(monkeypatch: pytest.MonkeyPatch, answers, decision, note):
    typed = iter(answers)
    monkeypatch.setattr(run_cli.typer, "prompt", lambda *args, **kwargs: next(typed))
    signed = run_cli.ask_physician(REQUEST)
    assert (signed.decision, signed.reviewer, signed.note) == (decision, answers[1], note)


def test_batch_approval_never_reads_as_a_physician():
    assert "not reviewed by a physician" in auto_approve(REQUEST).reviewer
