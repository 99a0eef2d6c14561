"""What the fusion tools ask of the models: embed one case, estimate its etiology, find similar reference cases.

Loaded once per process (the encoders take seconds) and shared by the tools. Estimates follow three rules:

- population first: a paediatric estimate comes only from the radiograph encoder's paediatric classifier, an
  adult one only from the latent space's adult head; an unknown population abstains;
- abstain when the top probability is under the bundle's `min_probability`, or the case is unlike every reference
  case of its population (nearest similarity under the floor measured on the training cases);
- say what the estimate rests on: the modalities used and the validated figures from the model card.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from medconsult.config import Settings
from medconsult.fusion.bundle import CalibratedEncoder, load_encoder
from medconsult.fusion.cases import age_band, population_of
from medconsult.fusion.finetune import softmax
from medconsult.fusion.latent import embed, expert_logits
from medconsult.fusion.latent_bundle import LatentBundle, load_latent_bundle
from medconsult.fusion.library import LibraryMissing, Neighbour, ReferenceLibrary, client
from medconsult.fusion.modalities import ModalityInputs, embed_texts, measurement_vector
from medconsult.fusion.trunk_cache import input_pixels

ESTIMATE_CLASSES = ("normal", "bacterial", "viral", "covid-19", "fungal", "other")
VIEW_NAMES = {"experts": "all modalities (each one's evidence summed)", "image": "image only", "text": "history only",
              "measurements": "measurements only"}
SAME_IMAGE_SIMILARITY = 0.9995  # a reference case this close is the query image itself, whatever its patient


@dataclass
class CaseView:
    """One case as the encoders see it."""

    image: Path | None = None
    history: str = ""
    age: int | None = None
    measurements: dict[str, float] = field(default_factory=dict)
    population: str | None = None  # stated by the caller; the record's age decides when it is known
    exclude_mrn: str | None = None  # the case's own patient: never retrieved as a similar case

    @property
    def resolved_population(self) -> str | None:
        return population_of(self.age) or self.population


@dataclass
class Estimate:
    population: str | None
    probabilities: dict[str, float | None]  # every class of ESTIMATE_CLASSES; None where the model has no output
    modalities: list[str]
    abstained: bool
    reason: str | None
    model: str
    validation: str
    nearest_similarity: float | None = None


@dataclass
class Similar:
    neighbours: list[Neighbour]
    vote: dict[str, int]
    modalities: list[str]
    population: str | None
    excluded_same_image: int
    library: str  # the collection searched (a fold's, for a development patient)


class FusionService:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._libraries: dict[str, ReferenceLibrary] = {}

    @cached_property
    def encoder(self) -> CalibratedEncoder:
        return load_encoder()

    @cached_property
    def latent(self) -> LatentBundle:
        return load_latent_bundle()

    def library_for(self, fold: int | None) -> ReferenceLibrary:
        """The reference library in the space of the model trained on everyone (None) or of a fold model."""
        version = self.latent.library_version(fold)
        if version not in self._libraries:
            self._libraries[version] = ReferenceLibrary(self._chroma, version)
        return self._libraries[version]

    @cached_property
    def _chroma(self):  # chromadb.api.ClientAPI
        return client(self.settings)

    def inputs(self, case: CaseView) -> tuple[ModalityInputs, np.ndarray | None]:
        """The case's modality inputs, and its radiograph's input pixels (None without an image)."""
        pixels = input_pixels(case.image) if case.image is not None else None  # raises on an unreadable file
        image = self.encoder.embed_pixels(pixels[None]) if pixels is not None else np.zeros((1, 1280), np.float32)
        text, text_present = embed_texts([case.history])
        band = age_band(case.age) or ("1-5 years" if case.resolved_population == "paediatric" else None)
        vector, known = measurement_vector(band, case.measurements)
        inputs = ModalityInputs(
            {"image": image, "text": text, "measurements": vector[None]},
            {"image": np.array([pixels is not None]), "text": text_present, "measurements": np.array([known])},
        )
        return inputs, pixels

    def embedding(self, inputs: ModalityInputs, patient_mrn: str | None = None) -> tuple[np.ndarray, int | None]:
        """The case's point in the latent space, and the fold whose model embedded it: a patient whose labels
        trained the model is embedded (and searched) by the fold model that never saw them, else its position
        would carry its own label."""
        model, fold = self.latent.model_for(patient_mrn)
        return embed(model, inputs)[0], fold

    def estimate(self, case: CaseView) -> Estimate:
        population = case.resolved_population
        inputs, pixels = self.inputs(case)
        used = [m for m, present in inputs.present.items() if present[0]]
        if population is None:
            return self._abstain(None, used, "population unknown: no age in the record and none given")
        if population == "paediatric":
            return self._paediatric(inputs, pixels, case.exclude_mrn)
        return self._adult(inputs, used, case.exclude_mrn)

    def similar(self, case: CaseView, k: int) -> Similar:
        inputs, _ = self.inputs(case)
        used = [m for m, present in inputs.present.items() if present[0]]
        population = case.resolved_population
        embedding, fold = self.embedding(inputs, case.exclude_mrn)
        found = self.library_for(fold).nearest(embedding, k + 3, population=population, exclude_mrn=case.exclude_mrn)
        distinct = [n for n in found if n.similarity < SAME_IMAGE_SIMILARITY]
        kept = distinct[:k]
        vote = dict(Counter(n.label for n in kept).most_common())
        return Similar(kept, vote, used, population, len(found) - len(distinct), self.library_for(fold).name)

    # ---- populations ------------------------------------------------------------------------------------------

    def _paediatric(self, inputs: ModalityInputs, pixels: np.ndarray | None, mrn: str | None) -> Estimate:
        if pixels is None:
            return self._abstain("paediatric", [], "the paediatric estimate reads the radiograph, and there is none")
        if mrn and mrn in self._encoder_training_patients:
            return self._abstain("paediatric", ["image"], "this child's radiographs trained the paediatric model: "
                                 "no independent estimate")
        probabilities = self.encoder.classify_pixels(pixels[None])[0]
        estimate = dict(zip(self.encoder.classes, probabilities.tolist(), strict=True))
        return self._checked("paediatric", estimate, ["image"], inputs, mrn, "radiograph_encoder",
                             _encoder_validation(self.encoder.metadata))

    def _adult(self, inputs: ModalityInputs, used: list[str], mrn: str | None) -> Estimate:
        if not used:
            return self._abstain("adult", used, "no image, history or measurements to estimate from")
        abstention = self.latent.metadata["abstention"]
        model, fold = self.latent.model_for(mrn)  # a development patient: the fold model that never saw them
        # Several modalities: each one's own logits, summed (chosen before measuring it: a weak modality should add
        # little, not pull a mean toward it); one modality: its projection's logits.
        logits = expert_logits(model, inputs, "adult")
        probabilities = softmax(logits, abstention["adult_temperature"])[0]
        estimate = dict(zip(self.latent.adult_classes, probabilities.tolist(), strict=True))
        name = f"latent_space {self.latent.version}" + (f", fold {fold + 1} (never saw this patient)" if fold is not
                                                         None else "")
        validation = _latent_validation(self.latent.metadata, used)
        return self._checked("adult", estimate, used, inputs, mrn, name, validation)

    @cached_property
    def _encoder_training_patients(self) -> frozenset[str]:
        return frozenset(self.encoder.metadata["training"].get("patient_mrns", []))

    def _checked(
        self, population: str, estimate: dict[str, float], used: list[str], inputs: ModalityInputs,
        mrn: str | None, model: str, validation: str,
    ) -> Estimate:
        abstention = self.latent.metadata["abstention"]
        probabilities = {c: (round(estimate[c], 4) if c in estimate else None) for c in ESTIMATE_CLASSES}
        similarity, reason = self._nearest_similarity(inputs, population, mrn), None
        floor = abstention["neighbour_similarity_floor"].get(population)
        if similarity is not None and floor is not None and similarity < floor:
            reason = f"insufficient evidence: unlike the reference cases (nearest similarity {similarity:.2f}, "
            reason += f"floor {floor:.2f})"
        elif max(estimate.values()) < abstention["min_probability"]:
            reason = f"insufficient evidence: no class reaches {abstention['min_probability']:.0%}"
        return Estimate(population, probabilities, used, reason is not None, reason, model, validation, similarity)

    def _nearest_similarity(self, inputs: ModalityInputs, population: str, mrn: str | None) -> float | None:
        embedding, fold = self.embedding(inputs, mrn)
        try:
            found = self.library_for(fold).nearest(embedding, 2, population=population, exclude_mrn=mrn)
        except LibraryMissing:
            return None
        distinct = [n.similarity for n in found if n.similarity < SAME_IMAGE_SIMILARITY]
        return distinct[0] if distinct else None

    def _abstain(self, population: str | None, used: list[str], reason: str) -> Estimate:
        empty = dict.fromkeys(ESTIMATE_CLASSES)
        return Estimate(population, empty, used, True, reason, "none", "")


def _encoder_validation(metadata: dict) -> str:
    v = metadata.get("validation", {})
    parts = [
        f"{name.replace('_', ' ')} {v[name]['value']:.2f} (95% CI {v[name]['ci95'][0]:.2f}-{v[name]['ci95'][1]:.2f})"
        for name in ("bacterial_vs_viral_auc", "normal_vs_pneumonia_auc", "accuracy", "ece")
        if name in v
    ]
    return f"children 1-5 years, {v.get('images', '?')} images, grouped cross-validation: " + ", ".join(parts)


def _latent_validation(metadata: dict, used: list[str]) -> str:
    v = metadata.get("validation") or {}
    view = "experts" if len(used) > 1 else used[0]
    figures = v.get("views", {}).get(view)
    if not figures:
        return "not validated"
    cell = lambda f: f"{f['value']:.2f} (95% CI {f['ci95'][0]:.2f}-{f['ci95'][1]:.2f})"  # noqa: E731
    return (
        f"adults, {VIEW_NAMES.get(view, view)}, {v['cases']} cases of {v['patients']} patients, grouped "
        f"cross-validation: top-1 "
        f"{cell(figures['top1'])} (majority class {v['majority_class_top1']:.2f}), macro-recall "
        f"{cell(figures['macro_recall'])}"
    )
