"""Per-lung, per-zone measurements of a frontal chest radiograph: what a radiologist's Findings describe, as numbers.

A radiograph has no absolute density scale (exposure, processing and positioning change every grey value), so
density is measured against a reference inside the same film: the mediastinum, soft tissue that no lung process
changes much. `density` is a zone's mean grey value as a share of the mediastinum's (after the usual 1st-99th
percentile scaling, so 0 is the film's darkest air): aerated lung reads about 0.5-0.7, consolidation approaches 1.
`opacity` is the share of a zone's pixels denser than the reference threshold of that zone: the 80th percentile of
the zone's pixel densities over the reference set (medconsult/imaging/bundles/zone_reference), so on the reference
films a zone is 20% "opaque" on average. Zones are the upper, middle and lower thirds of each lung by its own height
(as in radiomics.py), so two films of one patient are aligned by anatomy, not by pixel registration.

Lung size is `area_index`: lung pixels over the squared width of the thorax the lungs span, which cancels the
film's resolution and magnification, so a lung that loses volume between two films shows as a smaller index.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image

from medconsult.imaging.io import normalise
from medconsult.imaging.radiomics import SIDES, ZONES, zones

REFERENCE_BUNDLE = Path(__file__).parent / "bundles" / "zone_reference"
WORKING_SIZE = 512  # long side: measuring at full resolution (2-4k px) changes no figure, only the time


class NoMediastinum(ValueError):
    """The lungs leave no band between them to measure the mediastinum in: density cannot be referenced."""


@dataclass
class ZoneMeasure:
    side: str  # "right" | "left" (the patient's)
    zone: str  # "upper" | "middle" | "lower"
    density: float  # mean grey value as a share of the mediastinum's
    opacity: float  # share of the zone's pixels above the reference threshold of the zone (0-1)
    heterogeneity: float  # standard deviation of the pixel densities: texture, patchy vs uniform
    density_percentile: float | None = None  # where `density` falls among the reference set's same zone (0-100)
    outer_opacity: float = 0.0  # `opacity` of the zone's lateral half and of its medial half: peripheral or not
    inner_opacity: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.side} {self.zone} zone"


@dataclass
class LungMeasures:
    zones: list[ZoneMeasure]
    area_index: dict[str, float]  # per side: lung pixels / (thorax width in pixels)^2
    mediastinum: float  # the reference grey value (0-1 scale)
    reference: str  # which reference the thresholds came from

    def zone(self, side: str, zone: str) -> ZoneMeasure:
        return next(z for z in self.zones if z.side == side and z.zone == zone)


@cache
def load_reference(folder: str | None = None) -> dict:
    """The reference thresholds and distributions (`medconsult seg zone-reference` writes them)."""
    path = Path(folder) if folder else REFERENCE_BUNDLE
    return json.loads((path / "configs" / "reference.json").read_text())


def working_copy(pixels: np.ndarray, right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, ...]:
    """The scaled image and both masks at WORKING_SIZE on the long side (never enlarged)."""
    grey = normalise(pixels)
    scale = min(1.0, WORKING_SIZE / max(grey.shape))
    if scale == 1.0:
        return grey, right, left
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))  # PIL: (w, h)
    small = np.asarray(Image.fromarray(grey).resize(size, Image.Resampling.BOX), dtype=np.float32)
    masks = [np.asarray(Image.fromarray(m.astype(np.uint8) * 255).resize(size, Image.Resampling.BILINEAR)) > 127
             for m in (right, left)]
    return small, masks[0], masks[1]


def mediastinum_level(grey: np.ndarray, right: np.ndarray, left: np.ndarray) -> float:
    """Median grey value between the lungs, over the middle half of the rows both lungs span."""
    rows = np.nonzero(right.any(axis=1) & left.any(axis=1))[0]
    if rows.size < 8:
        raise NoMediastinum("the two lung fields share too few rows to find the mediastinum between them")
    band = rows[rows.size // 4 : rows.size - rows.size // 4]
    values = []
    for row in band:
        inner_right = np.nonzero(right[row])[0].max()  # the right lung is on the image's left
        inner_left = np.nonzero(left[row])[0].min()
        if inner_left - inner_right > 2:
            values.append(grey[row, inner_right + 1 : inner_left])
    if not values:
        raise NoMediastinum("the lung masks touch over the whole mediastinum")
    level = float(np.median(np.concatenate(values)))
    if level <= 0.05:
        raise NoMediastinum(f"the mediastinum reads as air ({level:.2f}): the film's grey scale is unusable")
    return level


def density_map(pixels: np.ndarray, right: np.ndarray, left: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                                  np.ndarray, float]:
    """(relative density image, right mask, left mask, mediastinum level) at the working size."""
    grey, right, left = working_copy(pixels, right, left)
    level = mediastinum_level(grey, right, left)
    return grey / level, right, left, level


def _halves(mask: np.ndarray, side: str) -> tuple[np.ndarray, np.ndarray]:
    """(lateral, medial) halves of a lung, row by row. The right lung's lateral edge is the image's left."""
    outer, inner = np.zeros_like(mask), np.zeros_like(mask)
    for row in np.nonzero(mask.any(axis=1))[0]:
        columns = np.nonzero(mask[row])[0]
        middle = (columns.min() + columns.max()) / 2
        lateral = columns < middle if side == "right" else columns > middle
        outer[row, columns[lateral]] = True
        inner[row, columns[~lateral]] = True
    return outer, inner


def measure(pixels: np.ndarray, right: np.ndarray, left: np.ndarray, reference: dict | None = None) -> LungMeasures:
    """Every zone's density, opacity and texture, and each lung's area index, against `reference`."""
    reference = reference or load_reference()
    density, right, left, level = density_map(pixels, right, left)
    columns = np.nonzero((right | left).any(axis=0))[0]
    width = float(columns.max() - columns.min() + 1)
    measured = []
    for side, lung in zip(SIDES, (right, left), strict=True):
        outer, inner = _halves(lung, side)
        for zone, mask in zones(lung).items():
            threshold = reference["thresholds"][f"{side} {zone}"]
            values = density[mask]
            measured.append(ZoneMeasure(
                side=side, zone=zone,
                density=round(float(values.mean()), 4),
                opacity=round(float((values > threshold).mean()), 4),
                heterogeneity=round(float(values.std()), 4),
                density_percentile=_percentile(reference, f"{side} {zone}", float(values.mean())),
                outer_opacity=round(float((density[mask & outer] > threshold).mean()), 4),
                inner_opacity=round(float((density[mask & inner] > threshold).mean()), 4),
            ))
    areas = {side: round(float(lung.sum()) / width**2, 4) for side, lung in zip(SIDES, (right, left), strict=True)}
    return LungMeasures(measured, areas, round(level, 4), reference.get("name", "zone_reference"))


def _percentile(reference: dict, key: str, value: float) -> float | None:
    """The share of the reference films whose zone is less dense than `value`, in percent."""
    sample = reference.get("zone_densities", {}).get(key)
    if not sample:
        return None
    return round(100.0 * float(np.mean(np.asarray(sample) < value)), 1)


# --- Laterality and pattern --------------------------------------------------------------------------------
OPAQUE_ZONE = 0.40  # a zone with over 40% of its pixels above the threshold is called opacified (2x the reference)


def opacified(measures: LungMeasures, level: float = OPAQUE_ZONE) -> list[ZoneMeasure]:
    return [z for z in measures.zones if z.opacity >= level]


def pattern(measures: LungMeasures) -> str:
    """"no zone opacified", "focal", "unilateral (multi-zone)", "bilateral", "bilateral, peripheral" or "diffuse"."""
    involved = opacified(measures)
    if not involved:
        return "no zone opacified"
    sides = {z.side for z in involved}
    if len(involved) >= 5:
        return "diffuse"
    if len(sides) == 1:
        return "focal" if len(involved) == 1 else "unilateral (multi-zone)"
    outer = np.mean([z.outer_opacity for z in involved])
    inner = np.mean([z.inner_opacity for z in involved])
    return "bilateral, peripheral" if outer >= 1.3 * inner else "bilateral"


ZONE_NAMES = tuple(f"{side} {zone}" for side in SIDES for zone in ZONES)
