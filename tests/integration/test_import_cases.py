"""`medconsult cases import` into the real local FHIR server: both data sets, read back, imported twice."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pydicom
import pytest
from fhirclient.models.documentreference import DocumentReference
from fhirclient.models.imagingstudy import ImagingStudy
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from typer.testing import CliRunner

from conftest import DATA_DIR
from medconsult.cli import app
from medconsult.clinical.codes import ANALYTES
from medconsult.config import Settings
from medconsult.fhir.client import FhirGateway
from medconsult.importers.masking import names_label_term
from medconsult.importers.model import pseudonymous_mrn

pytestmark = pytest.mark.integration

SOURCES = {"ieee8023": DATA_DIR / "cxr_ieee8023_ncsa", "hannover": DATA_DIR / "cxr_hannover_covid"}
EXPECTED = {"ieee8023": (53, 80), "hannover": (57, 181)}  # patients, cases


def _import(fhir_server: Settings, fmt: str, out: Path) -> dict:
    env = {"MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url, "MEDCONSULT_CONFIG": str(out / "absent.yaml")}
    result = CliRunner().invoke(
        app, ["cases", "import", fmt, "--source", str(SOURCES[fmt]), "--out", str(out), "--load"], env=env
    )
    assert result.exit_code == 0, result.output
    return json.loads((out / "import-report.json").read_text())


@pytest.fixture(scope="module")
def imported(fhir_server: Settings, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[dict, Path]]:
    """Each available data set imported once with --load: (report, cases folder)."""
    imported = {}
    for fmt, source in SOURCES.items():
        if source.is_dir():
            out = tmp_path_factory.mktemp(f"cases-{fmt}")
            imported[fmt] = (_import(fhir_server, fmt, out), out)
    return imported


@pytest.fixture(scope="module")
def gateway(fhir_server: Settings) -> FhirGateway:
    return FhirGateway(fhir_server.local_fhir_url)


def _patient(gateway: FhirGateway, source_id: str) -> Patient:
    """The imported patient of the source's "<data set>-<id>", found by its pseudonymous MRN."""
    found = gateway.search(Patient, {"identifier": pseudonymous_mrn(source_id)})
    assert len(found) == 1, source_id
    return found[0]


def test_counts_and_every_bundle_loaded(imported: dict[str, tuple[dict, Path]]):
    assert imported, "no data set folder present"
    for fmt, (report, _) in imported.items():
        assert (report["patients"], report["cases"]) == EXPECTED[fmt]
        assert report["load"]["bundles_loaded"] == report["patients"] and report["load"]["resources_failed"] == 0


def test_hannover_patient_with_its_labs_and_imaging_study(imported, gateway: FhirGateway):
    if "hannover" not in imported:
        pytest.skip("Hannover folder not present")
    patient = _patient(gateway, "hannover-8d6990f2")  # the patient of cases/hannover-covid.yaml
    assert patient.gender == "female"
    observations = gateway.search(Observation, {"patient": patient.id, "_count": "200"})
    codes = {o.code.coding[0].code for o in observations}
    assert codes == {ANALYTES[k].loinc[0] for k in ("crp", "ldh", "lymphocytes", "neutrophils", "po2", "pco2")}
    assert all(o.valueQuantity.system == "http://unitsofmeasure.org" for o in observations)
    hidden_later = gateway.search(Observation, {"patient": patient.id, "date": "le2020-03-02T23:59:59Z"})
    assert 0 < len(hidden_later) < len(observations)  # as_of of the day-0 image hides the later labs
    studies = gateway.search(ImagingStudy, {"patient": patient.id})
    assert len(studies) == 3 and all(s.status == "available" for s in studies)
    _, out = imported["hannover"]
    dicom = pydicom.dcmread(out / "images" / "hannover-8d6990f2-7afaaccc.dcm", stop_before_pixels=True)
    assert f"urn:oid:{dicom.StudyInstanceUID}" in {s.identifier[0].value for s in studies}


def test_ieee8023_note_on_the_server_is_masked(imported, gateway: FhirGateway):
    if "ieee8023" not in imported:
        pytest.skip("ieee8023 folder not present")
    patient = _patient(gateway, "ieee8023-96")
    documents = gateway.search(DocumentReference, {"patient": patient.id})
    texts = [base64.b64decode(d.content[0].attachment.data).decode("utf-8") for d in documents]
    assert len(texts) == 3 and all("SpO2 89%" in t and not names_label_term(t) for t in texts)
    demo = _patient(gateway, "ieee8023-183")
    codes = {o.code.coding[0].code for o in gateway.search(Observation, {"patient": demo.id})}
    assert {"8310-5", "1988-5", "731-0", "2160-0"} <= codes


def _resource_counts(gateway: FhirGateway) -> dict[str, int]:
    kinds = (Patient, ImagingStudy, DocumentReference)
    counts = {k.resource_type: len(gateway.search(k, {"_count": "500"}, limit=5000)) for k in kinds}
    demo = _patient(gateway, "ieee8023-183") if "ieee8023" in SOURCES else None
    counts["Observation of ieee8023-183"] = len(gateway.search(Observation, {"patient": demo.id})) if demo else 0
    return counts


def test_importing_again_adds_nothing(imported, fhir_server: Settings, gateway: FhirGateway, tmp_path: Path):
    before = _resource_counts(gateway)
    for fmt, (first, _) in imported.items():
        again = _import(fhir_server, fmt, tmp_path / fmt)
        assert again["load"]["bundles_loaded"] == first["patients"]  # PUTs to the same ids: updated in place
        assert again["load"]["resources_failed"] == 0
    assert _resource_counts(gateway) == before


def test_a_new_row_for_a_known_patient_adds_its_image(imported, fhir_server: Settings, gateway, tmp_path: Path):
    """New cases of the same form arrive for patients already imported: only the new row is added."""
    if "ieee8023" not in imported:
        pytest.skip("ieee8023 folder not present")
    source = tmp_path / "source"
    (source / "images").mkdir(parents=True)
    rows = (SOURCES["ieee8023"] / "metadata.csv").read_text().splitlines(keepends=True)
    header, patient_183 = rows[0], [r for r in rows[1:] if r.split(",")[1] == "183"]
    image = patient_183[0].split(",")[0]
    (source / image).write_bytes((SOURCES["ieee8023"] / image).read_bytes())
    later = patient_183[0].replace(",183,0,", ",183,4,", 1)  # the same radiograph, filed again on day 4
    (source / "metadata.csv").write_text(header + patient_183[0] + later)
    patient = _patient(gateway, "ieee8023-183")
    studies_before = len(gateway.search(ImagingStudy, {"patient": patient.id}))
    env = {"MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url}
    result = CliRunner().invoke(
        app, ["cases", "import", "ieee8023", "--source", str(source), "--out", str(tmp_path / "out")], env=env
    )
    assert result.exit_code == 0, result.output
    assert len(gateway.search(ImagingStudy, {"patient": patient.id})) == studies_before + 1
    assert (tmp_path / "out" / "ieee8023-183-d4.yaml").is_file()
