"""The shared latent space: structured inputs, modality dropout, training, and the reference library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import DATA_DIR
from medconsult.config import Settings
from medconsult.fusion.cases import ReferenceCase, age_band, population_of
from medconsult.fusion.latent import (
    LatentConfig,
    Targets,
    _drop_modalities,
    embed,
    population_logits,
    train_latent,
)
from medconsult.fusion.library import ReferenceLibrary, build, client, is_complete
from medconsult.fusion.modalities import (
    AGE_BANDS,
    ANALYTE_SCALES,
    MEASUREMENT_DIM,
    ModalityInputs,
    measurement_vector,
)
from medconsult.importers.model import pseudonymous_mrn


def test_a_missing_value_is_flagged_not_read_as_normal():
    empty, known = measurement_vector(None, {})
    assert not known
    assert empty[len(AGE_BANDS)] == 1.0  # age unknown
    assert empty[len(AGE_BANDS) + 1 :: 2].sum() == 0  # no value ...
    assert empty[len(AGE_BANDS) + 2 :: 2].sum() == len(ANALYTE_SCALES)  # ... and every analyte flagged missing
    normal_temperature, known = measurement_vector("40-64 years", {"temperature": 37.0})
    assert known and normal_temperature[AGE_BANDS.index("40-64 years")] == 1.0
    offset = len(AGE_BANDS) + 1 + 2 * list(ANALYTE_SCALES).index("temperature")
    assert normal_temperature[offset] == 0.0 and normal_temperature[offset + 1] == 0.0  # measured, at the centre
    fever, _ = measurement_vector(None, {"temperature": 39.5, "crp": 200.0})
    assert fever[offset] == pytest.approx(2.5)
    assert fever.shape == (MEASUREMENT_DIM,)


def test_age_bands_and_populations():
    assert age_band(3) == "1-5 years" and population_of(3) == "paediatric"
    assert age_band(70) == "65+ years" and population_of(70) == "adult"
    assert age_band(None) is None and population_of(None) is None


def test_modality_dropout_keeps_one_present_modality_and_never_invents_one():
    present = {
        "image": torch.tensor([True, True, False, True]),
        "text": torch.tensor([True, False, False, False]),
        "measurements": torch.tensor([True, False, False, True]),
    }
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        kept = _drop_modalities(present, 0.9, generator)
        stacked = torch.stack([kept[m] for m in present], dim=1)
        original = torch.stack([present[m] for m in present], dim=1)
        assert not (stacked & ~original).any()  # nothing absent becomes present
        assert stacked[[0, 1, 3]].any(dim=1).all()  # a case with a modality keeps one
        assert not stacked[2].any()


def _synthetic(n: int = 120, seed: int = 0) -> tuple[ModalityInputs, np.ndarray]:
    """Three classes: the image and the text of a case both carry its class (with noise), measurements are noise."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 3
    centres = {m: rng.normal(size=(3, d)) for m, d in (("image", 32), ("text", 16), ("measurements", 8))}
    features = {m: (c[labels] * (m != "measurements") + rng.normal(scale=0.7, size=(n, c.shape[1]))).astype(np.float32)
                for m, c in centres.items()}
    present = {m: np.ones(n, dtype=bool) for m in features}
    return ModalityInputs(features, present), labels


def test_each_modality_alone_lands_near_the_fused_case_and_separates_the_classes():
    inputs, labels = _synthetic()
    train = np.arange(len(labels)) < 90
    targets = Targets({"adult": ("a", "b", "c")}, {"adult": np.where(train, labels, -1)})
    model = train_latent(inputs, targets, LatentConfig(latent=16, hidden=32, steps=150, seed=1))
    held = inputs.subset(~train)
    for view in (("image",), ("text",), ("image", "text", "measurements")):
        predicted = population_logits(model, embed(model, held.only(view)), "adult").argmax(axis=1)
        assert (predicted == labels[~train]).mean() >= 0.8, view
    image, text = embed(model, held.only(("image",))), embed(model, held.only(("text",)))
    same_case = (image * text).sum(axis=1)
    other_class = image @ text.T
    assert same_case.mean() > other_class[labels[~train][:, None] != labels[~train][None, :]].mean() + 0.3
    nothing = embed(model, held.only(()))
    assert np.allclose(nothing, 0.0)  # a case with no modality embeds as nothing, not as a guess


def test_training_is_reproducible():
    inputs, labels = _synthetic(60)
    targets = Targets({"adult": ("a", "b", "c")}, {"adult": labels})
    config = LatentConfig(latent=8, hidden=16, steps=20, seed=3)
    first, second = train_latent(inputs, targets, config), train_latent(inputs, targets, config)
    assert np.array_equal(embed(first, inputs), embed(second, inputs))


def _case(i: int, population: str, label: str, group: str) -> ReferenceCase:
    return ReferenceCase(case_id=f"c{i}", patient_group=group, source="test", population=population, label=label,
                         finding=label, image=Path(f"/nonexistent/{i}.png"))


def test_library_never_returns_the_patient_itself_and_keeps_to_the_population(tmp_path):
    settings = Settings(index_dir=tmp_path, chroma_url=None)
    chroma = client(settings)
    cases = [
        _case(0, "adult", "bacterial", "p-1"), _case(1, "adult", "bacterial", "p-1"),
        _case(2, "adult", "covid-19", "p-2"), _case(3, "paediatric", "viral", "p-3"),
        _case(4, "adult", "viral", "p-4"),
    ]
    vectors = np.array([[1, 0, 0], [0.99, 0.1, 0], [0.9, 0.3, 0], [1, 0.01, 0], [0, 0, 1]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = np.vstack([vectors[:4], np.zeros((1, 3), np.float32)])  # case 4 has no embedding: not stored
    summary = build(chroma, "v1", cases, vectors)
    assert summary["cases"] == 4 and is_complete(chroma, "v1", cases)
    assert not is_complete(chroma, "v1", cases[:3]) and not is_complete(chroma, "v2", cases)
    library = ReferenceLibrary(chroma, "v1")
    query = np.array([1.0, 0.0, 0.0])
    anyone = library.nearest(query, 3)
    assert {"c0", "c3"} <= {n.case_id for n in anyone}  # no population given: both collections searched
    adults_not_p1 = library.nearest(query, 3, population="adult", exclude_mrn=pseudonymous_mrn("p-1"))
    assert [n.case_id for n in adults_not_p1] == ["c2"]
    assert adults_not_p1[0].similarity == pytest.approx(float(vectors[2] @ query), abs=1e-4)
    assert adults_not_p1[0].label == "covid-19" and adults_not_p1[0].population == "adult"


def test_estimates_keep_to_their_population_and_abstain_without_one(tmp_path):
    from medconsult.fusion.service import CaseView, FusionService

    service = FusionService(Settings(index_dir=tmp_path / "no-library"))
    unknown = service.estimate(CaseView(history="Three days of productive cough and fever."))
    assert unknown.abstained and "population unknown" in unknown.reason
    assert all(p is None for p in unknown.probabilities.values())
    child = service.estimate(CaseView(age=3, history="Cough and fever."))
    assert child.population == "paediatric" and child.abstained and "radiograph" in child.reason
    assert CaseView(age=3, population="adult").resolved_population == "paediatric"  # the record's age decides
    adult = service.estimate(
        CaseView(age=60, history="Productive cough and fever for three days.", measurements={"temperature": 39.5})
    )
    assert adult.population == "adult" and adult.modalities == ["text", "measurements"]
    given = {c: p for c, p in adult.probabilities.items() if p is not None}
    assert set(given) == set(service.latent.adult_classes) and sum(given.values()) == pytest.approx(1, abs=1e-3)
    assert "adults, all modalities" in adult.validation and adult.nearest_similarity is None  # no library here


def test_a_patient_with_more_images_than_the_margin_is_still_left_out(tmp_path):
    chroma = client(Settings(index_dir=tmp_path, chroma_url=None))
    rng = np.random.default_rng(0)
    near = np.array([1.0, 0.0, 0.0]) + rng.normal(scale=0.01, size=(30, 3))
    vectors = np.vstack([near, [[0.5, 0.5, 0.0]]]).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    cases = [_case(i, "adult", "viral", "p-many") for i in range(30)] + [_case(30, "adult", "bacterial", "p-other")]
    build(chroma, "v1", cases, vectors)
    found = ReferenceLibrary(chroma, "v1").nearest(np.array([1.0, 0.0, 0.0]), 1, exclude_mrn=pseudonymous_mrn("p-many"))
    assert [n.case_id for n in found] == ["c30"]


def test_a_child_the_encoder_trained_on_gets_no_estimate(tmp_path):
    """An estimate for a training child would not be independent: the tool says so instead of answering."""
    import csv
    import json

    from medconsult.fusion.bundle import DEFAULT_BUNDLE, METADATA
    from medconsult.fusion.service import CaseView, FusionService

    metadata = json.loads((DEFAULT_BUNDLE / METADATA).read_text())
    held = set(metadata["calibration"]["patient_groups"])
    folder = Path(DATA_DIR) / "cxr_kermany_pediatric_ccby"
    rows = list(csv.DictReader((folder / "manifest.csv").open()))
    trained = next(r for r in rows if r["patient"] not in held)
    unseen = next(r for r in rows if r["patient"] in held)
    service = FusionService(Settings(index_dir=tmp_path / "no-library"))

    def estimate(row: dict):
        mrn = pseudonymous_mrn(f"kermany-{row['patient']}")
        return service.estimate(CaseView(image=folder / row["image"], population="paediatric", exclude_mrn=mrn))

    refused = estimate(trained)
    assert refused.abstained and "no independent estimate" in refused.reason
    answered = estimate(unseen)
    assert "trained the paediatric model" not in (answered.reason or "")
    assert sum(p for p in answered.probabilities.values() if p is not None) == pytest.approx(1, abs=1e-3)


def test_a_development_patient_is_estimated_by_the_fold_model_that_never_saw_them():
    from medconsult.fusion.latent_bundle import load_latent_bundle

    bundle = load_latent_bundle()
    folds = bundle.metadata["cross_fitted"]["patient_fold"]
    mrn, fold = next(iter(folds.items()))
    model, used_fold = bundle.model_for(mrn)
    assert used_fold == fold and model is not bundle.model
    assert bundle.model_for("MRN-NOT-A-PATIENT") == (bundle.model, None)
    assert len(set(folds.values())) == bundle.metadata["validation"]["folds"]


def test_the_latent_space_never_learns_the_labels_of_children_the_encoder_held_out():
    """Those children are the paediatric suite's: their place in the space must owe nothing to their labels."""
    from medconsult.fusion.bundle import load_encoder_metadata
    from medconsult.fusion.cases import kermany_cases
    from medconsult.fusion.latent_cv import encoder_held_out, targets_for

    cases = kermany_cases(Path(DATA_DIR))
    held = {pseudonymous_mrn(f"kermany-{g}") for g in load_encoder_metadata()["calibration"]["patient_groups"]}
    labels = targets_for(cases, (), np.ones(len(cases), dtype=bool)).labels["paediatric"]
    of_held = np.array([pseudonymous_mrn(c.patient_group) in held for c in cases])
    assert of_held.any() and (encoder_held_out(cases) == of_held).all()
    assert (labels[of_held] == -1).all() and (labels[~of_held] >= 0).all()


def test_a_development_patients_similar_cases_are_searched_in_its_folds_space(tmp_path):
    from medconsult.fusion.latent_bundle import load_latent_bundle
    from medconsult.fusion.modalities import TEXT_DIM
    from medconsult.fusion.service import FusionService

    bundle = load_latent_bundle()
    mrn, fold = next(iter(bundle.metadata["cross_fitted"]["patient_fold"].items()))
    inputs = ModalityInputs(
        {"image": np.zeros((1, 1280), np.float32), "text": np.ones((1, TEXT_DIM), np.float32) / TEXT_DIM**0.5,
         "measurements": np.zeros((1, MEASUREMENT_DIM), np.float32)},
        {"image": np.array([False]), "text": np.array([True]), "measurements": np.array([False])},
    )
    service = FusionService(Settings(index_dir=tmp_path / "index"))
    own, own_fold = service.embedding(inputs, mrn)
    anyone, none_fold = service.embedding(inputs, "MRN-NOT-A-PATIENT")
    assert (own_fold, none_fold) == (fold, None)
    assert not np.allclose(own, anyone)  # another model: another point
    assert service.library_for(fold).name.endswith(f"-fold{fold + 1}")
    assert [v for v, _ in bundle.embedding_models()][1:] == [f"{bundle.version}-fold{k + 1}" for k in range(5)]


def test_the_unlike_anything_floor_is_measured_on_children_the_model_never_learnt():
    """Trained cases sit close to each other; a floor taken from them would call many new children unlike anything."""
    from medconsult.fusion.cases import kermany_cases
    from medconsult.fusion.latent_bundle import _neighbour_floors
    from medconsult.fusion.latent_cv import encoder_held_out

    cases = kermany_cases(Path(DATA_DIR))
    held = encoder_held_out(cases)
    trained = [c for c, h in zip(cases, held, strict=True) if not h][:40]
    chosen = trained + [c for c, h in zip(cases, held, strict=True) if h][:40]
    rng = np.random.default_rng(0)
    twins = np.repeat(rng.normal(size=(20, 8)), 2, axis=0) + rng.normal(scale=0.01, size=(40, 8))
    embeddings = np.concatenate([twins, rng.normal(size=(40, 8))])  # trained: near twins; withheld: spread out
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    groups = np.array([c.patient_group for c in chosen])
    similarity = embeddings[40:] @ embeddings.T
    similarity[groups[40:, None] == groups[None, :]] = -np.inf
    expected = round(float(np.percentile(similarity.max(axis=1), 2.5)), 4)
    assert _neighbour_floors(chosen, None, embeddings, None, None)["paediatric"] == expected
    assert _neighbour_floors(trained, None, embeddings[:40], None, None)["paediatric"] > 0.99 > expected
