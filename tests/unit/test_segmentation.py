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
    NoLungsFound,
    content_box,
    load_segmenter,
)
from medconsult.imaging.train_seg import TrainConfig, evaluate, train
from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.segment_lungs import SegmentLungsResult, SegmentLungsTool

SEG_DATA = DATA_DIR / "seg_lung_v7_ccby"
HANNOVER = sorted((DATA_DIR / "cxr_hannover_covid" / "png").glob("*.png"))


def _recorded() -> tuple[dict, dict]:
    metadata = json.loads((DEFAULT_BUNDLE / "configs" / "metadata.json").read_text())
    return metadata, json.loads((DEFAULT_BUNDLE / "configs" / "cross_validation.json").read_text())


def test_model_card_records_the_training_data_and_the_cross_validated_dice():
    metadata, cv = _recorded()
    figures = cv["cross_validation"]
    assert cv["folds"] == 5 and figures["patients"] == 40 and figures["images"] == 68
    assert figures["dice_mean"] >= 0.95 and figures["dice_min"] >= 0.90  # on unseen patients
    assert cv["candidates"] == metadata["training"]["selection"]["candidates"]
    assert metadata["training"]["selection"]["chosen"] in cv["candidates"]
    assert metadata["training"]["data"].startswith("seg_lung_v7_ccby") and "ncsa" not in metadata["training"]["data"]
    assert "NC" not in json.dumps(metadata["training"]["licences"])  # the default bundle is permissive only
    assert (DEFAULT_BUNDLE / "models" / "model.pt").stat().st_size < 8 * 2**20
    assert "Not a medical device" in metadata["intended_use"]


def test_inference_settings_are_values_in_inference_json():
    inference = json.loads((DEFAULT_BUNDLE / "configs" / "inference.json").read_text())
    segmenter = load_segmenter()
    assert (segmenter.input_size, segmenter.threshold, segmenter.mirror) == (
        inference["spatial_size"], inference["threshold"], inference["mirror_averaging"])
    assert segmenter.zoom_out == inference.get("zoom_out_margins", [0.0])


def test_the_card_states_the_recorded_figures():
    metadata, cv = _recorded()
    card = (DEFAULT_BUNDLE / "docs" / "README.md").read_text()
    figures = cv["cross_validation"]
    assert f"Mean Dice {figures['dice_mean']} (95% CI {figures['dice_95ci'][0]}-{figures['dice_95ci'][1]}" in card
    assert f"worst image {figures['dice_min']} ({figures['worst_image']})" in card
    for row in cv["per_image"]:
        assert f"| {row['image']} | {row['patient']} | {row['fold'] + 1} | {row['dice']} |" in card
    if metadata.get("external"):
        assert f"mean Dice {metadata['external']['dice_mean']}, worst {metadata['external']['dice_min']}" in card
    assert f"mean Dice {cv['external']['dice_mean']}" in card


@pytest.mark.skipif(not (DATA_DIR / "seg_lung_v7_ncsa").is_dir(), reason="the non-commercial pairs are optional")
def test_the_external_figure_reproduces():
    metadata, _ = _recorded()
    scores = evaluate(DEFAULT_BUNDLE, DATA_DIR / "seg_lung_v7_ncsa")
    assert scores["per_image"] == metadata["external"]["per_image"]
    assert (scores["dice_mean"], scores["dice_min"]) == (
        metadata["external"]["dice_mean"], metadata["external"]["dice_min"])


def test_a_cross_validation_fold_reproduces():
    """Retrain the fold with the fewest training images as its selection chose: the held-out
    Dice of the card comes back (training is deterministic on the CPU)."""
    from medconsult.imaging.seg_cv import measure, patient_folds
    from medconsult.imaging.train_seg import fit, load_pairs, segmenter_of

    _, cv = _recorded()
    pairs = load_pairs(SEG_DATA)
    folds = patient_folds(pairs, cv["folds"], cv["seed"])
    index = max(range(len(folds)), key=lambda i: len(folds[i]))
    training = [p for p in pairs if p not in folds[index]]
    configs = tuple(TrainConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in member.items()})
                    for member in cv["candidates"][cv["per_fold"][index]["chosen"]])
    networks = [fit(training, config, log=lambda *_: None)[0] for config in configs]
    measured = {row["image"]: row["dice"] for row in measure(segmenter_of(networks, configs), folds[index])}
    recorded = {row["image"]: row["dice"] for row in cv["per_image"] if row["fold"] == index}
    assert measured.keys() == recorded.keys()
    assert max(abs(measured[name] - recorded[name]) for name in measured) <= 0.002


def test_training_is_deterministic(tmp_path: Path):
    candidates = {"one epoch": (dataclasses.replace(TrainConfig(), epochs=1),)}
    for run in ("a", "b"):
        train([SEG_DATA], tmp_path / run, candidates, log=lambda *_: None)
    first, second = (torch.load(tmp_path / run / "models" / "model.pt") for run in ("a", "b"))
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.skipif(not (DATA_DIR / "seg_lung_v7_ncsa").is_dir(), reason="the non-commercial pairs are optional")
def test_the_noncommercial_bundle_states_its_licence_and_is_selectable(tmp_path: Path, monkeypatch):
    bundle = tmp_path / "lung_unet_ncsa"
    result = CliRunner().invoke(app, ["seg", "train", "--noncommercial", "--epochs", "1",
                                      "--bundle", str(bundle)])
    assert result.exit_code == 0, result.output
    metadata = json.loads((bundle / "configs" / "metadata.json").read_text())
    assert metadata["training"]["images"] == 68 + 48 and "seg_lung_v7_ncsa" in metadata["training"]["data"]
    assert "CC BY-NC-SA 4.0" in metadata["training"]["licences"]["images"]
    assert "NON-COMMERCIAL USE ONLY" in (bundle / "docs" / "README.md").read_text()
    monkeypatch.setenv("MEDCONSULT_SEG_BUNDLE", str(bundle))
    assert load_segmenter(Settings().seg_bundle).bundle == bundle


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
    try:  # grey, contrasty, not a chest: no two lungs (refused), or masks that are flagged
        result = tool.invoke({"image": str(gradient)})
    except NoLungsFound as refusal:
        assert "a frontal chest radiograph shows two" in str(refusal)
    else:
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
    """Two folds on a few patients, two one-epoch candidates chosen between inside each: the plumbing, not the
    figures."""
    from medconsult.imaging import seg_cv
    from medconsult.imaging.train_seg import load_pairs

    few = tmp_path / "few"
    shutil.copytree(SEG_DATA, few)
    rows = (few / "manifest.csv").read_text().splitlines()
    (few / "manifest.csv").write_text("\n".join(rows[:9]) + "\n")
    plain = dataclasses.replace(TrainConfig(), epochs=1)
    opacity = dataclasses.replace(plain, opacity_probability=1.0)
    candidates = {"plain": (plain,), "opacity": (opacity,), "both": (plain, opacity)}
    result = seg_cv.cross_validate(few, candidates, k=2, external=few, log=lambda *_: None)
    assert result["cross_validation"]["images"] == len(load_pairs(few)) == 8
    for fold in result["per_fold"]:  # chosen on the fold's own training patients, by the higher inner Dice
        inner = fold["selection"]
        assert set(inner) == {"plain", "opacity", "both"} and fold["chosen"] == max(
            inner, key=lambda name: (inner[name]["dice_mean"], inner[name]["dice_min"]))
        assert not set(inner["plain"]["per_image"]) & {r["image"] for r in result["per_image"]
                                                       if r["fold"] == result["per_fold"].index(fold)}
    assert {r["fold"] for r in result["per_image"]} == {0, 1}
    assert result["external"]["images"] == 16  # every image, by each of the two fold networks
    calibration = result["warnings"]
    assert calibration["poor_images"] + calibration["good_images"] == 8


def test_synthetic_consolidation_whitens_around_the_lung_and_keeps_the_labels():
    from medconsult.imaging.train_seg import _opacify

    labels = torch.zeros(4, 1, 64, 64)
    labels[:, :, 16:48, 8:28] = 1  # one "lung" per image
    images = torch.full((4, 1, 64, 64), 0.3)
    generator = torch.Generator().manual_seed(0)
    opacified = _opacify(images.clone(), labels, 1.0, generator)
    change = opacified - images
    assert (change >= 0).all() and (opacified <= 1).all()  # only ever towards white
    for index in range(4):  # each image got blobs, centred on its lung
        assert change[index, 0, 16:48, 8:28].max() > 0.05
        assert change[index, 0, 16:48, 8:28].mean() > change[index, 0, :, 40:].mean()
    assert torch.equal(_opacify(images.clone(), labels, 0.0, generator), images)  # probability 0: untouched


def test_textured_consolidation_lifts_the_grey_and_keeps_the_fine_structure():
    """The ensemble's second network is trained with consolidation that keeps vessels and ribs visible on top of the
    lifted grey (ground glass), where the whitening kind flattens them."""
    from medconsult.imaging.train_seg import _opacify

    labels = torch.zeros(2, 1, 128, 128)
    labels[:, :, 32:96, 16:56] = 1
    stripes = 0.3 + 0.1 * torch.sin(torch.arange(128) * 1.5)  # fine structure, 4 px period
    images = stripes.view(1, 1, 1, 128).repeat(2, 1, 128, 1)
    whitened = _opacify(images.clone(), labels, 1.0, torch.Generator().manual_seed(0))
    textured = _opacify(images.clone(), labels, 1.0, torch.Generator().manual_seed(0), keep_texture=True)

    lung = (slice(None), slice(None), slice(32, 96), slice(16, 55))
    lifted = (textured - images)[lung] > 0.1  # where the blobs lifted the grey

    def detail(picture: torch.Tensor) -> float:  # the stripes' amplitude there, column to column
        return float((picture[..., 1:] - picture[..., :-1]).abs()[lung][lifted].mean())

    assert lifted.sum() > 100
    assert detail(textured) > 0.9 * detail(images)
    assert detail(whitened) < 0.8 * detail(images)


def test_a_film_framed_in_black_is_segmented_as_the_film_itself(segmenter: LungSegmenter):
    """A figure letterboxed in black (one of the external pairs is framed so): the network sees the film, not the
    frame, and the masks are the unframed film's, placed back."""
    pixels = np.asarray(Image.open(HANNOVER[0]).convert("L"), dtype=np.float32)
    framed = np.zeros((pixels.shape[0] * 2, pixels.shape[1] + 300), dtype=np.float32)
    framed[200 : 200 + pixels.shape[0], 150 : 150 + pixels.shape[1]] = pixels
    plain, boxed = segmenter.segment(pixels), segmenter.segment(framed)
    inside = boxed.lungs[200 : 200 + pixels.shape[0], 150 : 150 + pixels.shape[1]]
    assert boxed.lungs.sum() == inside.sum()  # nothing in the frame
    assert 2 * (inside & plain.lungs).sum() / (inside.sum() + plain.lungs.sum()) > 0.98


def test_a_cross_validation_of_another_procedure_is_not_recorded(tmp_path: Path):
    from medconsult.imaging.train_seg import record_cross_validation

    bundle = tmp_path / "lung_unet"
    shutil.copytree(DEFAULT_BUNDLE, bundle)
    _, cv = _recorded()
    other = {**cv, "candidates": {"something else": cv["candidates"][next(iter(cv["candidates"]))]}}
    with pytest.raises(ValueError, match="retrain or rerun the cross-validation"):
        record_cross_validation(bundle, other)
    record_cross_validation(bundle, cv)  # its own is
    assert (bundle / "docs" / "README.md").read_text() == (DEFAULT_BUNDLE / "docs" / "README.md").read_text()


def test_an_ensemble_bundle_averages_its_networks_logits():
    from monai.bundle import ConfigParser

    from medconsult.imaging.train_seg import network_definition, segmenter_of

    config = TrainConfig()
    networks = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        networks.append(ConfigParser({"net": network_definition(config)}).get_parsed_content("net").eval())
    ensemble = segmenter_of(networks, (config, config))
    assert len(ensemble.networks) == 2 and not torch.equal(
        next(ensemble.networks[0].parameters()), next(ensemble.networks[1].parameters()))
    pixels = np.asarray(Image.open(HANNOVER[0]).convert("L"), dtype=np.float32)
    members = [segmenter_of([network], (config,)) for network in networks]
    logits = [np.log(m.probability(pixels) + 1e-7) - np.log(1 - m.probability(pixels) + 1e-7) for m in members]
    expected = 1 / (1 + np.exp(-(logits[0] + logits[1]) / 2))
    box = content_box(pixels)
    assert np.allclose(ensemble.probability(pixels)[box], expected[box], atol=2e-3)


def test_the_zoom_out_view_is_put_back_in_place():
    """A network whose logits are its input (scaled): the film's view and its shrunk view, cropped back, must give
    the same picture; a misplaced crop would shift or scale it."""
    pixels = np.asarray(Image.open(HANNOVER[0]).convert("L"), dtype=np.float32)
    pixel_logits = _StandIn()
    plain, zoomed = (LungSegmenter(DEFAULT_BUNDLE) for _ in range(2))
    for member, margins in ((plain, [0.0]), (zoomed, [0.1])):
        member.networks, member.zoom_out, member.mirror = [pixel_logits], margins, False
    box = content_box(pixels)
    inner = tuple(slice(s.start + (s.stop - s.start) // 8, s.stop - (s.stop - s.start) // 8) for s in box)
    a, b = plain.probability(pixels)[inner], zoomed.probability(pixels)[inner]
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.95
    assert np.abs(a - b).mean() < 0.05


class _StandIn(torch.nn.Module):
    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return (image - 0.5) * 8
