"""Importers: note values, FHIR resources against codes.py, the timeline, DICOM round trips, odd CSVs, the CLI."""

from __future__ import annotations

import base64
import csv
import json
from datetime import date, time
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from typer.testing import CliRunner

from conftest import DATA_DIR, REPO
from medconsult.cases import load_case_file
from medconsult.cli import app
from medconsult.clinical.codes import ANALYTES, LOINC_SYSTEM, UCUM_SYSTEM
from medconsult.imaging.io import check_chest_radiograph, read_radiograph
from medconsult.importers.dicom import RadiographTags, jpeg_frame, write_radiograph
from medconsult.importers.fhir_resources import dicom_uids, observation_resource
from medconsult.importers.masking import names_label_term
from medconsult.importers.model import Measurement, ReferenceRange
from medconsult.importers.notes import NOTE_TEXT, extract_values
from medconsult.importers.pipeline import import_dataset
from medconsult.importers.table import SourceError
from medconsult.importers.timeline import Timeline, age_on, birth_date_for_age

IEEE = DATA_DIR / "cxr_ieee8023_ncsa"
HANNOVER = DATA_DIR / "cxr_hannover_covid"
needs_ieee = pytest.mark.skipif(not IEEE.is_dir(), reason="the non-commercial ieee8023 folder is not present")
needs_hannover = pytest.mark.skipif(not HANNOVER.is_dir(), reason="the Hannover folder is not present")
ANCHOR = date(2020, 3, 2)

IEEE_COLUMNS = ["patientid", "offset", "sex", "age", "finding", "survival", "temperature", "pO2_saturation",
                "leukocyte_count", "lymphocyte_count", "view", "modality", "image", "url", "license",
                "clinical_notes", "other_notes"]


# --- fixtures -----------------------------------------------------------------------------------------------


def _radiograph_pixels(height: int = 320, width: int = 300) -> np.ndarray:
    """Greyscale with real contrast: bright mediastinum and borders, darker lung fields."""
    y, x = np.mgrid[0:height, 0:width]
    pixels = 200 - 120 * np.exp(-(((x - width * 0.3) / 50) ** 2 + ((y - height / 2) / 90) ** 2))
    pixels -= 120 * np.exp(-(((x - width * 0.7) / 50) ** 2 + ((y - height / 2) / 90) ** 2))
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _write_csv(path: Path, columns: list[str], rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def small_ieee(tmp_path: Path) -> Path:
    """A metadata.csv of five rows: two good images of one patient, and three rows that must be skipped."""
    source = tmp_path / "small_ieee"
    (source / "images").mkdir(parents=True)
    Image.fromarray(_radiograph_pixels()).save(source / "images" / "a.jpg", quality=90)
    Image.fromarray(_radiograph_pixels()).save(source / "images" / "b.jpg", quality=90)
    note = "Fever (Tmax 39.1 C) and cough. Legionella antigen was positive. CRP (12 mg/dL)."
    rows = [
        {"patientid": "7", "offset": "0", "sex": "F", "age": "61", "finding": "Legionella", "temperature": "abc",
         "pO2_saturation": "91", "view": "AP Supine", "modality": "X-ray", "image": "images/a.jpg",
         "url": "https://example.org/legionella-case", "license": "CC BY", "clinical_notes": note},
        {"patientid": "7", "offset": "4", "sex": "F", "age": "", "finding": "Legionella", "pO2_saturation": "91",
         "lymphocyte_count": "0.8", "view": "PA", "modality": "X-ray", "image": "images/b.jpg",
         "clinical_notes": note + " Improving."},
        {"patientid": "8", "offset": "1", "view": "PA", "image": "images/missing.jpg", "clinical_notes": "x"},
        {"patientid": "9", "offset": "2.5", "view": "L", "image": "images/a.jpg"},
        {"patientid": "", "image": "images/a.jpg"},
    ]
    _write_csv(source / "metadata.csv", IEEE_COLUMNS, rows)
    return source


@pytest.fixture(scope="module")
def real_imports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Both real folders imported once (no FHIR server): the case folders."""
    imported = {}
    for fmt, source in (("ieee8023", IEEE), ("hannover", HANNOVER)):
        if source.is_dir():
            out = tmp_path_factory.mktemp(fmt)
            import_dataset(fmt, source, out, anchor=ANCHOR)
            imported[fmt] = out
    return imported


def _bundle(out: Path, identifier: str) -> list[dict]:
    return [e["resource"] for e in json.loads((out / "fhir" / f"{identifier}.json").read_text())["entry"]]


def _of_type(resources: list[dict], kind: str) -> list[dict]:
    return [r for r in resources if r["resourceType"] == kind]


def _report(out: Path) -> dict:
    return json.loads((out / "import-report.json").read_text())


# --- values read from notes ---------------------------------------------------------------------------------


def _values(note: str) -> dict[str, float]:
    return {v.analyte: v.value for v in extract_values(note).values}


def test_note_values_of_patient_340():
    note = ("The patient presented after 7 days of hyperpyrexia (maximum 39? C), productive cough. Laboratory "
            "examinations showed high values of CRP (42.2 mg/dl) and WBC (14.000 mm3).")
    assert _values(note) == {"temperature": 39.0, "crp": 422.0, "leukocytes": 14.0}


def test_note_values_of_patient_183_skip_stated_normal_ranges():
    note = ("presented with a 6-day history of fever (Tmax 38.9?C), cough. Laboratory studies were remarkable "
            "for lymphopenia (0.6?103/?L, normal range 0.9?103/?L ? 3.3?103/?L), elevated serum creatinine "
            "(1.3 mg/dL, normal range 0.6 mg/dL ? 1.2 mg/dL), elevated c-reactive protein (8.6 mg/dL, normal "
            "range 0 ? 1 mg/dL), elevated procalcitonin (2.39 ng/mL, normal < 0.1 ng/mL), and mildly elevated "
            "d-dimer (570 ng/mL, normal < 500 ng/mL).")
    assert _values(note) == {"temperature": 38.9, "lymphocytes": 0.6, "creatinine": 1.3, "crp": 86.0,
                             "procalcitonin": 2.39}


def test_note_values_of_patient_96():
    assert _values("Low oxygen saturation (SpO2 89%) and lymphopenia were observed.") == {"spo2": 89.0}


def test_two_values_of_one_analyte_are_ambiguous_and_neither_is_taken():
    extraction = extract_values("CRP (106.3mg/l; normal range <5mg/l). Later CRP levels rose to 300mg/l.")
    assert extraction.values == () and extraction.ambiguous == ("crp",)


@pytest.mark.parametrize(
    "note",
    [
        "CRP 1,234 mg/L.",  # thousands or decimal comma: not known
        "Temperature 61 C.",  # implausible
        "CRP was high.",  # no value
        "Leukocytes 12.",  # no unit
        "Arterial oxygen saturation 85%.",  # SaO2, not pulse oximetry
        "Fever for 10 days, CT on day 3.",
    ],
)
def test_unclear_note_values_are_not_taken(note: str):
    assert extract_values(note).values == ()


# --- resources --------------------------------------------------------------------------------------------


@needs_ieee
@needs_hannover
def test_every_observation_has_the_loinc_code_display_and_unit_of_codes_py(real_imports: dict[str, Path]):
    checked = 0
    for out in real_imports.values():
        for path in sorted((out / "fhir").glob("*.json")):
            entries = json.loads(path.read_text())["entry"]
            for observation in _of_type([e["resource"] for e in entries], "Observation"):
                analyte = next(a for a in ANALYTES.values() if a.name == observation["code"]["text"])
                assert observation["code"]["coding"] == [
                    {"system": LOINC_SYSTEM, "code": analyte.loinc[0], "display": analyte.display}
                ]
                quantity = observation["valueQuantity"]
                assert (quantity["system"], quantity["code"], quantity["unit"]) == (UCUM_SYSTEM, analyte.unit,
                                                                                   analyte.unit)
                assert observation["category"][0]["coding"][0]["code"] == analyte.category
                checked += 1
            assert all(e["fullUrl"].startswith("urn:uuid:") for e in entries)
    assert checked > 500


@needs_hannover
def test_hannover_reference_ranges_and_flags(real_imports: dict[str, Path]):
    resources = _bundle(real_imports["hannover"], "hannover-8d6990f2")
    ldh = next(r for r in _of_type(resources, "Observation") if r["code"]["coding"][0]["code"] == "2532-0")
    assert ldh["valueQuantity"]["value"] == 385
    assert ldh["referenceRange"][0]["high"]["value"] == 248
    assert ldh["interpretation"][0]["coding"][0]["code"] == "H"
    lymphocytes = [r for r in _of_type(resources, "Observation") if r["code"]["coding"][0]["code"] == "731-0"]
    # 0.3 on day 2 is stated by two rows (offset +2 from the day-0 image, -14 from the day-16 one): kept once
    assert [(r["effectiveDateTime"], r["valueQuantity"]["value"]) for r in lymphocytes] == [
        ("2020-03-04T09:00:00Z", 0.3)
    ]
    assert lymphocytes[0]["interpretation"][0]["coding"][0]["code"] == "L"


def test_reference_range_interpretation():
    crp = ReferenceRange(high=5)
    assert (crp.interpret(0), crp.interpret(5), crp.interpret(6)) == ("N", "N", "H")
    ldh = ReferenceRange(high=248, high_exclusive=True)
    assert (ldh.interpret(245), ldh.interpret(248)) == ("N", "H")
    counts = ReferenceRange(1.1, 4.0)
    assert (counts.interpret(0.3), counts.interpret(0.05, "<"), counts.interpret(2.0, "<")) == ("L", "L", None)


def test_a_censored_value_uses_the_comparator():
    measurement = Measurement("d_dimer", 5.0, 3, comparator=">", reference=ReferenceRange(0, 0.5))
    resource = observation_resource(measurement, "urn:uuid:x", Timeline(ANCHOR))
    assert resource["valueQuantity"]["comparator"] == ">" and resource["valueQuantity"]["code"] == "mg/L{FEU}"
    assert resource["interpretation"][0]["coding"][0]["code"] == "H"
    assert resource["effectiveDateTime"] == "2020-03-05T09:00:00Z"


@needs_hannover
def test_hannover_detection_limits_are_skipped_with_their_reason(real_imports: dict[str, Path]):
    report = _report(real_imports["hannover"])
    assert report["skipped_values"]["d-dimer_val: above the detection limit, which the source does not state"] > 0
    assert report["skipped_values"]["factor_xii_val: no analyte in codes.py (coagulation factor XIII)"] > 0
    assert (report["patients"], report["cases"], report["notes"]) == (57, 181, 0)


@needs_ieee
def test_ieee8023_notes_become_masked_document_references(real_imports: dict[str, Path]):
    out = real_imports["ieee8023"]
    report = _report(out)
    assert (report["patients"], report["cases"], report["skipped_rows"]) == (53, 80, [])
    texts = []
    for path in (out / "fhir").glob("*.json"):
        for document in _of_type(_bundle(out, path.stem), "DocumentReference"):
            attachment = document["content"][0]["attachment"]
            assert attachment["contentType"] == "text/plain;charset=utf-8"
            assert document["type"]["coding"][0]["code"] == "34117-2" and document["status"] == "current"
            texts.append(base64.b64decode(attachment["data"]).decode("utf-8"))
    assert len(texts) == report["notes"] > 50
    assert not [t for t in texts if names_label_term(t)]
    assert not [t for t in texts if "radiopaedia" in t.lower() or "courtesy" in t.lower()]  # attribution stays out


@needs_ieee
def test_ieee8023_note_values_are_marked_and_structured_columns_come_first(real_imports: dict[str, Path]):
    observations = _of_type(_bundle(real_imports["ieee8023"], "ieee8023-183"), "Observation")
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert by_code["8310-5"]["valueQuantity"]["value"] == 38.9 and "note" not in by_code["8310-5"]  # column
    assert by_code["2160-0"]["valueQuantity"]["value"] == 1.3  # creatinine from the note
    assert by_code["2160-0"]["note"] == [{"text": NOTE_TEXT}] and by_code["2160-0"]["method"]["text"]
    assert by_code["1988-5"]["valueQuantity"] == {"value": 86, "unit": "mg/L", "system": UCUM_SYSTEM,
                                                  "code": "mg/L"}
    observations = _of_type(_bundle(real_imports["ieee8023"], "ieee8023-96"), "Observation")
    # SpO2 89% is repeated on the patient's three rows: one measurement, on the first day
    assert [(o["code"]["coding"][0]["code"], o["effectiveDateTime"][:10], o["valueQuantity"]["value"])
            for o in observations] == [("59408-5", "2020-03-02", 89)]


# --- timeline -----------------------------------------------------------------------------------------------


def test_birth_date_gives_the_stated_age_from_the_first_day_for_a_year():
    born = birth_date_for_age(54, date(2020, 3, 5))
    assert age_on(born, date(2020, 3, 5)) == age_on(born, date(2021, 3, 4)) == 54
    assert age_on(born, date(2020, 3, 4)) == 53
    assert birth_date_for_age(30, date(2020, 2, 29)) == date(1990, 2, 28)


def test_timeline_instants():
    timeline = Timeline(ANCHOR)
    assert timeline.instant(0, "laboratory") == "2020-03-02T09:00:00Z"
    assert timeline.instant(-3, "image") == "2020-02-28T10:00:00Z"


@needs_hannover
def test_hannover_images_lie_on_admission_day_minus_admission_offset(real_imports: dict[str, Path]):
    out = real_imports["hannover"]
    as_of = {path.stem: load_case_file(path, DATA_DIR).as_of for path in out.glob("hannover-8d6990f2-*.yaml")}
    assert as_of == {  # admission offsets 0, -16, -27
        "hannover-8d6990f2-7afaaccc": date(2020, 3, 2),
        "hannover-8d6990f2-ec083e35": date(2020, 3, 18),
        "hannover-8d6990f2-c601f50d": date(2020, 3, 29),
    }


@needs_hannover
def test_the_hand_written_hannover_case_names_an_imported_patient(real_imports: dict[str, Path]):
    case = load_case_file(REPO / "cases" / "hannover-covid.yaml", DATA_DIR)
    bundle = json.loads((real_imports["hannover"] / "fhir" / "hannover-8d6990f2.json").read_text())
    assert bundle["entry"][0]["resource"]["identifier"][0]["value"] == case.patient and case.synthetic_dates


# --- DICOM --------------------------------------------------------------------------------------------------


def _tags(**changes) -> RadiographTags:
    values = dict(patient_id="ieee8023-1", sex="female", age_years=61, study_date=date(2020, 3, 6),
                  study_time=time(10), modality="DX", view="AP", supine=True, description="Chest AP supine")
    return RadiographTags(**{**values, **changes})


def test_a_greyscale_jpeg_is_encapsulated_byte_for_byte(tmp_path: Path):
    source = tmp_path / "x.jpg"
    Image.fromarray(_radiograph_pixels()).save(source, quality=90)
    target = tmp_path / "out" / "case.dcm"
    write_radiograph(source, target, _tags(), dicom_uids("case"))
    dataset = pydicom.dcmread(target)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert source.read_bytes() in dataset.PixelData  # the original JPEG stream, no re-encoding
    assert (dataset.PatientID, dataset.Modality, dataset.BodyPartExamined, dataset.ViewPosition) == (
        "ieee8023-1", "DX", "CHEST", "AP")
    assert dataset.StudyDate == "20200306" and dataset.PatientAge == "061Y" and dataset.PatientSex == "F"
    assert dataset.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"
    assert dataset.StudyInstanceUID == dicom_uids("case").study == dicom_uids("case").study
    image = read_radiograph(target)
    check_chest_radiograph(image)
    expected = np.asarray(Image.open(source), dtype=np.float32)
    assert image.pixels.shape == expected.shape and np.abs(image.pixels - expected).mean() < 1.0


def test_a_png_is_stored_as_uncompressed_monochrome2(tmp_path: Path):
    source = tmp_path / "x.png"
    pixels = _radiograph_pixels()
    Image.fromarray(pixels).save(source)
    target = tmp_path / "case.dcm"
    write_radiograph(source, target, _tags(view="PA", supine=False, modality="CR"), dicom_uids("png"))
    dataset = pydicom.dcmread(target)
    assert dataset.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert dataset.PhotometricInterpretation == "MONOCHROME2" and dataset.BitsStored == 8
    image = read_radiograph(target)
    assert check_chest_radiograph(image) == [] and np.array_equal(image.pixels, pixels.astype(np.float32))


def test_a_colour_jpeg_is_decoded_to_greyscale(tmp_path: Path):
    source = tmp_path / "colour.jpg"
    Image.fromarray(_radiograph_pixels()).convert("RGB").save(source)
    assert jpeg_frame(source.read_bytes()).components == 3
    target = tmp_path / "case.dcm"
    write_radiograph(source, target, _tags(), dicom_uids("colour"))
    assert pydicom.dcmread(target).file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert read_radiograph(target).pixels.ndim == 2


@needs_ieee
@needs_hannover
def test_every_written_image_reads_back_as_a_chest_radiograph(real_imports: dict[str, Path]):
    for fmt, out in real_imports.items():
        cases = sorted(out.glob("*.yaml"))
        assert len(cases) == {"ieee8023": 80, "hannover": 181}[fmt]
        for path in cases[:: 10]:  # every tenth: decoding all of them adds seconds, not coverage
            case = load_case_file(path, DATA_DIR)
            assert case.label and "label" not in case.to_case().model_dump()
            image = read_radiograph(Path(case.images[0]))
            assert image.format == "dicom" and image.meta["body_part"] == "CHEST"
            check_chest_radiograph(image)
            assert image.meta["study_date"] == case.as_of.strftime("%Y%m%d")


@needs_ieee
def test_image_names_and_case_files_do_not_leak_the_diagnosis(real_imports: dict[str, Path]):
    out = real_imports["ieee8023"]
    for path in out.glob("*.yaml"):
        case = load_case_file(path, DATA_DIR)
        visible = json.dumps(case.to_case().model_dump(mode="json")) + (case.description or "")
        assert not names_label_term(visible) and "pneumonia" not in visible.lower()
    assert not [p for p in (out / "images").iterdir() if names_label_term(p.name) or "pneumonia" in p.name]


# --- odd sources ------------------------------------------------------------------------------------------------


def test_a_small_csv_imports_and_bad_rows_are_skipped_with_reasons(small_ieee: Path, tmp_path: Path):
    out = tmp_path / "cases"
    report = import_dataset("ieee8023", small_ieee, out, anchor=ANCHOR)
    assert (report.rows, report.patients, report.cases) == (5, 1, 2)
    reasons = {row["row"]: row["reason"] for row in report.skipped_rows}
    assert set(reasons) == {4, 5, 6}
    assert "image file not found: images/missing.jpg" in reasons[4]
    assert "lateral" in reasons[5] and "no patientid" in reasons[6]
    assert report.skipped_values["temperature: not a number"] == 1
    assert report.observations_by_analyte == {"spo2": 1, "lymphocytes": 1, "temperature": 1, "crp": 1}
    assert report.values_from_notes == {"temperature": 1, "crp": 1}
    cases = {p.stem: load_case_file(p, DATA_DIR) for p in out.glob("*.yaml")}
    assert set(cases) == {"ieee8023-7-d0", "ieee8023-7-d4"}
    assert cases["ieee8023-7-d4"].as_of == date(2020, 3, 6)
    assert cases["ieee8023-7-d0"].label["source"]["url"] == "https://example.org/legionella-case"
    resources = _bundle(out, "ieee8023-7")
    patient = _of_type(resources, "Patient")[0]
    assert patient["birthDate"] == "1959-03-02" and patient["gender"] == "female"
    assert len(_of_type(resources, "DocumentReference")) == 2 and len(_of_type(resources, "ImagingStudy")) == 2
    supine = pydicom.dcmread(out / "images" / "ieee8023-7-d0.dcm")
    assert supine.ViewPosition == "AP" and "supine" in supine.ImageComments


def test_an_empty_csv_imports_nothing(tmp_path: Path):
    source = tmp_path / "empty"
    source.mkdir()
    _write_csv(source / "metadata.csv", IEEE_COLUMNS, [])
    report = import_dataset("ieee8023", source, tmp_path / "out")
    assert (report.patients, report.cases) == (0, 0) and (tmp_path / "out" / "import-report.json").is_file()


def test_missing_required_columns_are_a_clear_error(tmp_path: Path):
    source = tmp_path / "odd"
    source.mkdir()
    _write_csv(source / "metadata.csv", ["patientid", "finding"], [{"patientid": "1", "finding": "x"}])
    with pytest.raises(SourceError, match="required column.*image"):
        import_dataset("ieee8023", source, tmp_path / "out")
    with pytest.raises(SourceError, match="no data.csv"):
        import_dataset("hannover", source, tmp_path / "out")


def test_a_small_hannover_csv_with_censored_and_odd_values(tmp_path: Path):
    source = tmp_path / "hannover"
    (source / "png").mkdir(parents=True)
    Image.fromarray(_radiograph_pixels()).save(source / "png" / "img1.png")
    columns = ["patient_id", "image_id", "sex", "admission_offset", "icu_admission_offset", "death_offset",
               "modality", "projection", "crp_offset", "crp_val", "d-dimer_offset", "d-dimer_val", "ldh_offset",
               "ldh_val", "po2_offset", "po2_val"]
    rows = [
        {"patient_id": "p1", "image_id": "img1", "sex": "w", "admission_offset": "-3", "icu_admission_offset": "2.0",
         "modality": "CR", "projection": "ap", "crp_offset": "0.0", "crp_val": "-inf", "d-dimer_offset": "-1.0",
         "d-dimer_val": "0.7", "ldh_offset": "", "ldh_val": "300.0", "po2_offset": "0.0", "po2_val": "n.a."},
        {"patient_id": "p1", "image_id": "img2", "admission_offset": "-5"},
    ]
    _write_csv(source / "data.csv", columns, rows)
    report = import_dataset("hannover", source, tmp_path / "out", anchor=ANCHOR)
    assert (report.patients, report.cases) == (1, 1)
    assert report.skipped_rows == [{"row": 3, "reason": "image file not found: png/img2.png"}]
    assert report.skipped_values == {"crp_val: below the detection limit, which the source does not state": 1,
                                     "ldh_val: value without an offset": 1, "po2_val: not a number": 1}
    observations = _of_type(_bundle(tmp_path / "out", "hannover-p1"), "Observation")
    assert [(o["code"]["coding"][0]["code"], o["effectiveDateTime"]) for o in observations] == [
        ("48065-7", "2020-03-04T09:00:00Z")  # image on day 3, D-dimer one day before it
    ]
    case = load_case_file(tmp_path / "out" / "hannover-p1-img1.yaml", DATA_DIR)
    assert case.as_of == date(2020, 3, 5) and case.label["went_icu"] and not case.label["in_icu_at_image"]
    assert pydicom.dcmread(case.images[0]).Modality == "CR"


# --- command line -----------------------------------------------------------------------------------------------


def test_cli_imports_without_loading(small_ieee: Path, tmp_path: Path):
    result = CliRunner().invoke(
        app, ["cases", "import", "ieee8023", "--source", str(small_ieee), "--out", str(tmp_path / "c"), "--no-load"]
    )
    assert result.exit_code == 0, result.output
    assert "1 patients, 2 cases" in result.output
    assert _report(tmp_path / "c")["load"] is None


def test_cli_reports_a_missing_column(tmp_path: Path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "metadata.csv").write_text("patientid\n1\n")
    result = CliRunner().invoke(
        app, ["cases", "import", "ieee8023", "--source", str(tmp_path / "src"), "--out", str(tmp_path / "c"),
              "--no-load"]
    )
    assert result.exit_code == 1 and "required column(s) missing: image" in result.output


def test_cli_tells_how_to_start_an_unreachable_server(small_ieee: Path, tmp_path: Path, monkeypatch):
    from medconsult.process import free_port

    monkeypatch.setenv("MEDCONSULT_FHIR_PORT", str(free_port()))
    result = CliRunner().invoke(
        app, ["cases", "import", "ieee8023", "--source", str(small_ieee), "--out", str(tmp_path / "c")]
    )
    assert result.exit_code == 1 and "medconsult fhir up" in result.output


# --- paediatric radiographs (Kermany) -----------------------------------------------------------------------------


def test_kermany_import_makes_neutral_paediatric_patients_without_invented_values(tmp_path: Path):
    """Real images of the paediatric set, three patients: nothing but the image and the stated cohort."""
    kermany = DATA_DIR / "cxr_kermany_pediatric_ccby"
    rows = list(csv.DictReader((kermany / "manifest.csv").open()))
    chosen = [next(r for r in rows if r["label"] == label) for label in ("normal", "bacterial", "viral")]
    source = tmp_path / "kermany"
    (source / "images").mkdir(parents=True)
    for row in chosen:
        (source / row["image"]).write_bytes((kermany / row["image"]).read_bytes())
    _write_csv(source / "manifest.csv", list(rows[0]),
               [*chosen, {**chosen[0], "label": "covid", "patient": "kp-x"}])
    out = tmp_path / "out"
    report = import_dataset("kermany", source, out, anchor=ANCHOR)
    assert (report.patients, report.cases) == (3, 3)
    assert [s["reason"] for s in report.skipped_rows] == ["label not normal, bacterial or viral: 'covid'"]
    for path in sorted(out.glob("*.yaml")):
        case = load_case_file(path, DATA_DIR)
        assert case.population == "paediatric" and case.as_of == ANCHOR and "child aged 1-5" in case.question
        assert case.label["finding"] in ("Normal", "Bacterial pneumonia", "Viral pneumonia")
        assert "kermany" not in case.patient.lower()  # a neutral MRN: the data set's name would hint
        resources = _bundle(out, case.label["patient"])
        patient = _of_type(resources, "Patient")[0]
        assert "birthDate" not in patient and patient.get("gender") == "unknown"
        assert not _of_type(resources, "Observation") and not _of_type(resources, "DocumentReference")
        image = read_radiograph(path.parent / case.images[0])
        check_chest_radiograph(image)
