"""Chest-radiograph checks, lung splitting, zones and radiomics findings, on data made by the tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from conftest import DATA_DIR
from medconsult.imaging import radiomics
from medconsult.imaging.io import NotAChestRadiograph, check_chest_radiograph, read_radiograph
from medconsult.imaging.segmentation import NoLungsFound, split_lungs

SAMPLES = DATA_DIR / "dicom_cxr_samples"


def _dicom_copy(tmp_path: Path, **tags: str) -> Path:
    dataset = pydicom.dcmread(SAMPLES / "rsna_pneumonia_16d7f894.dcm")
    for keyword, value in tags.items():
        setattr(dataset, keyword, value)
    path = tmp_path / "copy.dcm"
    dataset.save_as(path)
    return path


def test_real_chest_samples_pass():
    for name in ("RG1_J2KI.dcm", "rsna_pneumonia_16d7f894.dcm", "nih_00000001_000.png"):
        check_chest_radiograph(read_radiograph(SAMPLES / name))


@pytest.mark.parametrize(
    ("tags", "message"),
    [
        ({"BodyPartExamined": "HAND"}, "body part examined is HAND"),
        ({"Modality": "CT"}, "modality CT is not a projection radiograph"),
        ({"ViewPosition": "LL"}, "lateral view"),
    ],
)
def test_dicom_tags_that_are_not_a_frontal_chest_film_are_refused(tmp_path: Path, tags: dict, message: str):
    with pytest.raises(NotAChestRadiograph, match=message):
        check_chest_radiograph(read_radiograph(_dicom_copy(tmp_path, **tags)))


def test_colour_and_tiny_pictures_are_refused(tmp_path: Path):
    rng = np.random.default_rng(0)
    colour = tmp_path / "photo.png"
    Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8)).save(colour)
    with pytest.raises(NotAChestRadiograph, match="colour image"):
        check_chest_radiograph(read_radiograph(colour))
    tiny = tmp_path / "icon.png"
    Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(tiny)
    with pytest.raises(NotAChestRadiograph, match="too small"):
        check_chest_radiograph(read_radiograph(tiny))


def _two_lungs(shape=(200, 200)) -> np.ndarray:
    mask = np.zeros(shape, dtype=bool)
    mask[40:170, 20:90] = True  # image left: the patient's right lung
    mask[50:160, 110:170] = True
    mask[100:105, 50:55] = False  # a hole to fill
    return mask


def test_split_lungs_orders_sides_anatomically_and_fills_holes():
    right, left = split_lungs(_two_lungs())
    assert right[:, :100].any() and not right[:, 100:].any()
    assert left[:, 100:].any() and right[102, 52]


def test_one_region_is_not_a_chest():
    mask = np.zeros((200, 200), dtype=bool)
    mask[50:150, 50:150] = True
    with pytest.raises(NoLungsFound):
        split_lungs(mask)


def test_zones_are_thirds_of_each_lung():
    right, _ = split_lungs(_two_lungs())
    thirds = radiomics.zones(right)
    assert sum(z.sum() for z in thirds.values()) == right.sum()
    assert np.nonzero(thirds["upper"])[0].max() < np.nonzero(thirds["lower"])[0].min()


def test_findings_name_the_denser_side_with_the_numbers():
    rng = np.random.default_rng(1)
    grey = rng.integers(60, 90, (200, 200)).astype(np.uint8)
    right, left = split_lungs(_two_lungs())
    lower_right = radiomics.zones(right)["lower"]
    grey[lower_right] = rng.integers(150, 190, int(lower_right.sum()))  # an opacity in the right lower zone
    found = {f.id: f for f in radiomics.findings(radiomics.extract(grey, right, left, (0.5, 0.5)))}
    lower = found["density:lower"]
    assert (
        lower.notable
        and "right denser than left" in lower.text
        and lower.values["right"] > lower.values["left"]
    )
    assert not found["density:upper"].notable
    assert found["density:most_deviating"].text.startswith(
        "Largest left-right density difference in the lower zones"
    )
    assert "cm2" in found["area:ratio"].text


def test_touching_lungs_are_cut_at_the_waist():
    mask = _two_lungs()
    mask[150:165, 80:120] = True  # the lungs meet below the heart
    right, left = split_lungs(mask)
    assert right.sum() > 5000 and left.sum() > 5000 and not (right & left).any()
