"""The calculator tools against the real FHIR server loaded with the Synthea patients.

Every input a score uses must point to a resource that exists on the server and holds that value; missing inputs
must be listed with a reason; the eGFR must equal the CKD-EPI 2021 equation (Inker 2021) for each Synthea patient's
own creatinine, age and sex.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient

from conftest import DEMO_MRN
from medconsult.clinical.codes import ANALYTES, LOINC_SYSTEM, to_canonical
from medconsult.clinical.gather import gather_inputs
from medconsult.fhir.client import FhirUnavailable
from medconsult.tools.base import ToolContext
from medconsult.tools.calculators import calculator_tools
from medconsult.tools.registry import discover_tools

pytestmark = pytest.mark.integration

CALCULATORS = ("curb65", "crb65", "qsofa", "sirs", "psi_port", "egfr_ckd_epi_2021", "infection_markers")
SCORES = ("curb65", "crb65", "qsofa", "sirs", "psi_port")
PNEUMONIA_DAY = "2018-09-29"  # the demo patient's pneumonia: BUN, creatinine, sodium, glucose, BP that day
DON_MOORE_MRN = "d65926d8-f057-4869-a5ed-85856e8e1f8c"


@pytest.fixture(scope="module")
def context(fhir_server) -> ToolContext:
    return ToolContext(fhir_server, fhir_server.local_fhir_url)


@pytest.fixture(scope="module")
def tools(context):
    return discover_tools(context).tools


@pytest.fixture(scope="module")
def patients(tools) -> dict[str, str]:
    """Resource id by Synthea MRN, for the demo patient and Don Moore (blood count and chemistry on 2016-03-03)."""
    ids = {}
    for mrn in (DEMO_MRN, DON_MOORE_MRN):
        found = tools["fhir_find_patient"].invoke({"query": mrn})
        ids[mrn] = found["matches"][0]["resource"].removeprefix("Patient/")
    return ids


@pytest.fixture(scope="module")
def patient_id(patients) -> str:
    return patients[DEMO_MRN]


def read_back(context: ToolContext, ref: str):
    kind, resource_id = ref.split("/")
    model = {"Observation": Observation, "Patient": Patient, "Condition": Condition}[kind]
    return context.fhir.read(model, resource_id)


def observation_value(observation: Observation, key: str) -> float:
    """The value of `key`'s LOINC codes in the Observation or one of its components, in the canonical unit."""
    analyte = ANALYTES[key]
    for holder in [observation, *(observation.component or [])]:
        codes = {c.code for c in (holder.code.coding or []) if c.system == LOINC_SYSTEM}
        if codes & set(analyte.loinc) and holder.valueQuantity is not None:
            quantity = holder.valueQuantity
            return to_canonical(analyte, quantity.value, quantity.code or quantity.unit)
    raise AssertionError(f"{key} not in {observation.id}")


def test_every_calculator_is_registered(tools):
    assert set(CALCULATORS) <= set(tools)


@pytest.mark.parametrize(("mrn", "as_of"), [(DEMO_MRN, PNEUMONIA_DAY), (DON_MOORE_MRN, "2016-03-03")])
@pytest.mark.parametrize("name", SCORES)
def test_score_inputs_exist_on_the_server(context, tools, patients, name, mrn, as_of):
    patient_id = patients[mrn]
    result = tools[name].invoke({"patient_id": patient_id, "as_of": as_of})
    assert result["reference_time"] == f"{as_of}T23:59:59Z" and result["window_hours"] == 48
    end = datetime.fromisoformat(result["reference_time"])
    for item in result["inputs"]:
        if item["resource"] is None:  # a comorbidity absent from the problem list has nothing to point to
            assert item["value"] is False and "problem list" in item["note"], item
            continue
        resource = read_back(context, item["resource"])
        if isinstance(resource, Observation):
            assert observation_value(resource, item["name"]) == pytest.approx(item["value"])
            assert end - timedelta(hours=48) <= datetime.fromisoformat(item["effective"]) <= end
        elif isinstance(resource, Patient):
            assert resource.id == patient_id
        else:
            assert resource.subject.reference.endswith(patient_id)
    # Synthea records no respiratory rate: every score lists it as missing, with the reason.
    missing = {m["name"]: m["reason"] for m in result["missing"]}
    assert "no Respiratory rate result" in missing["respiratory_rate"]
    known = {r for i in result["inputs"] for r in [i["resource"], *i["supporting"]]}
    for criterion in result["criteria"]:
        assert set(criterion["resources"]) <= known
    assert any(c["status"] == "unknown" for c in result["criteria"]) and not result["complete"]
    assert result["minimum"] <= result["points"] <= result["maximum"]


def test_sirs_reads_the_blood_count(context, tools, patients):
    result = tools["sirs"].invoke({"patient_id": patients[DON_MOORE_MRN], "as_of": "2016-03-03"})
    used = {i["name"]: i for i in result["inputs"]}
    assert set(used) == {"leukocytes"}
    white_cells = next(c for c in result["criteria"] if c["name"] == "white cells")
    assert white_cells["resources"] == [used["leukocytes"]["resource"]]
    assert f"{used['leukocytes']['value']:.4g}" in white_cells["detail"]


def test_curb65_of_the_demo_patient(tools, patient_id):
    # Man of 80 (age point), BUN 14.9 mg/dL, BP 172/98; no respiratory rate, no GCS or delirium recorded.
    result = tools["curb65"].invoke({"patient_id": patient_id, "as_of": PNEUMONIA_DAY})
    status = {c["name"]: c["status"] for c in result["criteria"]}
    assert status == {"confusion": "unknown", "urea": "not met", "respiratory rate": "unknown",
                      "blood pressure": "not met", "age >= 65": "met"}
    assert (result["points"], result["minimum"], result["maximum"]) == (1, 1, 3)
    assert result["interpretation"] is None and "undetermined" in result["summary"]
    assert result["summary"].startswith("CURB-65 1 (range 1-3: confusion, respiratory_rate unknown)")
    [evidence] = tools["curb65"].result_model.model_validate(result).evidence()  # one line in every prompt
    assert evidence.kind == "score" and evidence.text == (
        "CURB-65 1 (possible range 1-3); met: age >= 65 (+1); not met: urea, blood pressure; "
        "unknown: confusion, respiratory_rate; risk group undetermined"
    )
    urea = next(c for c in result["criteria"] if c["name"] == "urea")  # its value and source stay in the result
    assert urea["resources"][0].startswith("Observation/") and "BUN 14.94 mg/dL not > 19" in urea["detail"]


def test_psi_comorbidity_comes_from_the_problem_list(context, tools, patient_id):
    result = tools["psi_port"].invoke({"patient_id": patient_id, "as_of": PNEUMONIA_DAY})
    stroke = next(i for i in result["inputs"] if i["name"] == "cerebrovascular_disease")
    condition = read_back(context, stroke["resource"])
    assert stroke["value"] is True
    assert {c.code for c in condition.code.coding} == {"230690007"}  # Stroke, onset 1980
    absent = next(c for c in result["criteria"] if c["name"] == "neoplastic disease")
    assert absent["status"] == "not met" and "problem list" in absent["detail"]
    # Missing values taken as normal: 80 + stroke 10 = 90, class III; the range says what is unknown.
    assert result["points"] == 90 and result["assumed_normal_interpretation"]["risk_group"] == "class III"
    assert result["maximum"] > 130 and "class V" in result["possible_risk_groups"]
    assert {"nursing_home_resident", "pleural_effusion", "arterial_ph"} <= {m["name"] for m in result["missing"]}


def test_window_keeps_old_values_out(tools, patient_id):
    # Six days after the last laboratory panel (he died on 2018-10-06): BUN and BP are too old to count.
    result = tools["curb65"].invoke({"patient_id": patient_id, "as_of": "2018-10-05"})
    missing = {m["name"]: m["reason"] for m in result["missing"]}
    assert "older than the 48 h window" in missing["bun"] and "2018-09-29" in missing["bun"]
    assert "older than the 48 h window" in missing["systolic_bp"]
    assert [i["name"] for i in result["inputs"]] == ["age"]


def test_as_of_hides_what_was_recorded_later(context, patient_id):
    gathered = gather_inputs(context.fhir, patient_id, ("bun", "creatinine", "age"), as_of=date(2012, 6, 10),
                             window_hours=24 * 365 * 10)
    for key in ("bun", "creatinine"):
        assert gathered.inputs[key].effective[:10] <= "2012-06-10"
    assert gathered.inputs["age"].value == 74


def test_egfr_equals_the_published_equation_for_each_patient_with_creatinine(context, tools):
    codes = ",".join(f"{LOINC_SYSTEM}|{code}" for code in ANALYTES["creatinine"].loinc)
    found = context.fhir.search(Observation, {"code": codes, "_sort": "-date", "_count": "200"}, limit=1000)
    latest: dict[str, Observation] = {}
    for observation in found:
        latest.setdefault(observation.subject.reference.split("/")[-1], observation)
    assert len(latest) >= 5  # six Synthea patients have creatinine results
    sexes = set()
    for patient_id, observation in latest.items():
        on = observation.effectiveDateTime.datetime.date()
        result = tools["egfr_ckd_epi_2021"].invoke({"patient_id": patient_id, "as_of": on.isoformat()})
        patient = context.fhir.read(Patient, patient_id)
        born = patient.birthDate.date
        age = on.year - born.year - ((on.month, on.day) < (born.month, born.day))
        creatinine = to_canonical(ANALYTES["creatinine"], observation.valueQuantity.value,
                                  observation.valueQuantity.code)
        # CKD-EPI 2021 (Inker LA et al. N Engl J Med 2021;385:1737-49), written out here on its own.
        female = patient.gender == "female"
        kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
        expected = (142 * min(creatinine / kappa, 1) ** alpha * max(creatinine / kappa, 1) ** -1.200
                    * 0.9938**age * (1.012 if female else 1.0))
        assert result["egfr"] == pytest.approx(expected, abs=1.0), patient_id
        used = {i["name"]: i for i in result["inputs"]}
        assert used["creatinine"]["value"] == pytest.approx(creatinine)
        assert used["age"]["value"] == age and used["age"]["resource"] == f"Patient/{patient_id}"
        assert observation_value(read_back(context, used["creatinine"]["resource"]), "creatinine") == \
            pytest.approx(creatinine)
        sexes.add(patient.gender)
    assert sexes == {"male", "female"}


def test_infection_markers_without_inflammatory_markers(tools, patient_id):
    result = tools["infection_markers"].invoke({"patient_id": patient_id, "as_of": PNEUMONIA_DAY})
    assert result["pattern"] == "insufficient data"
    assert {"procalcitonin", "crp"} <= {m["name"] for m in result["missing"]}


def test_unreachable_server_propagates(settings):
    down = ToolContext(settings, "http://127.0.0.1:9/fhir")
    curb65 = next(t for t in calculator_tools(down) if t.name == "curb65")
    with pytest.raises(FhirUnavailable):
        curb65.invoke({"patient_id": "any", "as_of": PNEUMONIA_DAY})


# ---- the gathering rules, on a stand-in server ---------------------------------------------------------------

AT = datetime.fromisoformat("2020-03-01T23:59:59+00:00")


def observation(ident: str, code: str, hours_before: float, value=None, unit=None, components=()) -> Observation:
    body = {
        "resourceType": "Observation", "id": ident, "status": "final",
        "code": {"coding": [{"system": LOINC_SYSTEM, "code": code}]},
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": (AT - timedelta(hours=hours_before)).isoformat(),
    }
    if value is not None:
        body["valueQuantity"] = {"value": value, "code": unit, "system": "http://unitsofmeasure.org"}
    body["component"] = [
        {"code": {"coding": [{"system": LOINC_SYSTEM, "code": c}]},
         "valueQuantity": {"value": v, "code": "mm[Hg]", "system": "http://unitsofmeasure.org"}}
        for c, v in components
    ] or None
    return Observation({k: v for k, v in body.items() if v is not None})


def condition(ident: str, snomed: str, text: str, onset: str, abated: str | None = None) -> Condition:
    body = {
        "resourceType": "Condition", "id": ident, "subject": {"reference": "Patient/p1"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": snomed, "display": text}], "text": text},
        "clinicalStatus": {"coding": [{"code": "resolved" if abated else "active"}]},
        "onsetDateTime": onset,
    }
    if abated:
        body["abatementDateTime"] = abated
    return Condition(body)


class StandInGateway:
    """Answers read(Patient) and search(Observation | Condition) from fixed resources."""

    def __init__(self, observations, conditions, gender="male"):
        self.observations, self.conditions = observations, conditions
        self.patient = Patient({"resourceType": "Patient", "id": "p1", "gender": gender, "birthDate": "1950-03-02"})
        self.searches = []

    def read(self, model, resource_id):
        return self.patient

    def search(self, model, params, limit=1000):
        self.searches.append((model.resource_type, params))
        return self.observations if model is Observation else self.conditions


def test_gathering_rules():
    gateway = StandInGateway(
        observations=[
            observation("bp", "55284-4", 2, components=[("8480-6", 85), ("8462-4", 50)]),
            observation("cr", "38483-4", 3, value=0.2, unit="mmol/L"),
            observation("rr-old", "9279-1", 72, value=24, unit="/min"),
            observation("rr-later", "9279-1", -5, value=40, unit="/min"),
            observation("temp", "8310-5", 1, value=101.3, unit="[degF]"),
            observation("gcs", "9269-2", 4, value=13, unit="{score}"),
        ],
        conditions=[
            condition("ckd", "433144002", "Chronic kidney disease stage 3 (disorder)", "2015-01-01"),
            condition("delirium", "2776000", "Delirium", "2019-01-01", abated="2019-02-01"),
            condition("chf-later", "88805009", "Chronic congestive heart failure (disorder)", "2021-01-01"),
        ],
        gender="unknown",
    )
    names = ("systolic_bp", "diastolic_bp", "creatinine", "respiratory_rate", "temperature", "confusion", "age",
             "female", "renal_disease", "congestive_heart_failure", "pleural_effusion")
    got = gather_inputs(gateway, "p1", names, as_of=AT.date()).inputs

    # One Observation search for every code, the blood-pressure panels included, nothing after the reference time.
    observation_searches = [p for kind, p in gateway.searches if kind == "Observation"]
    assert len(observation_searches) == 1
    assert f"{LOINC_SYSTEM}|55284-4" in observation_searches[0]["code"]
    assert observation_searches[0]["date"] == "le2020-03-01T23:59:59Z"
    assert (got["systolic_bp"].value, got["diastolic_bp"].value) == (85, 50)
    assert got["systolic_bp"].resource == got["diastolic_bp"].resource == "Observation/bp"
    assert got["creatinine"].missing and "'mmol/L' is not convertible" in got["creatinine"].note
    assert got["respiratory_rate"].missing and "older than the 48 h window" in got["respiratory_rate"].note
    assert got["temperature"].value == pytest.approx(38.5) and "converted from 101.3 [degF]" in got["temperature"].note
    assert (got["confusion"].value, got["confusion"].resource) == (True, "Observation/gcs")  # GCS 13 < 15
    assert got["age"].value == 69 and got["age"].resource == "Patient/p1"
    assert got["female"].missing and "unknown" in got["female"].note
    assert (got["renal_disease"].value, got["renal_disease"].resource) == (True, "Condition/ckd")
    assert got["congestive_heart_failure"].value is False  # its onset is after the reference time
    assert got["pleural_effusion"].missing  # not coded: missing, not absent


def test_resolved_delirium_and_normal_gcs_mean_no_confusion():
    gateway = StandInGateway(
        observations=[observation("gcs", "9269-2", 4, value=15, unit="{score}")],
        conditions=[condition("delirium", "2776000", "Delirium", "2019-01-01", abated="2019-02-01")],
    )
    got = gather_inputs(gateway, "p1", ("confusion",), as_of=AT.date()).inputs["confusion"]
    assert (got.value, got.resource) == (False, "Observation/gcs")
