from __future__ import annotations

import csv
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA_DIR
from medconsult.fusion.finetune import TrainConfig
from medconsult.fusion.image_cv import compare_configs, default_configs
from medconsult.fusion.image_encoder import RadiographEncoder, as_grey
from medconsult.fusion.paediatric import FOLDER
from medconsult.fusion.trunk_cache import input_pixels, trunk_outputs

KERMANY = DATA_DIR / FOLDER


def _small_set(tmp_path: Path, per_class: int = 8) -> Path:
    """A few real paediatric images per class, one patient each, in the data set's layout."""
    with (KERMANY / "manifest.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen, patients = [], set()
    for label in ("normal", "bacterial", "viral"):
        picked = [row for row in rows if row["label"] == label and row["patient"] not in patients][:per_class]
        patients |= {row["patient"] for row in picked}
        chosen += picked
    folder = tmp_path / FOLDER
    (folder / "images").mkdir(parents=True)
    for row in chosen:
        shutil.copy(KERMANY / row["image"], folder / row["image"])
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(chosen[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return tmp_path


def test_the_adapted_tail_continues_the_frozen_trunk():
    encoder = RadiographEncoder(classes=3).eval()
    path = next((KERMANY / "images").iterdir())
    grey = as_grey(torch.from_numpy(input_pixels(path))[None])
    with torch.no_grad():
        trunk = encoder.trunk(grey)
        assert tuple(trunk.shape) == (1, 192, 7, 7)
        assert torch.allclose(encoder.tail(trunk), encoder.features(grey))
        assert tuple(encoder.head(encoder.tail(trunk)).shape) == (1, 3)
        assert torch.allclose(encoder.tail(trunk), encoder.adapted(encoder.bridge(trunk)))


def test_cross_validation_reports_every_figure_with_an_interval_and_caches_the_trunk(tmp_path):
    data = _small_set(tmp_path)
    configs = [replace(config, epochs=1, batch_size=8) for config in default_configs()]
    report = compare_configs(data, tmp_path / "cache", configs, folds=2, log=lambda line: None)
    assert report["data"]["images"] == 24 and report["data"]["patients"] == 24
    for result in report["results"]:
        for figure in result["metrics"].values():
            low, high = figure["ci95"]
            assert low <= figure["value"] <= high
        assert 0 <= result["precision_at_5"] <= 1
    cache = tmp_path / "cache" / "trunk-kermany.npz"
    before = cache.stat().st_mtime_ns
    from medconsult.fusion.paediatric import read_manifest

    cached = trunk_outputs(read_manifest(data).files, cache, log=lambda line: pytest.fail("recomputed"))
    assert cached.activations.dtype == np.float16 and cache.stat().st_mtime_ns == before  # read back, not rebuilt


def test_a_seeded_configuration_reproduces_its_figures(tmp_path):
    data = _small_set(tmp_path, per_class=6)
    config = TrainConfig(mode="tail", epochs=1, batch_size=6)
    first = compare_configs(data, tmp_path / "cache", [config], folds=2, log=lambda line: None)
    second = compare_configs(data, tmp_path / "cache", [config], folds=2, log=lambda line: None)
    assert first["results"][0]["metrics"] == second["results"][0]["metrics"]


def test_a_trained_bundle_stores_only_the_tail_and_loads_back_to_the_same_predictions(tmp_path):
    from medconsult.fusion.bundle import WEIGHTS, load_encoder, train_bundle
    from medconsult.fusion.paediatric import read_manifest

    data = _small_set(tmp_path, per_class=6)
    images = read_manifest(data)
    trunk = trunk_outputs(images.files, tmp_path / "trunk.npz", log=lambda line: None)
    bundle = tmp_path / "bundle"
    metadata = train_bundle(images, trunk, TrainConfig(mode="tail", epochs=1, batch_size=6), bundle)
    assert (bundle / WEIGHTS).stat().st_size < 8 * 1024 * 1024
    assert metadata["calibration"]["temperature"] > 0
    encoder = load_encoder(bundle)
    features, probabilities = encoder.embed_and_classify(images.files[:3])
    assert features.shape == (3, 1280) and np.allclose(probabilities.sum(axis=1), 1)
    assert encoder.classes == ("normal", "bacterial", "viral")
    again = load_encoder(bundle).embed_and_classify(images.files[:3])[1]
    assert np.allclose(probabilities, again)


def test_predict_writes_one_row_per_radiograph_and_abstains_where_no_estimator_speaks(tmp_path):
    from medconsult.config import Settings
    from medconsult.fusion.predict import predict_folder, write_csv
    from medconsult.fusion.service import FusionService

    folder = tmp_path / "films"
    folder.mkdir()
    for path in sorted((KERMANY / "images").iterdir())[:3]:
        shutil.copy(path, folder / path.name)
    (folder / "broken.png").write_bytes(b"not an image")
    service = FusionService(Settings(index_dir=tmp_path / "no-library"))
    assert write_csv(predict_folder(folder, "paediatric", service), tmp_path / "kids.csv") == 4
    rows = list(csv.DictReader((tmp_path / "kids.csv").open()))
    assert rows[0]["abstained"] == "true" and "unreadable" in rows[0]["reason"]  # broken.png sorts first
    for row in rows[1:]:
        assert sum(float(row[name]) for name in ("normal", "bacterial", "viral")) == pytest.approx(1, abs=1e-3)
        assert row["covid19"] == row["fungal"] == row["other"] == ""  # not estimated: empty, never 0
        assert row["abstained"] == "false" or "insufficient evidence" in row["reason"]
    write_csv(predict_folder(folder, "adult", service), tmp_path / "adults.csv")
    adults = list(csv.DictReader((tmp_path / "adults.csv").open()))
    assert len(adults) == 4
    for row in adults[1:]:  # the adult head: its own classes, never the paediatric model's normal
        assert row["normal"] == row["other"] == ""
        assert sum(float(row[c]) for c in ("bacterial", "viral", "covid19", "fungal")) == pytest.approx(1, abs=1e-3)
    write_csv(predict_folder(folder, None), tmp_path / "unknown.csv")
    unknown = list(csv.DictReader((tmp_path / "unknown.csv").open()))
    assert all(row["abstained"] == "true" and "population" in row["reason"] for row in unknown)
