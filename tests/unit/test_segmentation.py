"""The bundled lung-segmentation model: its card, its measured Dice, and what it does on images it never saw."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from conftest import DATA_DIR
from medconsult.cli import app
from medconsult.config import Settings
from medconsult.imaging.io import NotAChestRadiograph
from medconsult.imaging.segmentation import (
    DEFAULT_BUNDLE,
    BundleRejected,
    ImageTooSmall,
    LungSegmenter,
    load_segmenter,
)
from medconsult.imaging.train_seg import TrainConfig, evaluate, train
from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.segment_lungs import SegmentLungsResult, SegmentLungsTool

SEG_DATA = DATA_DIR / "seg_lung_v7_ccby"
HANNOVER = sorted((DATA_DIR / "cxr_hannover_covid" / "png").glob("*.png"))


def test_model_card_records_the_training_data_and_validation_dice():
    metadata = json.loads((DEFAULT_BUNDLE / "configs" / "metadata.json").read_text())
    validation = metadata["validation"]
    assert validation["command"] == "medconsult seg evaluate"
    assert validation["dice_mean"] >= 0.95 and validation["patients"] >= 5
    assert "CC BY 4.0" in json.dumps(metadata["training"]["licences"])
    assert (DEFAULT_BUNDLE / "models" / "model.pt").stat().st_size < 8 * 2**20
    assert (DEFAULT_BUNDLE / "docs" / "README.md").read_text().count(str(validation["dice_mean"])) >= 1
    assert "Not a medical device" in metadata["intended_use"]


def test_inference_settings_are_values_in_inference_json():
    inference = json.loads((DEFAULT_BUNDLE / "configs" / "inference.json").read_text())
    segmenter = load_segmenter()
    assert (segmenter.input_size, segmenter.threshold, segmenter.mirror) == (
        inference["spatial_size"], inference["threshold"], inference["mirror_averaging"])


def test_evaluation_command_reproduces_the_card():
    scores = evaluate(DEFAULT_BUNDLE, SEG_DATA)
    validation = json.loads((DEFAULT_BUNDLE / "configs" / "metadata.json").read_text())["validation"]
    assert (scores["dice_mean"], scores["dice_min"], scores["images"]) == (
        validation["dice_mean"], validation["dice_min"], validation["images"])


def test_training_is_deterministic(tmp_path: Path):
    config = dataclasses.replace(TrainConfig(), epochs=1)
    for run in ("a", "b"):
        train(SEG_DATA, tmp_path / run, config, log=lambda *_: None)
    first, second = (torch.load(tmp_path / run / "models" / "model.pt") for run in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.fixture(scope="module")
def segmenter() -> LungSegmenter:
    return LungSegmenter(DEFAULT_BUNDLE)


def test_unseen_radiographs_give_two_plausible_lungs(segmenter: LungSegmenter):
    for path in HANNOVER[:5]:
        pixels = np.asarray(Image.open(path).convert("L"), dtype=np.float32)
        masks = segmenter.segment(pixels)
        assert 0.1 < masks.lungs.mean() < 0.6
        assert np.nonzero(masks.right)[1].mean() < np.nonzero(masks.left)[1].mean()


def test_a_picture_without_lungs_is_refused_or_flagged(tmp_path: Path):
    tool = SegmentLungsTool(context=ToolContext(Settings(), work_dir=tmp_path))
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((400, 400), 90, dtype=np.uint8)).save(flat)
    with pytest.raises(NotAChestRadiograph, match="no contrast"):
        tool.invoke({"image": str(flat)})
    y, x = np.mgrid[0:400, 0:400]
    gradient = tmp_path / "gradient.png"
    Image.fromarray(((x + y) / 800 * 255).astype(np.uint8)).save(gradient)
    result = tool.invoke({"image": str(gradient)})  # grey, contrasty, not a chest: the masks are flagged
    assert result["warnings"] and "caution" in result["summary"]
    assert SegmentLungsResult.model_validate(result).evidence()[0].text.startswith("segmentation caution")


def test_a_thumbnail_is_refused_with_the_reason(tmp_path: Path, segmenter: LungSegmenter):
    """The Kermany set's 224-px squashed images: masks drawn on them would be the resampling's, not the lungs'."""
    tool = SegmentLungsTool(context=ToolContext(Settings(), work_dir=tmp_path))
    thumbnail = DATA_DIR / "cxr_kermany_pediatric_ccby" / "images" / "k-00001.jpeg"
    assert min(Image.open(thumbnail).size) < segmenter.input_size
    with pytest.raises(ImageTooSmall, match=r"224x224 px is too small for the lung segmentation.*no lung areas"):
        tool.invoke({"image": str(thumbnail)})
    small = tmp_path / "small.png"
    Image.open(HANNOVER[0]).convert("L").resize((segmenter.input_size,) * 2).save(small)
    assert tool.invoke({"image": str(small)})["right_area"] > 0  # at the limit: segmented


def test_real_radiographs_raise_no_caution(segmenter: LungSegmenter):
    for path in HANNOVER[:5]:
        masks = segmenter.segment(np.asarray(Image.open(path).convert("L"), dtype=np.float32))
        assert masks.quality_warnings() == []


def test_cli_segments_any_chest_radiograph(tmp_path: Path):
    source = DATA_DIR / "dicom_cxr_samples" / "rsna_pneumonia_16d7f894.dcm"
    result = CliRunner().invoke(app, ["tools", "run", "segment_lungs", "--args", json.dumps({"image": str(source)}),
                                      "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    output = json.loads(result.stdout)
    assert output["area_unit"] == "cm2" and output["right_area"] > 0 and output["left_area"] > 0
    for key in ("right_mask_png", "left_mask_png", "overlay_png"):
        assert Image.open(output[key]).size == (1024, 1024)


@pytest.mark.parametrize("planted", [
    {"_target_": "os.system", "command": "touch /tmp/owned"},
    {"_target_": "monai.networks.nets.UNet", "spatial_dims": "$__import__('os').system('touch /tmp/owned')"},
    {"_target_": "monai.networks.nets.UNet", "_mode_": "callable"},
    {"_target_": "monai.networks.nets.UNet", "channels": "%/etc/passwd#x"},
])
def test_a_bundle_that_could_run_code_is_refused_before_monai_reads_it(tmp_path: Path, planted: dict):
    bundle = tmp_path / "bundle"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    inference = json.loads((bundle / "configs" / "inference.json").read_text())
    (bundle / "configs" / "inference.json").write_text(json.dumps({**inference, "network_def": planted}))
    with pytest.raises(BundleRejected):
        LungSegmenter(bundle)
    assert not Path("/tmp/owned").exists()


def test_cross_validation_holds_out_every_patient_once():
    from medconsult.imaging.seg_cv import patient_folds
    from medconsult.imaging.train_seg import load_pairs

    pairs = load_pairs(SEG_DATA)
    folds = patient_folds(pairs, 5, seed=1)
    groups = [{p.group for p in fold} for fold in folds]
    assert sum(len(fold) for fold in folds) == len(pairs)
    assert all(not (a & b) for i, a in enumerate(groups) for b in groups[i + 1:])  # a patient in one fold only
    assert max(map(len, groups)) - min(map(len, groups)) <= 1
    assert patient_folds(pairs, 5, seed=1) == folds


def test_a_cross_validation_run_measures_every_image_and_the_warnings(tmp_path: Path):
    """Two folds of one epoch on a few patients: the plumbing, not the figures."""
    from medconsult.imaging import seg_cv
    from medconsult.imaging.train_seg import load_pairs

    few = tmp_path / "few"
    shutil.copytree(SEG_DATA, few)
    rows = (few / "manifest.csv").read_text().splitlines()
    (few / "manifest.csv").write_text("\n".join(rows[:9]) + "\n")
    config = dataclasses.replace(TrainConfig(), epochs=1)
    result = seg_cv.cross_validate(few, config, k=2, external=few, log=lambda *_: None)
    assert result["cross_validation"]["images"] == len(load_pairs(few)) == 8
    assert {r["fold"] for r in result["per_image"]} == {0, 1}
    assert result["external"]["images"] == 16  # every image, by each of the two fold networks
    calibration = result["warnings"]
    assert calibration["poor_images"] + calibration["good_images"] == 8
