"""The fusion tools on real radiographs, through `medconsult tools run`, with a real (embedded) Chroma library.

The library here holds the adult sets only (Hannover and, when present, ieee8023: a few hundred images, seconds to
embed); `make index` builds the full one with the paediatric set.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conftest import DATA_DIR
from medconsult.cli import app

pytestmark = pytest.mark.integration

HANNOVER_PNG = next(iter(sorted((DATA_DIR / "cxr_hannover_covid" / "png").glob("*.png"))), None)
KERMANY_JPEG = next(iter(sorted((DATA_DIR / "cxr_kermany_pediatric_ccby" / "images").rglob("*.jp*g"))), None)
DICOM = DATA_DIR / "dicom_cxr_samples" / "rsna_pneumonia_16d7f894.dcm"
CLASSES = ("normal", "bacterial", "viral", "covid19", "covid-19", "fungal", "other")


def _env(index_dir: Path) -> dict[str, str]:
    return {"MEDCONSULT_INDEX_DIR": str(index_dir), "MEDCONSULT_DATA_DIR": str(DATA_DIR)}


def _run_tool(name: str, args: dict, index_dir: Path, tmp_path: Path) -> dict:
    result = CliRunner().invoke(
        app, ["tools", "run", name, "--args", json.dumps(args), "--out", str(tmp_path)], env=_env(index_dir)
    )
    assert result.exit_code == 0, result.output
    start = result.output.index("{")
    return json.loads(result.output[start:])


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("index")
    build = ["index", "build", "--sources", "hannover,ieee8023"]
    first = CliRunner().invoke(app, build, env=_env(folder))
    assert first.exit_code == 0, first.output
    again = CliRunner().invoke(app, build, env=_env(folder))  # idempotent: nothing to redo
    assert again.exit_code == 0 and "is complete" in again.output, again.output
    return folder


def test_an_adult_radiograph_without_a_population_abstains(index_dir: Path, tmp_path: Path):
    result = _run_tool("etiology_estimate", {"image": str(HANNOVER_PNG)}, index_dir, tmp_path)
    assert result["abstained"] and "population unknown" in result["reason"]
    assert all(p is None for p in result["probabilities"].values())


def test_an_adult_estimate_comes_from_the_adult_head_with_its_validation(index_dir: Path, tmp_path: Path):
    args = {"image": str(HANNOVER_PNG), "population": "adult"}
    result = _run_tool("etiology_estimate", args, index_dir, tmp_path)
    assert result["population"] == "adult" and result["modalities"] == ["image"]
    given = {c: p for c, p in result["probabilities"].items() if p is not None}
    assert given and sum(given.values()) == pytest.approx(1.0, abs=1e-3)
    assert "normal" not in given  # too few adult normal cases to learn: left empty, not written as 0
    assert result["model"].startswith("latent_space") and "cross-validation" in result["validation"]
    assert result["nearest_similarity"] is not None  # checked against the library


def test_a_paediatric_estimate_reads_the_paediatric_classifier(index_dir: Path, tmp_path: Path):
    args = {"image": str(KERMANY_JPEG), "population": "paediatric"}
    result = _run_tool("etiology_estimate", args, index_dir, tmp_path)
    given = {c: p for c, p in result["probabilities"].items() if p is not None}
    assert set(given) == {"normal", "bacterial", "viral"}
    assert sum(given.values()) == pytest.approx(1.0, abs=1e-3)
    assert result["model"] == "radiograph_encoder" and "bacterial vs viral auc" in result["validation"]


def test_a_dicom_radiograph_is_estimated_too(index_dir: Path, tmp_path: Path):
    result = _run_tool("etiology_estimate", {"image": str(DICOM), "population": "adult"}, index_dir, tmp_path)
    assert result["image"].endswith(".dcm") and result["modalities"] == ["image"]


def test_similar_cases_never_return_the_query_image_and_vote_on_labels(index_dir: Path, tmp_path: Path):
    args = {"image": str(HANNOVER_PNG), "population": "adult", "k": 5}
    result = _run_tool("similar_cases", args, index_dir, tmp_path)
    assert len(result["cases"]) == 5 and sum(result["vote"].values()) == 5
    assert result["excluded_same_image"] == 1  # the query is itself a reference case
    assert all(c["population"] == "adult" for c in result["cases"])
    similarities = [c["similarity"] for c in result["cases"]]
    assert similarities == sorted(similarities, reverse=True) and similarities[0] < 0.9995


def test_a_corrupt_file_is_a_clear_error(index_dir: Path, tmp_path: Path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes(b"DICM" + b"\0" * 64)
    result = CliRunner().invoke(
        app, ["tools", "run", "etiology_estimate", "--args", json.dumps({"image": str(broken)})], env=_env(index_dir)
    )
    assert result.exit_code != 0
    assert "broken.dcm" in result.output
