"""Whether a diagnosis can explain an acute respiratory presentation (a chest radiograph consult).

An infection of any class does, and so does pneumonia with no cause named; so do the acute non-infectious chest
conditions of the etiology vocabulary (ARDS, pulmonary oedema, embolism, pneumothorax, effusion, the pneumonitides)
and an exacerbation of a chronic airway disease. A chronic background problem (cancer, fibrosis, COPD without an
exacerbation) or something outside the chest (anaemia, an overdose recorded years ago) does not: a differential led
by two of those has listed the problem list, not explained the patient.
"""

from __future__ import annotations

import re

from medconsult.clinical.etiology import classify

INFECTIOUS_READINGS = ("bacterial", "viral", "fungal", "covid-19", "unspecified")
ACUTE_CONDITIONS = frozenset({
    "ARDS", "pulmonary oedema", "heart failure", "pulmonary embolism", "pneumothorax", "pleural effusion",
    "atelectasis", "contusion", "lipoid pneumonia", "organising pneumonia", "eosinophilic pneumonia",
    "hypersensitivity pneumonitis", "radiation pneumonitis", "drug-induced pneumonitis",
})
AIRWAY_CONDITIONS = ("COPD", "asthma")
EXACERBATION = re.compile(r"\bexacerbat\w*|\battack\b|\bacute\b", re.IGNORECASE)
OTHER_ACUTE = re.compile(
    r"\bbronch(?:itis|iolitis)\b|\bsepsis\b|\bseptic\b|\brespiratory\s+(?:tract\s+)?infection|\bcroup\b"
    r"|\bpertussis\b|\bwhooping\s+cough\b|\brespiratory\s+failure\b",
    re.IGNORECASE,
)


def explains_acute_respiratory(diagnosis: str) -> bool:
    reading = classify(diagnosis)
    if reading.reading in INFECTIOUS_READINGS:
        return True
    if reading.condition in ACUTE_CONDITIONS:
        return True
    if reading.condition in AIRWAY_CONDITIONS and EXACERBATION.search(diagnosis):
        return True
    return bool(OTHER_ACUTE.search(diagnosis))
