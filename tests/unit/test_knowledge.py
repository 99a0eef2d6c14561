"""The treatment knowledge base: every data file validates, retrieval follows severity, renal bands apply."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from medconsult.knowledge import (
    DEFAULT_PATH,
    Condition,
    KnowledgeBase,
    KnowledgeError,
    Regimen,
    Severity,
    json_schema,
    load_knowledge,
)

CONDITION_FILES = sorted(p for p in DEFAULT_PATH.glob("*.yaml") if not p.name.startswith("_"))
EXPECTED_KEYS = {"cap", "aspiration", "legionella", "influenza", "covid19", "pcp", "varicella_pneumonia",
                 "paediatric_cap", "paediatric_viral_lrti"}


@pytest.fixture(scope="module")
def kb() -> KnowledgeBase:
    return load_knowledge()


def _ids(kb: KnowledgeBase, key: str, severity: Severity | None) -> list[str]:
    return [regimen.id for regimen in kb.regimens_for(key, severity)]


def _settings(kb: KnowledgeBase, key: str, severity: Severity | None) -> set[str]:
    return {s for regimen in kb.regimens_for(key, severity) for s in regimen.settings}


def _all_regimens(kb: KnowledgeBase) -> list[Regimen]:
    return [regimen for condition in kb.conditions.values() for regimen in condition.regimens]


# ---- the data ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("file", CONDITION_FILES, ids=lambda p: p.name)
def test_every_condition_file_validates_on_its_own(file: Path):
    condition = Condition.model_validate(yaml.safe_load(file.read_text()))
    assert condition.key == file.stem
    assert condition.regimens


def test_the_packaged_knowledge_base_loads_with_its_manifest(kb: KnowledgeBase):
    assert set(kb.conditions) == EXPECTED_KEYS
    assert kb.version == kb.manifest.changelog[0].version
    assert all(c.version and c.reviewed for c in kb.conditions.values())


def test_regimen_ids_are_unique_across_the_knowledge_base(kb: KnowledgeBase):
    ids = [regimen.id for regimen in _all_regimens(kb)]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 35


def test_every_regimen_cites_a_source_with_title_and_organisation(kb: KnowledgeBase):
    for regimen in _all_regimens(kb):
        assert regimen.sources, regimen.id
        for source in regimen.sources:
            assert source.title.strip() and source.organisation.strip(), regimen.id
            assert source.year or source.kind == "label" or source.verify, regimen.id


def test_every_severity_rule_cites_its_source(kb: KnowledgeBase):
    for condition in kb.conditions.values():
        for rule in kb.severity_rules(condition.key):
            assert rule.sources and all(s.title for s in rule.sources), condition.key


def test_every_regimen_setting_is_reachable_by_a_severity_rule(kb: KnowledgeBase):
    for condition in kb.conditions.values():
        reachable = {s for rule in kb.severity_rules(condition.key) for s in rule.settings}
        for regimen in condition.regimens:
            assert set(regimen.settings) <= reachable, regimen.id


def test_drug_names_are_lower_case_generic_names(kb: KnowledgeBase):
    names = kb.drug_names()
    assert names == sorted(set(names))
    assert all(name == name.lower() for name in names)
    assert {
        "amoxicillin",
        "oseltamivir",
        "dexamethasone",
        "trimethoprim-sulfamethoxazole",
        "acyclovir",
    } <= set(names)


def test_the_cap_file_holds_the_guideline_doses(kb: KnowledgeBase):
    amoxicillin = kb.regimen("cap.outpatient.healthy.amoxicillin").drugs()[0]
    assert (amoxicillin.dose, amoxicillin.frequency) == ("1 g", "three times daily")
    ceftriaxone = next(
        d for d in kb.regimen("cap.ward.beta-lactam-macrolide").drugs() if d.name == "ceftriaxone"
    )
    assert ceftriaxone.dose == "1-2 g"
    assert "25%" in kb.regimen("cap.outpatient.healthy.macrolide").severity.text


def test_allergy_classes_follow_the_drugs(kb: KnowledgeBase):
    assert "beta-lactam" in kb.regimen("cap.ward.beta-lactam-macrolide").allergy_classes()
    assert "beta-lactam" not in kb.regimen("cap.ward.fluoroquinolone").allergy_classes()
    assert "sulfonamide" in kb.regimen("pcp.severe.tmp-smx-iv").allergy_classes()


def test_json_schema_describes_a_condition_file():
    schema = json_schema()
    assert {"key", "regimens", "severity_rules", "version", "reviewed"} <= set(schema["properties"])
    assert schema["additionalProperties"] is False


# ---- matching ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("community-acquired pneumonia", "cap"),
        ("Pneumonia", "cap"),
        ("bacterial pneumonia", "cap"),
        ("Lobar Pneumonia", "cap"),
        ("cap", "cap"),
        ("233604007", "cap"),
        ("J18.9", "cap"),
        ("j189", "cap"),
        ("http://snomed.info/sct|385093006", "cap"),
        ("COVID-19 pneumonia", "covid19"),
        ("SARS-CoV-2", "covid19"),
        ("840539006", "covid19"),
        ("U07.1", "covid19"),
        ("aspiration pneumonia", "aspiration"),
        ("J69.0", "aspiration"),
        ("Legionnaires' disease", "legionella"),
        ("Mycoplasma pneumonia", "legionella"),
        ("influenza", "influenza"),
        ("6142004", "influenza"),
        ("J11.1", "influenza"),
        ("PJP", "pcp"),
        ("Pneumocystis jirovecii pneumonia", "pcp"),
        ("B59", "pcp"),
        ("chickenpox pneumonia", "varicella_pneumonia"),
        ("B01.2", "varicella_pneumonia"),
    ],
)
def test_match_condition_by_name_synonym_or_code(kb: KnowledgeBase, text: str, key: str):
    condition = kb.match_condition(text)
    assert condition is not None and condition.key == key


@pytest.mark.parametrize("text", ["pulmonary embolism", "", "J18", "viral"])
def test_unknown_terms_do_not_match(kb: KnowledgeBase, text: str):
    assert kb.match_condition(text) is None


# ---- retrieval by severity --------------------------------------------------------------------------------


def test_cap_with_curb65_0_gets_outpatient_regimens_only(kb: KnowledgeBase):
    regimens = kb.regimens_for("cap", Severity(curb65=0))
    assert {s for r in regimens for s in r.settings} == {"outpatient"}
    assert "cap.outpatient.healthy.amoxicillin" in [r.id for r in regimens]
    assert all(r.severity_determined for r in regimens)
    assert "CURB-65" in regimens[0].selection_reason


def test_cap_with_curb65_3_gets_ward_and_icu_regimens(kb: KnowledgeBase):
    assert _settings(kb, "cap", Severity(curb65=3)) == {"ward", "icu"}
    assert "cap.icu.beta-lactam-macrolide" in _ids(kb, "cap", Severity(curb65=3))


def test_intensive_care_known_not_needed_leaves_the_ward(kb: KnowledgeBase):
    severity = Severity(curb65=3, icu=False)
    assert kb.settings_for("cap", severity).settings == ("ward",)
    assert not any(i.startswith("cap.icu.") for i in _ids(kb, "cap", severity))


def test_severe_cap_criteria_point_to_intensive_care(kb: KnowledgeBase):
    assert kb.settings_for("cap", Severity(ats_idsa_major=1)).settings == ("icu",)
    assert kb.settings_for("cap", Severity(ats_idsa_minor=3)).settings == ("icu",)
    assert not kb.settings_for("cap", Severity(ats_idsa_major=0)).determined


def test_the_more_severe_score_decides_when_scores_disagree(kb: KnowledgeBase):
    assert kb.settings_for("cap", Severity(curb65=0, psi_class="IV")).settings == ("ward",)


def test_curb65_2_offers_outpatient_or_ward(kb: KnowledgeBase):
    assert kb.settings_for("cap", Severity(curb65=2)).settings == ("outpatient", "ward")


def test_unknown_severity_returns_every_setting_flagged(kb: KnowledgeBase):
    for severity in (None, Severity()):
        regimens = kb.regimens_for("cap", severity)
        assert {s for r in regimens for s in r.settings} == {"outpatient", "ward", "icu"}
        assert len(regimens) == len(kb.condition("cap").regimens)
        assert not any(r.severity_determined for r in regimens)
        assert "undetermined" in regimens[0].selection_reason


def test_known_comorbidities_pick_the_matching_outpatient_regimens(kb: KnowledgeBase):
    healthy = _ids(kb, "cap", Severity(curb65=1, comorbidities=False))
    assert healthy and all(".healthy." in i for i in healthy)
    comorbid = _ids(kb, "cap", Severity(curb65=1, comorbidities=True))
    assert comorbid and all(".comorbid." in i for i in comorbid)


def test_mrsa_cover_is_withheld_when_risk_factors_are_known_absent(kb: KnowledgeBase):
    assert "cap.hospital.mrsa-cover" in _ids(kb, "cap", Severity(hospitalised=True))
    assert "cap.hospital.mrsa-cover" not in _ids(kb, "cap", Severity(hospitalised=True, mrsa_risk=False))


def test_aspiration_inherits_the_cap_severity_rules(kb: KnowledgeBase):
    assert kb.severity_rules("aspiration") == kb.severity_rules("cap")
    assert _settings(kb, "aspiration", Severity(curb65=4)) <= {"ward", "icu"}


def test_no_regimen_for_the_chosen_setting_falls_back_to_all_flagged(kb: KnowledgeBase):
    regimens = kb.regimens_for("aspiration", Severity(curb65=0))  # aspiration holds inpatient regimens only
    assert regimens and not any(r.severity_determined for r in regimens)


def test_covid_dexamethasone_only_for_patients_needing_oxygen(kb: KnowledgeBase):
    without = _ids(kb, "covid19", Severity(hospitalised=True, needs_oxygen=False, high_risk=True))
    assert "covid19.ward.no-oxygen.remdesivir" in without
    assert not any("dexamethasone" in i for i in without)
    with_oxygen = _ids(kb, "covid19", Severity(hospitalised=True, needs_oxygen=True))
    assert "covid19.ward.oxygen.dexamethasone-remdesivir" in with_oxygen
    assert "covid19.hospital.thromboprophylaxis" in with_oxygen


def test_covid_outpatient_antivirals_are_for_high_risk_patients(kb: KnowledgeBase):
    high_risk = _ids(kb, "covid19", Severity(hospitalised=False, needs_oxygen=False, high_risk=True))
    assert high_risk[0] == "covid19.outpatient.nirmatrelvir-ritonavir"
    low_risk = kb.regimens_for("covid19", Severity(hospitalised=False, needs_oxygen=False, high_risk=False))
    assert all(not r.severity_determined for r in low_risk)  # nothing fits: all returned, flagged


def test_pcp_severity_follows_pao2_and_gradient(kb: KnowledgeBase):
    severe = _ids(kb, "pcp", Severity(pao2_mmhg=62))
    assert {"pcp.severe.tmp-smx-iv", "pcp.adjunctive.prednisone"} <= set(severe)
    assert not any(".mild." in i for i in severe)
    mild = _ids(kb, "pcp", Severity(pao2_mmhg=80, aa_gradient_mmhg=20))
    assert "pcp.mild.tmp-smx-oral" in mild and "pcp.adjunctive.prednisone" not in mild
    assert "pcp.adjunctive.prednisone" in _ids(kb, "pcp", Severity(pao2_mmhg=80, aa_gradient_mmhg=40))


def test_hospitalised_influenza_gets_oseltamivir(kb: KnowledgeBase):
    assert _ids(kb, "influenza", Severity(hospitalised=True)) == ["influenza.hospital.oseltamivir"]


def test_retrieval_of_an_unknown_condition_raises(kb: KnowledgeBase):
    with pytest.raises(KeyError, match="no condition"):
        kb.regimens_for("sepsis", None)


# ---- renal adjustment -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kidney_function", "dose"),
    [
        (45, "30 mg twice daily"),
        (60, "30 mg twice daily"),
        (30, "30 mg once daily"),
        (20, "30 mg once daily"),
    ],
)
def test_oseltamivir_renal_bands(kb: KnowledgeBase, kidney_function: float, dose: str):
    band = kb.renal_adjustment("oseltamivir", kidney_function)
    assert band is not None and band.dose.startswith(dose)
    assert band.measure == "crcl" and band.source.kind == "label"


def test_no_band_means_the_usual_dose(kb: KnowledgeBase):
    assert kb.renal_adjustment("oseltamivir", 90) is None
    assert kb.renal_adjustment("ceftriaxone", 10) is None
    assert kb.renal_adjustment("not-a-drug", 10) is None


def test_renal_bands_by_alias_and_avoid(kb: KnowledgeBase):
    assert kb.renal_adjustment("Paxlovid", 45).dose.startswith("nirmatrelvir 150 mg")
    cotrimoxazole = kb.renal_adjustment("co-trimoxazole", 10)
    assert cotrimoxazole.avoid and cotrimoxazole.dose is None
    assert kb.renal_adjustment("co-trimoxazole", 20).dose == "Half the usual regimen"
    assert kb.renal_adjustment("acyclovir", 40).dose == "10 mg/kg every 12 hours"
    assert kb.renal_adjustment("remdesivir", 5).dose.startswith("No dose adjustment")


# ---- malformed data gives clear errors --------------------------------------------------------------------


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    folder = tmp_path / "regimens"
    shutil.copytree(DEFAULT_PATH, folder)
    return folder


def _edit(file: Path, old: str, new: str) -> None:
    text = file.read_text()
    assert old in text, old
    file.write_text(text.replace(old, new, 1))


def test_the_copy_loads_unchanged(copy: Path):
    assert set(load_knowledge(copy).conditions) == EXPECTED_KEYS


def test_a_missing_field_names_file_regimen_and_field(copy: Path):
    _edit(copy / "influenza.yaml", "            dose: 75 mg\n", "")
    with pytest.raises(KnowledgeError) as error:
        load_knowledge(copy)
    message = str(error.value)
    assert "influenza.yaml" in message
    assert "influenza.outpatient.oseltamivir" in message and "dose" in message and "Field required" in message


def test_every_broken_file_is_reported_at_once(copy: Path):
    (copy / "pcp.yaml").write_text("- not a mapping\n")
    _edit(copy / "cap.yaml", "    line: first-line\n", "    line: first line\n")
    with pytest.raises(
        KnowledgeError, match=r"cap\.yaml[\s\S]*line[\s\S]*pcp\.yaml: the top level must be a mapping"
    ):
        load_knowledge(copy)


def test_an_unknown_field_is_rejected(copy: Path):
    _edit(copy / "cap.yaml", "    line: first-line\n", "    line: first-line\n    strength: strong\n")
    with pytest.raises(
        KnowledgeError, match=r"cap\.yaml[\s\S]*strength[\s\S]*Extra inputs are not permitted"
    ):
        load_knowledge(copy)


def test_a_bad_value_is_rejected(copy: Path):
    _edit(copy / "covid19.yaml", 'interval: "[30, 60)"', 'interval: "30-60"')
    with pytest.raises(KnowledgeError, match=r"covid19\.yaml[\s\S]*renal[\s\S]*interval"):
        load_knowledge(copy)


def test_invalid_yaml_is_reported_with_the_file(copy: Path):
    (copy / "pcp.yaml").write_text("key: pcp\nregimens: [unclosed\n")
    with pytest.raises(KnowledgeError, match=r"pcp\.yaml: not valid YAML"):
        load_knowledge(copy)


def test_a_file_must_be_named_after_its_key(copy: Path):
    (copy / "cap.yaml").rename(copy / "pneumonia.yaml")
    with pytest.raises(KnowledgeError, match=r"pneumonia\.yaml: key"):
        load_knowledge(copy)


def test_a_condition_missing_from_the_folder_is_reported(copy: Path):
    (copy / "varicella_pneumonia.yaml").unlink()
    with pytest.raises(KnowledgeError, match="'varicella_pneumonia' has no varicella_pneumonia.yaml"):
        load_knowledge(copy)


def test_a_regimen_id_used_twice_is_reported(copy: Path):
    first_id = "id: aspiration.hospital.beta-lactam-macrolide"
    _edit(copy / "aspiration.yaml", "id: aspiration.ward.fluoroquinolone", first_id)
    with pytest.raises(KnowledgeError, match="duplicate regimen ids"):
        load_knowledge(copy)


def test_conflicting_renal_bands_for_one_drug_are_reported(copy: Path):
    _edit(copy / "aspiration.yaml", "dose: 750 mg every 48 hours", "dose: 500 mg every 48 hours")
    with pytest.raises(KnowledgeError, match="levofloxacin renal bands differ"):
        load_knowledge(copy)


def test_a_term_matching_two_conditions_is_reported(copy: Path):
    _edit(copy / "influenza.yaml", "  - flu\n", "  - flu\n  - lobar pneumonia\n")
    with pytest.raises(KnowledgeError, match="'lobar pneumonia' also matches"):
        load_knowledge(copy)


def test_every_drug_of_the_knowledge_base_is_known_to_the_safety_review():
    """A regimen drug the safety vocabulary does not know would only ever be reported as 'not checked'."""
    from medconsult.safety import parse_drugs

    assert [name for name in load_knowledge().drug_names() if not parse_drugs(name)] == []
