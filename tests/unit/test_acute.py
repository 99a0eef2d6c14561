"""Which diagnoses explain an acute respiratory presentation: a vocabulary written here, apart from the code's."""

from __future__ import annotations

import pytest

from medconsult.clinical.acute import explains_acute_respiratory

EXPLAINS = [
    "Community-acquired pneumonia", "Right lower lobe pneumonia", "Streptococcus pneumoniae pneumonia",
    "COVID-19", "Influenza A", "Pneumocystis jirovecii pneumonia", "Acute bronchitis", "Bronchiolitis",
    "Exacerbation of COPD", "Acute asthma attack", "Pulmonary embolism", "Acute respiratory distress syndrome",
    "Cardiogenic pulmonary edema", "Left pleural effusion", "Spontaneous pneumothorax", "Sepsis",
    "Lower respiratory tract infection", "Aspiration pneumonitis", "Lipoid pneumonia",
]
BACKGROUND = [
    "Drug overdose", "Anemia", "Prediabetes", "Hypertension", "Chronic obstructive pulmonary disease",
    "Lung cancer", "Idiopathic pulmonary fibrosis", "Obesity", "Sarcoidosis", "No acute findings",
]


@pytest.mark.parametrize("diagnosis", EXPLAINS)
def test_acute_chest_illnesses_explain_the_presentation(diagnosis: str):
    assert explains_acute_respiratory(diagnosis)


@pytest.mark.parametrize("diagnosis", BACKGROUND)
def test_background_problems_do_not(diagnosis: str):
    assert not explains_acute_respiratory(diagnosis)
