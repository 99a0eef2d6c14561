"""Infection markers against their published thresholds, and the conservative overall pattern.

Thresholds: procalcitonin, Schuetz P et al. JAMA 2009;302:1059-66 (ProHOSP: < 0.1 strongly discouraged,
0.1-0.25 discouraged, >= 0.25 encouraged, >= 0.5 ug/L strongly encouraged); CRP, NICE CG191 (< 20 mg/L no routine
antibiotic, 20-100 consider delayed prescription, > 100 offer antibiotic); white cells, Bone 1992 (> 12 or
< 4 x10^3/uL); lymphocytopenia < 1.0 x10^9/L, de Jager CP et al. Crit Care 2010;14:R192.
"""

from __future__ import annotations

import pytest

from medconsult.clinical.markers import interpret_markers
from medconsult.clinical.scores import Input

UNITS = {"procalcitonin": "ng/mL", "crp": "mg/L", "leukocytes": "10*3/uL", "neutrophils": "10*3/uL",
         "lymphocytes": "10*3/uL"}


def markers(**values):
    return interpret_markers({
        name: Input(name=name, value=value, unit=UNITS[name], resource=f"Observation/{name}")
        for name, value in values.items()
    })


def statement(result, marker):
    return next(s for s in result.statements if s.marker == marker)


@pytest.mark.parametrize(
    ("value", "direction", "meaning"),
    [
        (0.09, "viral", "strongly discouraged"),
        (0.1, "viral", "antibiotics discouraged"),
        (0.24, "viral", "antibiotics discouraged"),
        (0.25, "bacterial", "antibiotics encouraged"),
        (0.49, "bacterial", "antibiotics encouraged"),
        (0.5, "bacterial", "strongly encouraged"),
    ],
)
def test_procalcitonin_prohosp_cut_offs(value, direction, meaning):
    found = statement(markers(procalcitonin=value), "procalcitonin")
    assert found.direction == direction and meaning in found.meaning
    assert found.resources == ["Observation/procalcitonin"]
    assert "Schuetz P et al. JAMA 2009" in found.source


@pytest.mark.parametrize(
    ("value", "direction"),
    [(19.9, "viral"), (20, "none"), (100, "none"), (100.1, "bacterial")],
)
def test_crp_nice_cut_offs(value, direction):
    found = statement(markers(crp=value), "crp")
    assert found.direction == direction and "NICE CG191" in found.source


def test_typical_procalcitonin_of_viral_and_bacterial_pneumonia():
    # Self WH et al. Clin Infect Dis 2017, doi:10.1093/cid/cix317 (EPIC study): median procalcitonin 0.09 ng/mL
    # with viral pathogens and 2.5 ng/mL with typical bacteria, adults hospitalised with community-acquired pneumonia.
    assert markers(procalcitonin=0.09).pattern == "favours viral"
    assert markers(procalcitonin=2.5).pattern == "favours bacterial"


def test_published_covid19_case_stays_indeterminate():
    # MedCalc-Bench row 537, pmc-8104349-1: COVID-19 pneumonia, WBC 3.4, neutrophils 2.43, lymphocytes 0.82
    # x10^9/L, CRP 100 mg/L. CRP at the top of NICE's grey zone and no procalcitonin: no call either way;
    # lymphopenia and leukopenia are reported as context.
    result = markers(crp=100, leukocytes=3.4, neutrophils=2.43, lymphocytes=0.82)
    assert result.pattern == "indeterminate"
    assert statement(result, "lymphocytes").weight == "context"
    assert statement(result, "leukocytes").direction == "none"
    assert result.neutrophil_lymphocyte_ratio == pytest.approx(2.96, abs=0.01)
    assert [m.name for m in result.missing] == ["procalcitonin"]


def test_conflicting_primary_markers_are_indeterminate():
    assert markers(procalcitonin=0.05, crp=150).pattern == "indeterminate"
    assert markers(procalcitonin=1.2, crp=10).pattern == "indeterminate"


def test_agreeing_markers():
    assert markers(procalcitonin=0.8, crp=180, leukocytes=17).pattern == "favours bacterial"
    assert markers(procalcitonin=0.05, crp=8, leukocytes=6).pattern == "favours viral"


def test_leukocytosis_against_low_primary_markers_is_indeterminate():
    result = markers(procalcitonin=0.05, crp=12, leukocytes=16)
    assert result.pattern == "indeterminate"
    assert statement(result, "leukocytes").weight == "supportive"


def test_white_cell_boundaries():
    assert [s.marker for s in markers(crp=5, leukocytes=12.0).statements] == ["crp"]
    assert statement(markers(crp=5, leukocytes=12.1), "leukocytes").direction == "bacterial"
    assert [s.marker for s in markers(crp=5, leukocytes=4.0).statements] == ["crp"]
    assert statement(markers(crp=5, leukocytes=3.9), "leukocytes").direction == "none"


def test_lymphopenia_boundary_and_no_vote():
    assert [s.marker for s in markers(lymphocytes=1.0).statements] == []
    result = markers(crp=5, lymphocytes=0.9)
    assert statement(result, "lymphocytes").direction == "none"
    assert result.pattern == "favours viral"  # decided by CRP alone


def test_blood_count_alone_is_insufficient():
    result = markers(leukocytes=18, neutrophils=16, lymphocytes=0.8)
    assert result.pattern == "insufficient data"
    assert result.neutrophil_lymphocyte_ratio == 20.0
    assert {m.name for m in result.missing} == {"procalcitonin", "crp"}


def test_nothing_at_all():
    result = interpret_markers({"crp": Input(name="crp", note="no C-reactive protein result")})
    assert result.pattern == "insufficient data" and result.statements == []
    assert next(m for m in result.missing if m.name == "crp").reason == "no C-reactive protein result"
