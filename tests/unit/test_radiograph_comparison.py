"""Zone measurements, the comparison of two films (`compare_radiographs` on PNG, JPEG and DICOM, through the CLI),
the image archive that finds a prior exam by its study UID, and how the consult picks the prior."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import DATA_DIR
from medconsult.cases import Case
from medconsult.config import Settings
from medconsult.imaging.archive import find_study
from medconsult.imaging.comparison import compare, load_noise_floor, load_validation
from medconsult.imaging.io import read_radiograph
from medconsult.imaging.radiomics import zones
from medconsult.imaging.segmentation import load_segmenter
from medconsult.imaging.zones import ZONE_NAMES, measure, pattern
from medconsult.importers.dicom import RadiographTags, write_radiograph
from medconsult.importers.fhir_resources import dicom_uids
from medconsult.records import ToolRecord

HANNOVER = DATA_DIR / "cxr_hannover_covid" / "png"
FILM, LATER = HANNOVER / "27a70642.png", HANNOVER / "e53ea41a.png"  # one patient, hospital days 0 and 4


def _measured(path: Path):
    pixels = read_radiograph(path).pixels
    masks = load_segmenter().segment(pixels)
    return pixels, masks, measure(pixels, masks.right, masks.left)


def test_every_zone_is_measured_against_the_reference():
    _, _, measures = _measured(FILM)
    assert [f"{z.side} {z.zone}" for z in measures.zones] == list(ZONE_NAMES)
    for zone in measures.zones:
        assert 0 <= zone.opacity <= 1 and 0 <= zone.outer_opacity <= 1 and 0 <= zone.inner_opacity <= 1
        assert 0.2 < zone.density < 1.5  # a share of the mediastinum's grey value
        assert 0 <= zone.density_percentile <= 100
    assert set(measures.area_index) == {"right", "left"} and all(0 < v < 1 for v in measures.area_index.values())
    assert pattern(measures) in ("no zone opacified", "focal", "unilateral (multi-zone)", "bilateral",
                                 "bilateral, peripheral", "diffuse")


def test_a_film_compared_with_itself_has_not_changed():
    _, _, measures = _measured(FILM)
    same = compare(measures, measures, load_noise_floor())
    assert same.change_score == 0 and same.verdict == "within noise" and not same.beyond_noise()
    assert all(z.opacity_change == 0 and z.density_change == 0 for z in same.zones)


def test_an_opacity_added_to_the_left_lower_zone_scores_as_worse_there(tmp_path: Path):
    """Positive = worse, and the change lands in the zone where it was made."""
    pixels, masks, before = _measured(FILM)
    lower = zones(masks.left)["lower"]
    level = float(np.median(pixels[masks.right | masks.left]))
    opaque = pixels.copy()
    opaque[lower] = np.maximum(opaque[lower], level + 0.9 * (pixels.max() - level))  # near soft-tissue white
    after = measure(opaque, masks.right, masks.left)
    changed = compare(before, after, load_noise_floor())
    left_lower = next(z for z in changed.zones if z.side == "left" and z.zone == "lower")
    assert changed.change_score > 0
    assert left_lower.opacity_change > 40 and left_lower.density_change > 10
    assert changed.beyond_noise()[0] is left_lower
    assert all(abs(z.opacity_change) < 1 for z in changed.zones if z is not left_lower)


def test_a_film_whose_segmentation_is_in_doubt_makes_the_comparison_not_interpretable():
    from medconsult.imaging.comparison import NOT_INTERPRETABLE

    _, _, measures = _measured(FILM)
    doubted = compare(measures, measures, load_noise_floor(), ["current film: low segmentation confidence"])
    assert doubted.verdict == NOT_INTERPRETABLE and doubted.beyond_noise() == []


def test_the_noise_floor_and_the_validation_are_recorded_with_the_reference():
    noise, validation = load_noise_floor(), load_validation()
    assert noise.change_score > 0 and noise.zone_opacity > 0 and noise.pairs >= 3
    assert 0 <= validation["auc"] <= 1 and validation["pairs"] > 0
    assert validation["auc_95ci"][0] <= validation["auc"] <= validation["auc_95ci"][1]


def _tool_run(args: dict, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(Path(sys.executable).parent / "medconsult"), "tools", "run", "compare_radiographs",
         "--args", json.dumps(args), "--out", str(out)],
        capture_output=True, text=True, timeout=300, env={**os.environ, "MEDCONSULT_DATA_DIR": str(DATA_DIR)},
    )


def _as_dicom(source: Path, target: Path, day: date) -> Path:
    tags = RadiographTags("P1", "male", 60, day, time(9, 0), "CR", "AP", False, "Chest radiograph")
    write_radiograph(source, target, tags, dicom_uids(target.stem))
    return target


def test_compare_radiographs_runs_from_the_cli_on_png_jpeg_and_dicom(tmp_path: Path):
    jpeg = tmp_path / "later.jpg"
    Image.open(LATER).convert("L").save(jpeg, quality=95)
    prior_dicom = _as_dicom(FILM, tmp_path / "prior.dcm", date(2020, 3, 2))
    current_dicom = _as_dicom(LATER, tmp_path / "current.dcm", date(2020, 3, 6))
    results = {}
    for name, current, prior in (("png", LATER, FILM), ("jpeg", jpeg, FILM), ("dicom", current_dicom, prior_dicom)):
        run = _tool_run({"current": str(current), "prior": str(prior)}, tmp_path / name)
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        results[name] = json.loads(run.stdout)
        assert isinstance(results[name]["change_score"], float) and len(results[name]["zones"]) == 6
        assert results[name]["noise_floor"] > 0 and Path(results[name]["overlay_png"]).is_file()
    assert results["png"]["interval_days"] is None  # no dates given, none in a PNG
    assert results["dicom"]["interval_days"] == 4  # from the files' StudyDate
    assert results["dicom"]["prior_date"] == "2020-03-02"
    assert abs(results["jpeg"]["change_score"] - results["png"]["change_score"]) < 5  # JPEG loses little


def test_compare_radiographs_refuses_what_is_not_a_chest_film(tmp_path: Path):
    photo = tmp_path / "photo.png"
    y, x = np.mgrid[0:300, 0:400]
    Image.fromarray(np.stack([x * 255 // 400, y * 255 // 300, np.full_like(x, 128)], -1).astype(np.uint8)).save(photo)
    run = _tool_run({"current": str(photo), "prior": str(FILM)}, tmp_path)
    assert run.returncode == 1
    assert "colour image" in json.loads(run.stdout)["error"]


def test_the_archive_finds_a_study_by_uid_and_skips_unreadable_files(tmp_path: Path):
    film = _as_dicom(FILM, tmp_path / "archive" / "a" / "film.dcm", date(2020, 3, 2))
    (tmp_path / "archive" / "broken.dcm").write_bytes(b"not dicom at all")
    uid = dicom_uids("film").study
    assert find_study(uid, [tmp_path / "nowhere", tmp_path / "archive"]) == film.resolve()
    assert find_study("2.25.1", [tmp_path / "archive"]) is None


def _imaging_state(tmp_path: Path, studies: list[dict], priors: list[dict] | None = None) -> dict:
    def record(tool: str, args: dict, result: dict) -> ToolRecord:
        return ToolRecord(id=f"{tool}:1", tool=tool, args=args, ok=True, result=result,
                          started_at="2026-12-01T00:00:00Z", duration_s=0.1)

    return {
        "case": Case(id="c", patient="p", images=[str(LATER)], as_of=date(2020, 3, 6), priors=priors or []),
        "tool_records": [
            record("load_image", {"path": str(LATER)}, {"path": str(LATER), "summary": "png"}),
            record("fhir_imaging_studies", {"patient_id": "p"}, {"summary": "studies", "studies": studies}),
        ],
    }


def _study(day: str, uid: str, ref: str) -> dict:
    return {"resource": f"ImagingStudy/{ref}", "started": f"{day}T09:00:00Z", "status": "available",
            "modalities": ["CR"], "body_sites": ["Chest"], "description": None, "series": 1, "instances": 1,
            "study_uid": uid}


async def test_the_consult_compares_with_the_latest_earlier_exam_the_archive_holds(tmp_path: Path):
    from medconsult.graphs.radiology import find_priors

    _as_dicom(FILM, tmp_path / "archive" / "day0.dcm", date(2020, 3, 2))
    runtime = SimpleNamespace(context=SimpleNamespace(settings=Settings(image_archive=[tmp_path / "archive"])))
    studies = [
        _study("2020-03-06", dicom_uids("today").study, "today"),  # the case's own day: not a prior
        _study("2020-03-05", dicom_uids("missing").study, "missing"),  # later than the one found, not archived
        _study("2020-03-02", dicom_uids("day0").study, "day0"),
        _study("2020-02-20", dicom_uids("older").study, "older"),  # older than the one found: no gap
    ]
    found = await find_priors(_imaging_state(tmp_path, studies), runtime)
    assert [(p.date, p.source) for p in found["priors"]] == [("2020-03-02", "ImagingStudy/day0")]
    assert Path(found["priors"][0].path).name == "day0.dcm"
    assert [g.what for g in found["gaps"]] == ["prior exam of 2020-03-05"]
    assert "not in the image archive" in found["gaps"][0].reason


async def test_a_prior_given_with_the_case_is_used_without_a_record(tmp_path: Path):
    from medconsult.graphs.radiology import find_priors

    runtime = SimpleNamespace(context=SimpleNamespace(settings=Settings(image_archive=[tmp_path])))
    state = _imaging_state(tmp_path, [], priors=[{"path": str(FILM), "date": "2020-03-02"}])
    found = await find_priors(state, runtime)
    assert [(p.path, p.date, p.source) for p in found["priors"]] == [(str(FILM), "2020-03-02", "given with the case")]


@pytest.mark.parametrize("folders", [[], ["missing-folder"]])
def test_an_empty_archive_finds_nothing(tmp_path: Path, folders: list[str]):
    assert find_study(dicom_uids("x").study, [tmp_path / f for f in folders]) is None


def test_worsening_is_an_icu_admission_after_the_earlier_film_or_a_fall_in_po2():
    from medconsult.evals.change_validation import Film, worsened

    def film(day: int, icu: int | None = None, po2: float | None = None) -> Film:
        return Film("p", f"i{day}", Path("x.png"), day, day, icu, po2)

    assert worsened(film(0, icu=5), film(3, icu=5)) == (True, "ICU admission on day 5")  # within 3 days after
    assert not worsened(film(0, icu=7), film(3, icu=7))[0]  # 4 days after the later film: too late
    assert not worsened(film(2, icu=2), film(4, icu=2))[0]  # already in the ICU at the earlier film
    assert worsened(film(0, po2=80), film(2, po2=70)) == (True, "pO2 80 -> 70 mmHg")
    assert not worsened(film(0, po2=80), film(2, po2=75))[0] and not worsened(film(0), film(2, po2=40))[0]


def test_the_noise_floor_is_the_repeatability_of_same_day_pairs():
    from medconsult.evals.change_validation import discrimination, noise_floor

    repeat = [{"patient": p, "change_score": s, "zone_opacity_changes": [s, -s], "measured": True}
              for p, s in (("a", 1.0), ("a", -1.0), ("b", 3.0), ("c", -3.0))]
    floor = noise_floor(repeat, "set")
    assert floor.change_score == round(1.96 * float(np.std([1, -1, 3, -3], ddof=1)), 1) and floor.patients == 3
    assert noise_floor(repeat[:2], "set") is None  # too few pairs to say
    interval = [{"patient": str(i), "change_score": float(i), "worsened": i >= 5} for i in range(10)]
    figures = discrimination(interval, bootstrap=200)
    assert figures["auc"] == 1.0 and figures["worsened"] == 5 and figures["patients"] == 10


def test_a_comparison_not_interpretable_states_no_zone_change():
    from medconsult.tools.imaging.compare_radiographs import CompareResult, ZoneChangeResult

    zone = ZoneChangeResult(side="left", zone="lower", opacity_prior_pct=10, opacity_current_pct=60, opacity_change=50,
                            density_change_pct=20, beyond_noise=False)
    result = CompareResult(
        summary="s", current="c.png", prior="p.png", current_date=date(2020, 3, 6), prior_date=date(2020, 3, 2),
        interval_days=4, zones=[zone], area_change_pct={"right": -40.0, "left": 2.0}, change_score=8.3,
        noise_floor=20.5, zone_noise=25.8, verdict="not interpretable (segmentation caution)",
        cautions=["current film: one lung field is 27% of the other's area"], new_opacities=[], cleared=[],
        reliability="AUC 0.53", overlay_png="o.png")
    [only] = result.evidence()
    assert "not interpretable" in only.text and "Caution: current film: one lung field" in only.text
    assert result.steady  # the draft may not call it worse or better
    moved = zone.model_copy(update={"beyond_noise": True})
    assert result.model_copy(update={"verdict": "within noise"}).steady
    assert not result.model_copy(update={"verdict": "within noise", "zones": [moved]}).steady
    assert not result.model_copy(update={"verdict": "worse", "cautions": []}).steady
