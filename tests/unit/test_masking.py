"""Masking of case notes: no label term, diagnostic impression or later event survives in any real note, and
legitimate history does. The vocabularies below are written out independently of the masker and of the etiology
module it reads: the test must not share their blind spots."""

from __future__ import annotations

import csv
import re

import pytest

from conftest import DATA_DIR
from medconsult.importers.masking import WITHHELD, mask_note, split_sentences

IEEE = DATA_DIR / "cxr_ieee8023_ncsa"

# Written out independently of the masking module's own patterns: the test must not share its blind spots.
LABEL_VOCABULARY = [
    "COVID", "COVID-19", "COVID19", "SARS", "SARS-CoV-2", "coronavirus", "corona virus", "2019-nCoV", "nCoV",
    "Streptococcus", "streptococcal", "pneumococcus", "pneumococcal", "pneumoniae", "Klebsiella", "E. coli",
    "E.coli", "Escherichia", "Legionella", "Legionnaires", "Mycoplasma", "Chlamydophila", "Chlamydia",
    "Pneumocystis", "PCP", "PJP", "jirovecii", "jiroveci", "carinii", "varicella", "chickenpox", "VZV",
    "influenza", "lipoid", "ARDS", "acute respiratory distress syndrome", "viral pneumonia",
    "bacterial", "fungal pneumonia", "atypical pneumonia", "RT-PCR", "PCR", "polymerase chain reaction",
    "antigen", "culture", "serology", "acyclovir", "oseltamivir", "co-trimoxazole",
    "trimethoprim-sulfamethoxazole",
    # any pneumonia named (the label "Pneumonia" is one), aspiration pneumonia, classes in other words
    "pneumonia", "pneumonitis", "pneumonic", "bronchopneumonia", "bacteria", "bacterium", "viral pneumonia",
    "viral infection", "virus infection", "fungal", "fungus", "aspiration pneumonia", "consistent with aspiration",
    "abscess", "empyema",
    # radiological impressions that state the answer ("CXR: Normal")
    "CXR: normal", "x-ray: normal", "no finding", "no findings", "no significant findings", "lungs clear",
    "lung is normal", "no thoracic abnormalities", "normal study", "did not show abnormal",
]

# What happened after the case's day: outcome, response to treatment, the later course.
LATER_EVENTS = [
    "discharged", "discharge", "recovery", "recovered", "resolution", "resolved", "regression", "improvement",
    "improved", "remission", "recurred", "relapse", "died", "death", "follow-up", "later", "subsequently",
    "after successful treatment", "after treatment", "after 8 weeks", "after 48 hours", "after one month",
    "over the next", "during her admission", "day of admission", "deteriorated", "deterioration",
    "extracorporeal", "repeat real-time", "the last one", "initially assumed",
]
# Fine when they occur here: "Initial ... on day of admission (3 days after onset of fever)" states when the
# first radiograph was taken, which the case's own day already says.
ALLOWED_CONTEXT = ["performed on day of admission"]


def _contains_term(text: str, term: str) -> bool:
    return re.search(rf"(?<![\w]){re.escape(term)}(?![\w])", text, re.IGNORECASE) is not None


def _real_notes() -> list[dict[str, str]]:
    with (IEEE / "metadata.csv").open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.skipif(not IEEE.is_dir(), reason="the non-commercial ieee8023 folder is not present")
def test_no_label_term_survives_in_any_real_note():
    rows = _real_notes()
    assert len(rows) == 80
    leaks = [
        (row["patientid"], term)
        for row in rows
        for term in LABEL_VOCABULARY
        if _contains_term(mask_note(row["clinical_notes"]).text, term)
    ]
    assert leaks == []


@pytest.mark.skipif(not IEEE.is_dir(), reason="the non-commercial ieee8023 folder is not present")
def test_no_later_event_survives_in_any_real_note():
    leaks = []
    for row in _real_notes():
        text = mask_note(row["clinical_notes"]).text
        for allowed in ALLOWED_CONTEXT:
            text = text.replace(allowed, "")
        leaks += [(row["patientid"], term) for term in LATER_EVENTS if _contains_term(text, term)]
    assert leaks == []


@pytest.mark.skipif(not IEEE.is_dir(), reason="the non-commercial ieee8023 folder is not present")
def test_real_notes_keep_their_clinical_history():
    notes: dict[str, str] = {}
    for row in _real_notes():  # each patient's first note (the presentation)
        notes.setdefault(row["patientid"], mask_note(row["clinical_notes"]).text)
    assert "SpO2 89%" in notes["96"] and "Trip to Italy" in notes["96"] and "Fever" in notes["96"]
    assert "HIV" in notes["101"] and "CD4" in notes["101"]
    assert "traveling to Macau" in notes["21"]
    assert "CRP (42.2 mg/dl)" in notes["340"] and "WBC (14.000 mm3)" in notes["340"]
    assert "smoking" in notes["272"]
    assert WITHHELD in notes["96"]  # "SARS-CoV-2 RNA was detected."
    assert "Aspiration event a few hours before presentation." in notes["91"]  # exposure history stays
    assert "History of HIV, loss of viral suppression" in notes["108"]
    assert "after 7 days of hyperpyrexia (maximum 39? C)" in notes["340"]  # the presenting history, one sentence
    assert "penicillin and cephalosporin treatment for 3 days, without any benefits" in notes["340"]


@pytest.mark.parametrize(
    "sentence",
    [
        "Elderly male, covid-19 positive.",
        "Radiological worsening suggesting ARDS secondary to COVID19.",
        "40-year-old female patient with Coronavirus disease 2019 pneumonia.",
        "SARS-CoV-2 RNA was detected.",
        "Lobar pneumonia is usually caused by typical organisms such as Streptococcus pneumoniae.",
        "The dense consolidation of pneumococcal pneumonia.",
        "Sputum grew Klebsiella.",
        "Blood cultures grew E. coli after two days.",
        "Urinary antigen test with Legionella-Ag was performed.",
        "Mycoplasma serology came back later.",
        "Chlamydophila was considered.",
        "In the setting of a CD4 count less than 200 cells/mm3, should raise suspicion for PCP.",
        "Known Pneumocystis jirovecii pneumonia.",
        "Chickenpox in a child at home.",
        "Viral pneumonia was suspected and the patient was started on treatment.",
        "Influenza A/B RT-PCR were negative.",
        "Findings of lipoid pneumonia.",
        "He developed acute respiratory distress syndrome.",
        "Typical of a bacterial process.",
        "Repeat real-time reverse-transcriptase-polymerase chain reaction was negative and patient was discharged.",
        "Blood culture was negative.",
        "The positive result permitted a rapid diagnosis.",
        "She was started on acyclovir.",
        "Treated with oseltamivir for five days.",
        "High-dose co-trimoxazole was given.",
        "Trimethoprim-sulfamethoxazole was started.",
        # radiological impressions that state the diagnosis
        "Patient 5 - CXR: Normal.",
        "Classic appearance of a right upper lobe pneumonia.",
        "Necrotizing pneumonia resolved slowly.",
        "Findings are in line with left lower lobe aspiration pneumonia.",
        "Effacement of the costophrenic recesses consistent with aspiration.",
        "Chest radiograph(A)shows no thoracic abnormalities.",
        "No significant findings.",
        "Lungs clear.",
        # the later course
        "The patient was admitted to the hospital ward and discharged one week after admission with complete recovery.",
        "After successful treatment, an almost complete regression of the consolidation can be seen.",
        "CXR taken after 8 weeks of steroid treatment, demonstrating complete resolution of the nodule.",
        "Two months later, the disease has recurred, with consolidations in a different distribution.",
        "Progression of the necrotizing infection produced abscess as shown in the chest X-ray 2 weeks later.",
        "After 48 hours, due to worsening hypoxemia, he was intubated.",
        "Endotracheal tube can be seen at 2nd day of admission.",
        "As dyspnoea deteriorated, the patient was admitted to our intensive care unit.",
        "Follow-up chest radiographs showed persistent hilar prominence.",
    ],
)
def test_giveaway_sentences_are_withheld_whole(sentence: str):
    masked = mask_note(f"Fever and cough for three days. {sentence} Bilateral opacities.")
    assert masked.text == f"Fever and cough for three days. {WITHHELD} Bilateral opacities."
    assert sum(masked.withheld.values()) == 1


@pytest.mark.parametrize(
    "sentence",
    [
        "Adult female with positive HIV infection and low CD4 count.",
        "HIV serology was positive two years ago, on antiretroviral therapy.",
        "Fever (38.9 C), SpO2 89% on room air.",
        "Flu-like illness.",
        "Travel to Wuhan 3 days prior.",
        "Heavy smoker, 60 pack-years.",
        "Laboratory tests showed elevation of C-reactive protein (45 mg/L).",
        "Blood test only shows high CRP.",
        "Right lower lobe consolidation with air bronchograms.",
        "No coronary calcification on the coronal images.",
        "Aspiration event a few hours before presentation.",
        "History of HIV, loss of viral suppression, a few weeks of shortness of breath.",
        "Trip to Italy 7 days ago.",
        "Travelling to Macau from Wuhan 3 days prior, denied close contact with wet market.",
        "The patient presented to the emergency room after 7 days of hyperpyrexia.",
        "He had been under penicillin and cephalosporin treatment for 3 days, without any benefits.",
        "Her sister had been diagnosed with lung cancer.",
        "Known COPD and heart failure.",
        "Physical examination was unremarkable.",
        "The lungs are of normal volume, there is no collapse and no pleural effusion.",
    ],
)
def test_legitimate_history_is_kept(sentence: str):
    assert mask_note(sentence).text == sentence


def test_the_marker_does_not_depend_on_the_label():
    covid = mask_note("Fever. SARS-CoV-2 RNA was detected. Bilateral opacities.").text
    legionella = mask_note("Fever. Legionella antigen was positive. Bilateral opacities.").text
    assert covid == legionella


def test_a_run_of_withheld_sentences_becomes_one_marker():
    masked = mask_note("Cough. COVID-19 suspected. PCR was positive. Bilateral opacities.")
    assert masked.text == f"Cough. {WITHHELD} Bilateral opacities."
    assert sum(masked.withheld.values()) == 2


def test_abbreviations_and_decimals_do_not_split_sentences():
    text = "Seen by Dr. Smith (Fig. 1). CRP 42.2 mg/dl on day 2. Cultures grew E. coli in 2 days."
    assert split_sentences(text) == [
        "Seen by Dr. Smith (Fig. 1).",
        "CRP 42.2 mg/dl on day 2.",
        "Cultures grew E. coli in 2 days.",
    ]


def test_whitespace_and_empty_notes():
    assert mask_note("").text == ""
    assert mask_note("  Dry cough,\n chest pain  ").text == "Dry cough, chest pain"
