"""The problem list separates what began around the case's day from the background history."""

from __future__ import annotations

from medconsult.tools.fhir.conditions import ConditionItem, _statement


def _item(onset: str | None, status: str = "active") -> ConditionItem:
    return ConditionItem(resource="Condition/1", display="Pneumonia (disorder)", snomed=None, codings=[],
                         clinical_status=status, onset=onset)


def test_a_problem_of_the_last_month_is_new_and_an_older_one_background():
    assert _statement(_item("2018-09-28T10:00:00Z"), "2018-09-29") == "Pneumonia, onset 2018-09-28, new"
    assert _statement(_item("2018-08-30"), "2018-09-29") == "Pneumonia, onset 2018-08-30, new"  # 30 days before
    assert _statement(_item("2018-08-29"), "2018-09-29") == "Pneumonia, onset 2018-08-29, background"
    assert _statement(_item("2010-05-02"), "2018-09-29") == "Pneumonia, onset 2010, background"
    assert _statement(_item(None), "2018-09-29") == "Pneumonia, onset unknown"  # no date: neither claim
    assert _statement(_item("2018-09-01", "resolved"), "2018-09-29") == "Pneumonia (resolved), onset 2018-09-01, new"
