"""Medication safety review: name matching, each rule family (with negatives), and the tables' integrity."""

from __future__ import annotations

import json

import pytest

from conftest import SYNTHEA
from medconsult.safety import (
    PlannedDrug,
    RecordItem,
    SafetyContext,
    SafetyFinding,
    parse_drugs,
    review_plan,
    rules,
)
from medconsult.safety import drugs as vocab

# Texts as Synthea writes them: the drug allergy module (RxNorm display + SNOMED reactions), the bundles in
# shared/data (MedicationRequest texts, environmental allergies).
PENICILLIN_ALLERGY = RecordItem(
    text="Penicillin V", resource="AllergyIntolerance/pen", criticality="low", reactions=["Wheal (finding)"]
)
PENICILLIN_ANAPHYLAXIS = RecordItem(
    text="Penicillin V", resource="AllergyIntolerance/pen-ana", criticality="low",
    reactions=["Anaphylaxis (disorder)"],
)
SULFA_ALLERGY = RecordItem(text="Sulfamethoxazole / Trimethoprim", resource="AllergyIntolerance/sulfa")
GRASS_POLLEN = RecordItem(
    text="Allergy to grass pollen", resource="AllergyIntolerance/grass", criticality="low"
)
WARFARIN = RecordItem(text="Warfarin Sodium 5 MG Oral Tablet", resource="MedicationRequest/9")
SIMVASTATIN = RecordItem(text="Simvistatin 10 MG", resource="MedicationRequest/11")


def review(*names: str, **context: object) -> list[SafetyFinding]:
    return review_plan([PlannedDrug(name=n) for n in names], SafetyContext(**context))


def only(findings: list[SafetyFinding], rule: str, drug: str | None = None) -> list[SafetyFinding]:
    return [f for f in findings if f.rule == rule and (drug is None or f.drug == drug)]


# ---- name matching ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Penicillin V Potassium 250 MG Oral Tablet", ["penicillin"]),
        ("Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", ["amoxicillin-clavulanate"]),
        ("amoxicillin/clavulanic acid 875 mg", ["amoxicillin-clavulanate"]),
        ("amoxicillin-clavulanate", ["amoxicillin-clavulanate"]),
        ("Augmentin 875 mg BID", ["amoxicillin-clavulanate"]),
        ("piperacillin-tazobactam 4.5 g IV q6h", ["piperacillin-tazobactam"]),
        ("Zosyn", ["piperacillin-tazobactam"]),
        ("ampicillin-sulbactam 3 g IV", ["ampicillin-sulbactam"]),
        ("TMP-SMX DS 1 tab BID", ["sulfamethoxazole-trimethoprim"]),
        ("co-trimoxazole", ["sulfamethoxazole-trimethoprim"]),
        ("Bactrim DS", ["sulfamethoxazole-trimethoprim"]),
        ("Sulfamethoxazole / Trimethoprim", ["sulfamethoxazole-trimethoprim"]),
        ("trimethoprim 100 mg", ["trimethoprim"]),
        ("warfarin sodium 5 MG Oral Tablet", ["warfarin"]),
        ("Coumadin 5 mg", ["warfarin"]),
        ("Simvastatin 20 MG Oral Tablet", ["simvastatin"]),
        ("Simvistatin 10 MG", ["simvastatin"]),
        ("Zithromax Z-Pak", ["azithromycin"]),
        ("Levaquin 750 mg daily", ["levofloxacin"]),
        ("Tamiflu 75 mg BID", ["oseltamivir"]),
        ("Paxlovid", ["nirmatrelvir-ritonavir"]),
        ("nirmatrelvir 300 mg with ritonavir 100 mg", ["nirmatrelvir-ritonavir"]),
        ("Rocephin 1 g IV", ["ceftriaxone"]),
        ("Ceftriaxone 1 g IV daily plus azithromycin 500 mg PO daily", ["ceftriaxone", "azithromycin"]),
        ("Lasix 40mg", ["furosemide"]),
        ("24 HR metoprolol succinate 100 MG Extended Release Oral Tablet [Toprol]", ["metoprolol"]),
        ("Allergy to grass pollen", []),
        ("Shellfish allergy", []),
        ("Supplemental oxygen to SpO2 92-96%", []),
        ("Atorvastatin calcium 40 mg", ["atorvastatin"]),  # a salt name is not a chelating cation
    ],
)
def test_parse_drugs(text: str, expected: list[str]) -> None:
    assert parse_drugs(text) == expected


def test_allergy_class_words_are_recognised() -> None:
    assert vocab.mentioned_classes("sulfa drugs; beta-lactam antibiotics; Penicillins") == {
        vocab.SULFONAMIDE_ANTIBIOTICS, vocab.BETA_LACTAMS, vocab.PENICILLINS,
    }
    assert vocab.mentioned_classes("Allergy to grass pollen") == set()


@pytest.mark.skipif(not SYNTHEA.is_dir(), reason="shared Synthea bundles not present")
def test_synthea_medication_texts_resolve() -> None:
    texts = set()
    for path in SYNTHEA.glob("*.json"):
        for entry in json.loads(path.read_text()).get("entry", []):
            resource = entry["resource"]
            if resource["resourceType"] == "MedicationRequest":
                texts.add(resource["medicationCodeableConcept"]["text"])
    resolved = {name for text in texts for name in parse_drugs(text)}
    assert {
        "warfarin",
        "simvastatin",
        "amoxicillin-clavulanate",
        "penicillin",
        "digoxin",
        "verapamil",
    } <= resolved


# ---- allergy and cross-reactivity (headline case) --------------------------------------------------------------
def test_penicillin_allergy_blocks_amoxicillin() -> None:
    findings = review("Amoxicillin 1 g PO TID", allergies=[PENICILLIN_ALLERGY])
    [finding] = only(findings, "allergy")
    assert finding.severity == "block"
    assert finding.drug == "amoxicillin"
    assert finding.evidence == ["AllergyIntolerance/pen"]
    assert "Penicillin V" in finding.message and "penicillins" in finding.message
    assert "practice parameter" in finding.source


@pytest.mark.parametrize(
    "allergy_text", ["Penicillin V", "penicillin", "Allergy to penicillin", "Penicillins"]
)
@pytest.mark.parametrize(
    "plan", ["amoxicillin", "Augmentin", "ampicillin-sulbactam", "piperacillin-tazobactam", "Pen VK 500 mg"]
)
def test_penicillin_allergy_blocks_every_penicillin(allergy_text: str, plan: str) -> None:
    findings = review(plan, allergies=[RecordItem(text=allergy_text)])
    assert [f.severity for f in only(findings, "allergy")] == ["block"]


def test_penicillin_allergy_warns_for_ceftriaxone() -> None:
    findings = review("Ceftriaxone 1 g IV daily", allergies=[PENICILLIN_ALLERGY])
    assert only(findings, "allergy") == []
    [finding] = only(findings, "cross-reactivity")
    assert (finding.severity, finding.drug, finding.evidence) == (
        "warn",
        "ceftriaxone",
        ["AllergyIntolerance/pen"],
    )
    assert "2%" in finding.message


@pytest.mark.parametrize(
    "allergy",
    [
        PENICILLIN_ANAPHYLAXIS,
        RecordItem(text="Penicillin V", criticality="high"),
        RecordItem(text="penicillin", reactions=["Allergic angioedema (disorder)"]),
        RecordItem(text="penicillin", reactions=["Stevens-Johnson syndrome"]),
    ],
)
def test_severe_penicillin_allergy_blocks_ceftriaxone(allergy: RecordItem) -> None:
    [finding] = only(review("ceftriaxone", allergies=[allergy]), "cross-reactivity")
    assert finding.severity == "block"


def test_penicillin_allergy_carbapenem_warns() -> None:
    [finding] = only(review("meropenem", allergies=[PENICILLIN_ALLERGY]), "cross-reactivity")
    assert finding.severity == "warn" and "under 1%" in finding.message


@pytest.mark.parametrize("plan", ["levofloxacin", "azithromycin", "doxycycline", "aztreonam", "vancomycin"])
def test_penicillin_allergy_does_not_flag_other_classes(plan: str) -> None:
    findings = review(plan, allergies=[PENICILLIN_ANAPHYLAXIS], egfr=90)
    assert only(findings, "allergy") == [] and only(findings, "cross-reactivity") == []


@pytest.mark.parametrize("allergy_text", ["Allergy to grass pollen", "Shellfish allergy", "Latex allergy"])
def test_unrelated_allergy_is_not_a_drug_allergy(allergy_text: str) -> None:
    findings = review("amoxicillin", "ceftriaxone", allergies=[RecordItem(text=allergy_text)], egfr=90)
    assert only(findings, "allergy") == [] and only(findings, "cross-reactivity") == []


def test_sulfonamide_antibiotic_allergy() -> None:
    assert [f.severity for f in only(review("Bactrim DS", allergies=[SULFA_ALLERGY]), "allergy")] == ["block"]
    sulfa_words = [RecordItem(text="sulfa drugs")]
    assert [f.severity for f in only(review("TMP-SMX", allergies=sulfa_words), "allergy")] == ["block"]
    # Non-antibiotic sulfonamides do not cross-react (Strom et al., NEJM 2003), nor does trimethoprim alone.
    assert only(review("furosemide", "trimethoprim", allergies=sulfa_words, egfr=90), "allergy") == []


def test_one_cephalosporin_allergy_warns_for_the_others() -> None:
    allergy = [RecordItem(text="Ceftriaxone", resource="AllergyIntolerance/ceph")]
    same = review("ceftriaxone", allergies=allergy)
    assert [f.severity for f in only(same, "allergy")] == ["block"] and only(same, "cross-reactivity") == []
    findings = review("cefepime", allergies=allergy, egfr=90)
    assert only(findings, "allergy") == []
    assert [f.severity for f in only(findings, "cross-reactivity")] == ["warn"]
    assert review("amoxicillin", allergies=allergy, egfr=90) == []


def test_named_class_allergy_blocks_the_class() -> None:
    findings = review("cefepime", allergies=[RecordItem(text="Cephalosporins")], egfr=90)
    assert [f.severity for f in only(findings, "allergy")] == ["block"]


def test_record_gap_is_one_warning_and_skips_allergy_rules() -> None:
    findings = review(
        "amoxicillin", "ceftriaxone", allergies_known=False, allergies=[PENICILLIN_ALLERGY], egfr=90
    )
    [gap] = only(findings, "record-gap")
    assert gap.severity == "warn"
    assert "allergy record unavailable" in gap.message.lower() and "not checked" in gap.message
    assert only(findings, "allergy") == [] and only(findings, "cross-reactivity") == []
    assert only(review("amoxicillin", egfr=90), "record-gap") == []


# ---- interactions ----------------------------------------------------------------------------------------------
def test_warfarin_with_azithromycin_warns_citing_the_medication_request() -> None:
    [finding] = only(review("azithromycin 500 mg", medications=[WARFARIN]), "interaction")
    assert (finding.severity, finding.drug, finding.evidence) == (
        "warn",
        "azithromycin",
        ["MedicationRequest/9"],
    )
    assert "INR" in finding.message and "warfarin" in finding.source.lower()


@pytest.mark.parametrize("plan", ["Bactrim", "metronidazole", "levofloxacin", "clarithromycin"])
def test_warfarin_interacting_antibiotics(plan: str) -> None:
    assert only(review(plan, medications=[WARFARIN], egfr=90), "interaction")


def test_warfarin_with_ceftriaxone_is_not_flagged() -> None:
    assert review("ceftriaxone", medications=[WARFARIN]) == []


def test_amiodarone_with_levofloxacin_is_a_qt_block() -> None:
    amiodarone = RecordItem(text="Amiodarone 200 mg", resource="MedicationRequest/10")
    [finding] = only(review("levofloxacin", medications=[amiodarone], egfr=90), "interaction")
    assert (finding.severity, finding.evidence) == ("block", ["MedicationRequest/10"])
    assert "QT" in finding.message and "CredibleMeds" in finding.source


def test_azithromycin_with_citalopram_is_a_qt_warning() -> None:
    [finding] = only(review("azithromycin", medications=[RecordItem(text="Celexa 20 mg")]), "interaction")
    assert finding.severity == "warn" and "QT" in finding.message


def test_clarithromycin_with_simvastatin_blocks_but_azithromycin_does_not() -> None:
    [finding] = only(review("clarithromycin", medications=[SIMVASTATIN], egfr=90), "interaction")
    assert (finding.severity, finding.evidence) == ("block", ["MedicationRequest/11"])
    assert only(review("azithromycin", medications=[SIMVASTATIN]), "interaction") == []


@pytest.mark.parametrize(
    ("plan", "medication", "severity"),
    [
        ("Paxlovid", "amiodarone", "block"),
        ("Paxlovid", "simvastatin", "block"),
        ("Paxlovid", "Xarelto 20 mg", "block"),
        ("Paxlovid", "apixaban 5 mg BID", "warn"),
        ("Paxlovid", "tacrolimus", "warn"),
        ("doxycycline", "ferrous sulfate 325 MG Oral Tablet", "warn"),
        ("levofloxacin", "calcium carbonate", "warn"),
        ("Bactrim", "lisinopril 10 mg", "warn"),
        ("Bactrim", "spironolactone", "warn"),
        ("Bactrim", "methotrexate 15 mg weekly", "block"),
        ("clarithromycin", "Digoxin 0.125 MG Oral Tablet", "warn"),
        ("linezolid", "Fluoxetine 25MG", "warn"),
    ],
)
def test_interaction_table(plan: str, medication: str, severity: str) -> None:
    findings = only(review(plan, medications=[RecordItem(text=medication)], egfr=90), "interaction")
    assert [f.severity for f in findings] == [severity]


def test_interactions_between_planned_drugs_of_one_regimen_only() -> None:
    same = [
        PlannedDrug(name="azithromycin", regimen_id="a"),
        PlannedDrug(name="levofloxacin", regimen_id="a"),
    ]
    assert [f.severity for f in only(review_plan(same, SafetyContext(egfr=90)), "interaction")] == ["warn"]
    alternatives = [
        PlannedDrug(name="azithromycin", regimen_id="a"),
        PlannedDrug(name="levofloxacin", regimen_id="b"),
    ]
    assert review_plan(alternatives, SafetyContext(egfr=90)) == []


@pytest.mark.parametrize(
    ("qtc", "severity"), [(510, ["block"]), (500, ["block"]), (480, ["warn"]), (450, [])]
)
def test_qtc_thresholds(qtc: float, severity: list[str]) -> None:
    assert [f.severity for f in only(review("azithromycin", qtc_ms=qtc), "interaction")] == severity


def test_qtc_ignores_drugs_without_qt_risk() -> None:
    assert review("ceftriaxone", qtc_ms=520) == []


# ---- renal -----------------------------------------------------------------------------------------------------
def test_levofloxacin_with_egfr_25_cites_the_egfr() -> None:
    [finding] = only(review("levofloxacin", egfr=25, egfr_resource="Observation/egfr"), "renal")
    assert finding.severity == "warn" and finding.evidence == ["Observation/egfr"]
    assert "eGFR 25" in finding.message and "every 48 h" in finding.message
    assert "Levaquin" in finding.source


def test_renal_bands() -> None:
    assert only(review("levofloxacin", egfr=60), "renal") == []
    assert "10-19" in only(review("levofloxacin", egfr=15), "renal")[0].message
    assert [f.severity for f in only(review("Bactrim", egfr=25), "renal")] == ["warn"]
    assert [f.severity for f in only(review("Bactrim", egfr=10), "renal")] == ["block"]
    assert [f.severity for f in only(review("nitrofurantoin", egfr=25), "renal")] == ["block"]
    assert "30 mg twice daily" in only(review("Tamiflu", egfr=45), "renal")[0].message
    assert "once daily" in only(review("Paxlovid", egfr=25), "renal")[0].message


@pytest.mark.parametrize("plan", ["ceftriaxone", "azithromycin", "doxycycline", "remdesivir", "moxifloxacin"])
def test_no_renal_adjustment_drugs(plan: str) -> None:
    assert only(review(plan, egfr=12), "renal") == []
    assert only(review(plan), "renal") == []


def test_unknown_renal_function_warns_for_renally_dosed_drugs() -> None:
    [finding] = only(review("levofloxacin"), "renal")
    assert finding.severity == "warn" and finding.message.startswith("Renal function unknown")


# ---- pregnancy -------------------------------------------------------------------------------------------------
def test_pregnancy_rules_apply_only_when_pregnant() -> None:
    pregnant = {"pregnant": True, "pregnancy_resource": "Observation/preg", "egfr": 90}
    [fq] = only(review("levofloxacin", **pregnant), "pregnancy")
    assert fq.severity == "warn" and fq.evidence == ["Observation/preg"]
    assert [f.severity for f in only(review("ribavirin", **pregnant), "pregnancy")] == ["block"]
    assert [f.severity for f in only(review("lisinopril", **pregnant), "pregnancy")] == ["block"]
    assert only(review("ceftriaxone", "azithromycin", **pregnant), "pregnancy") == []
    assert only(review("doxycycline", pregnant=None, age_years=30), "pregnancy") == []
    assert only(review("doxycycline", pregnant=False), "pregnancy") == []


# ---- duplicates and unknown drugs ------------------------------------------------------------------------------
def test_two_macrolides_in_one_regimen() -> None:
    [finding] = only(review("azithromycin", "clarithromycin", egfr=90), "duplicate")
    assert finding.severity == "warn" and "macrolides" in finding.message


def test_two_beta_lactams_in_one_regimen() -> None:
    assert only(review("ceftriaxone", "ampicillin-sulbactam", egfr=90), "duplicate")
    assert only(review("ceftriaxone", "azithromycin"), "duplicate") == []


def test_planned_drug_already_taken() -> None:
    current = RecordItem(
        text="Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet", resource="MedicationRequest/3"
    )
    [finding] = only(review("Augmentin 875 mg", medications=[current], egfr=90), "duplicate")
    assert finding.evidence == ["MedicationRequest/3"] and "same drug" in finding.message


def test_unknown_drug_is_reported_not_passed() -> None:
    findings = review("Fooamycin 1 g IV", "levofloxacin", egfr=25)
    [unknown] = only(findings, "unknown-drug")
    assert (unknown.severity, unknown.drug) == ("warn", "Fooamycin 1 g IV")
    assert only(findings, "renal", "levofloxacin")  # the known drug is still checked


def test_clean_plan_has_no_findings() -> None:
    context = {"allergies": [GRASS_POLLEN], "medications": [RecordItem(text="Lasix 40mg")], "egfr": 85}
    assert review("Ceftriaxone 1 g IV daily", "Azithromycin 500 mg PO daily", **context) == []


def test_blocks_come_first_and_every_finding_has_a_source() -> None:
    findings = review("Fooamycin", "amoxicillin", "levofloxacin", allergies=[PENICILLIN_ALLERGY], egfr=25)
    severities = [f.severity for f in findings]
    assert severities == sorted(severities, key=lambda s: s != "block") and severities[0] == "block"
    assert all(f.source and f.message for f in findings)


# ---- tables ----------------------------------------------------------------------------------------------------
def _known_groups() -> set[str]:
    return {g for d in vocab.VOCABULARY for g in d.groups}


def _known_names() -> set[str]:
    return {d.name for d in vocab.VOCABULARY}


def test_table_keys_name_known_drugs_or_groups() -> None:
    known = _known_names() | _known_groups()
    for row in rules.INTERACTIONS:
        assert row.planned <= known and row.other <= known, row
    assert set(rules.RENAL_RULES) | set(rules.NO_RENAL_ADJUSTMENT) <= _known_names()
    assert set(rules.PREGNANCY_RULES) <= known
    assert set(rules.RENAL_RULES).isdisjoint(rules.NO_RENAL_ADJUSTMENT)
    assert set(vocab.COMBINATIONS) <= _known_names()


def test_vocabulary_phrases_are_unambiguous() -> None:
    seen: dict[tuple[str, ...], str] = {}
    for d in vocab.VOCABULARY:
        for phrase in (d.name, *d.synonyms):
            key = vocab.words(phrase)
            assert seen.setdefault(key, d.name) == d.name, f"{phrase!r} names {seen[key]} and {d.name}"
            assert parse_drugs(phrase) == [d.name], phrase


def test_renal_bands_run_from_least_to_most_restrictive() -> None:
    for name, rule in rules.RENAL_RULES.items():
        limits = [b.limit for b in rule.bands]
        assert limits == sorted(limits, reverse=True), name
