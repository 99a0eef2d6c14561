"""The one etiology vocabulary (medconsult.clinical.etiology): per class, the data sets' label strings and the ways a
model phrases a diagnosis; pneumonia without a cause and hedges read `unspecified`; the masker and the scorers import
it rather than keeping vocabularies of their own."""

from __future__ import annotations

import importlib

import pytest

from medconsult.clinical.etiology import (
    TERMS,
    classify,
    etiology_class,
    mentions,
    names_a_cause,
    pathogen,
    reveals,
)

# Per class: (label strings of the data sets, model phrasings). Every ieee8023 finding is listed under its class.
TABLES: dict[str, tuple[list[str], list[str]]] = {
    "bacterial": (
        ["Streptococcus", "Klebsiella", "E.Coli", "Legionella", "Mycoplasma Bacterial Pneumonia", "Bacterial",
         "Chlamydophila", "Staphylococcus", "Aspiration pneumonia"],
        ["Pneumococcal pneumonia", "Streptococcus pneumoniae pneumonia", "Escherichia coli pneumonia",
         "Bacterial community-acquired pneumonia", "Legionnaires' disease", "Atypical pneumonia (Mycoplasma)",
         "Aspiration pneumonitis", "Lung abscess", "Haemophilus influenzae pneumonia", "MRSA pneumonia",
         "Pulmonary tuberculosis", "Pneumonia, likely bacterial", "Klebsiella pneumoniae infection"],
    ),
    "viral": (
        ["Varicella", "Influenza", "Viral", "RSV"],
        ["Viral pneumonia", "Varicella-zoster pneumonia", "Influenza A pneumonia", "Viral pneumonitis",
         "Respiratory syncytial virus infection", "CMV pneumonitis", "Chickenpox pneumonia"],
    ),
    "fungal": (
        ["Pneumocystis", "Aspergillosis"],
        ["PJP (Pneumocystis jirovecii pneumonia)", "PCP", "Pneumocystis carinii pneumonia", "Fungal pneumonia",
         "HIV-associated Pneumocystis pneumonia", "Invasive aspergillosis"],
    ),
    "covid-19": (
        ["COVID-19", "COVID-19, ARDS", "SARS-CoV-2"],
        ["COVID-19 pneumonia", "SARS-CoV-2 infection", "Coronavirus disease 2019", "COVID-19 viral pneumonia",
         "ARDS secondary to COVID-19", "Novel coronavirus pneumonia"],
    ),
    "other": (
        ["ARDS", "Lipoid"],
        ["Acute respiratory distress syndrome", "Lipoid pneumonia", "Pulmonary oedema", "Congestive heart failure",
         "Lung cancer", "Pulmonary embolism", "COPD exacerbation", "Organizing pneumonia"],
    ),
    "normal": (
        ["No Finding", "Normal"],
        ["No acute cardiopulmonary abnormality", "Normal chest radiograph", "Healthy", "No findings",
         "Unremarkable study"],
    ),
    "unspecified": (
        ["Pneumonia"],
        ["Community-acquired pneumonia", "CAP", "Pneumonia", "Lower respiratory tract infection",
         "Right lower lobe pneumonia", "Pneumonia with pleural effusion", "Bacterial or viral pneumonia",
         "Pneumonia (bacterial vs viral)", "Viral/bacterial pneumonia", "COVID-19 or bacterial pneumonia",
         "Pneumonia or pulmonary oedema", "Either Pneumocystis or viral pneumonia"],
    ),
}
CASES = [(text, cls) for cls, (labels, phrasings) in TABLES.items() for text in labels + phrasings]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_every_class_reads_its_labels_and_phrasings(text, expected):
    assert etiology_class(text) == expected


@pytest.mark.parametrize("text", ["", "unknown", "Drug overdose", "Anemia", "Hypertension", "Abnormal gait"])
def test_text_naming_nothing_the_vocabulary_knows_reads_none(text):
    assert etiology_class(text) is None


@pytest.mark.parametrize(
    "hedge", ["Bacterial or viral pneumonia", "Viral vs bacterial", "Pneumocystis or viral pneumonia",
              "Possible bacterial or COVID-19 pneumonia"],
)
def test_a_hedge_is_unspecified_not_its_first_named_class(hedge):
    reading = classify(hedge)
    assert reading.reading == "unspecified" and reading.hedged


def test_aspiration_pneumonia_is_bacterial_and_a_named_organism_decides():
    assert etiology_class("Aspiration pneumonia") == "bacterial"
    assert etiology_class("ARDS due to bacterial pneumonia") == "bacterial"  # infectious before non-infectious
    assert classify("Mycoplasma bacterial pneumonia").pathogen == "mycoplasma"
    assert pathogen("Influenza with secondary Staphylococcus aureus pneumonia") == "influenza virus"


def test_hiv_history_does_not_read_viral():
    assert not names_a_cause("History of HIV, loss of viral suppression, CD4 count 50.")
    assert not names_a_cause("Human Immunodeficiency Virus (HIV) infection on antiretroviral therapy.")
    assert names_a_cause("Viral infection suspected.")


def test_background_conditions_are_not_label_terms_in_notes():
    # A drafted "COPD exacerbation" is a non-infectious answer, but COPD in a note is history, kept by the masker.
    assert etiology_class("COPD exacerbation") == "other"
    assert not names_a_cause("Known COPD and heart failure; sister had lung cancer.")
    assert [m.reading for m in mentions("Known COPD.", include_background=True)] == ["other"]


def test_every_non_infectious_term_names_its_condition():
    # "other" is a bucket: without a condition per term, COPD would read as the same answer as lipoid pneumonia.
    other_terms = [term for term in TERMS if term.reading == "other"]
    assert other_terms and all(term.condition for term in other_terms)
    assert classify("Laryngeal carcinoma").condition == "cancer"
    assert classify("Lipoid pneumonia from mineral oil").condition == "lipoid pneumonia"
    assert classify("ARDS with COPD").condition == "ARDS"  # a named disease before a background condition


def test_reveals_finds_the_label_in_a_statement():
    assert reveals("SARS-CoV-2 RNA was detected.", "COVID-19") == ["SARS-CoV-2"]
    assert reveals("Viral pneumonia suspected", "COVID-19") == ["Viral"]
    assert reveals("Influenza A/B RT-PCR were negative", "COVID-19") == []  # another virus
    assert reveals("CXR: Normal", "No Finding") == ["CXR: Normal"]
    assert reveals("Heart failure in 2015", "Lipoid") == []  # another non-infectious disease says nothing
    assert reveals("Findings of lipoid pneumonia", "Lipoid") == ["lipoid"]
    assert reveals("Acute respiratory distress syndrome on day 2", "ARDS") == ["Acute respiratory distress syndrome"]
    assert reveals("Temperature 38.9 Cel", "Streptococcus") == []


def test_the_masker_and_the_scorers_share_the_vocabulary():
    shared = importlib.import_module("medconsult.clinical.etiology")
    masking = importlib.import_module("medconsult.importers.masking")
    scorers = importlib.import_module("medconsult.evals.scorers")
    assert masking.names_a_cause is shared.names_a_cause
    assert scorers.etiology_class is shared.etiology_class and scorers.classify is shared.classify
    assert not hasattr(masking, "LABEL_TERMS") and not hasattr(scorers, "_PATHOGENS")
