"""Radiomics of the lungs (pyradiomics) and the left-right findings an LLM can read and cite.

Features are computed for each lung and for each lung's upper, middle and lower third (by the lung's own height),
with the parameters in radiomics.yaml. Findings compare matching regions of the two lungs (a radiograph has no
absolute density scale, but the two sides of one film share exposure): density and texture asymmetry per lung and
per zone, the lung area ratio, and which zones deviate most. Every finding carries the numbers behind it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import yaml
from PIL import Image

ZONES = ("upper", "middle", "lower")
SIDES = ("right", "left")


@dataclass
class Region:
    side: str
    zone: str  # "whole" or one of ZONES
    pixels: int
    area_cm2: float | None
    features: dict[str, float]

    @property
    def name(self) -> str:
        return f"{self.side} lung" if self.zone == "whole" else f"{self.side} {self.zone} zone"


@dataclass
class Finding:
    id: str
    text: str
    notable: bool
    values: dict[str, float] = field(default_factory=dict)


@cache
def parameters() -> dict[str, Any]:
    return yaml.safe_load(resources.files("medconsult.imaging").joinpath("radiomics.yaml").read_text())


@cache
def _extractor():  # radiomics.featureextractor.RadiomicsFeatureExtractor
    from radiomics import featureextractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)  # it logs every feature class at INFO
    params = parameters()
    return featureextractor.RadiomicsFeatureExtractor(
        {key: params[key] for key in ("setting", "imageType", "featureClass")}
    )


def zones(mask: np.ndarray) -> dict[str, np.ndarray]:
    """Upper, middle and lower thirds of one lung, by the rows it spans."""
    rows = np.nonzero(mask.any(axis=1))[0]
    top, bottom = rows.min(), rows.max() + 1
    cuts = np.linspace(top, bottom, 4).round().astype(int)
    result = {}
    for zone, (start, end) in zip(ZONES, zip(cuts[:-1], cuts[1:], strict=True), strict=True):
        band = np.zeros_like(mask)
        band[start:end] = mask[start:end]
        result[zone] = band
    return result


def extract(
    grey: np.ndarray, right: np.ndarray, left: np.ndarray, spacing_mm: tuple[float, float] | None
) -> list[Region]:
    """Features of both lungs and their zones. `grey` is the display-scaled image (0-255), masks at its size."""
    import SimpleITK as sitk

    size = parameters()["working_size"]
    scale = size / max(grey.shape)
    shape = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))  # PIL: (w, h)
    image = np.asarray(Image.fromarray(grey).resize(shape, Image.Resampling.BILINEAR), dtype=np.float32)
    spacing = (spacing_mm[1] / scale, spacing_mm[0] / scale) if spacing_mm else (1.0, 1.0)  # sitk: (x, y)
    sitk_image = sitk.GetImageFromArray(image[None])
    sitk_image.SetSpacing((*spacing, 1.0))
    regions = []
    for side, lung in zip(SIDES, (right, left), strict=True):
        small = np.asarray(
            Image.fromarray(lung.astype(np.uint8)).resize(shape, Image.Resampling.NEAREST), dtype=bool
        )
        for zone, mask in {"whole": small, **zones(small)}.items():
            regions.append(_region(side, zone, mask, sitk_image, spacing_mm is not None))
    return regions


def _region(side: str, zone: str, mask: np.ndarray, sitk_image, physical: bool) -> Region:
    import SimpleITK as sitk

    sitk_mask = sitk.GetImageFromArray(mask.astype(np.uint8)[None])
    sitk_mask.CopyInformation(sitk_image)
    raw = _extractor().execute(sitk_image, sitk_mask)
    features = {k.removeprefix("original_"): float(v) for k, v in raw.items() if k.startswith("original_")}
    area = features.get("shape2D_PixelSurface")
    return Region(side, zone, int(mask.sum()), round(area / 100, 2) if physical and area else None, features)


def findings(regions: list[Region]) -> list[Finding]:
    thresholds = parameters()["findings"]
    by_key = {(r.side, r.zone): r for r in regions}
    result = [
        _area_finding(by_key["right", "whole"], by_key["left", "whole"], thresholds["area_ratio_range"])
    ]
    zone_density = []
    for zone in ("whole", *ZONES):
        right, left = by_key["right", zone], by_key["left", zone]
        where = "lungs" if zone == "whole" else f"{zone} zones"
        density = _compare(right, left, "firstorder_Mean")
        zone_density.append((zone, density))
        result.append(
            _asymmetry(f"density:{zone}", f"Mean density of the {where}", right, left, density,
                       thresholds["density_relative_difference"], "denser")
        )
        for feature, label in (
            ("glcm_Contrast", "GLCM contrast"),
            ("glszm_ZoneEntropy", "GLSZM zone entropy"),
        ):
            texture = _compare(right, left, feature)
            result.append(
                _asymmetry(f"texture:{feature}:{zone}", f"{label} of the {where}", right, left, texture,
                           thresholds["texture_relative_difference"], "higher")
            )
    result.append(_most_deviating(zone_density))
    return result


def _compare(right: Region, left: Region, feature: str) -> dict[str, float]:
    a, b = right.features.get(feature, float("nan")), left.features.get(feature, float("nan"))
    mean = (a + b) / 2
    return {
        "right": round(a, 4),
        "left": round(b, 4),
        "relative_difference": round((a - b) / mean, 4) if mean else 0.0,
    }


def _asymmetry(
    key: str, label: str, right: Region, left: Region, values: dict, threshold: float, more: str
) -> Finding:
    difference = values["relative_difference"]
    notable = abs(difference) >= threshold
    if notable:
        higher, lower = (right, left) if difference > 0 else (left, right)
        verdict = f"{higher.side} {more} than {lower.side} by {abs(difference):.0%}"
    else:
        verdict = f"symmetric within {threshold:.0%}"
    text = f"{label}: right {values['right']:.3g}, left {values['left']:.3g} ({verdict})"
    return Finding(key, text, notable, values)


def _area_finding(right: Region, left: Region, expected: list[float]) -> Finding:
    ratio = right.pixels / left.pixels if left.pixels else float("inf")
    unit = "cm2" if right.area_cm2 is not None else "px (working size)"
    r_area = right.area_cm2 if right.area_cm2 is not None else right.pixels
    l_area = left.area_cm2 if left.area_cm2 is not None else left.pixels
    notable = not expected[0] <= ratio <= expected[1]
    verdict = f"outside the usual {expected[0]}-{expected[1]}" if notable else "within the usual range"
    text = (
        f"Lung area right {r_area:g} {unit}, left {l_area:g} {unit}; right/left ratio {ratio:.2f} ({verdict})"
    )
    return Finding("area:ratio", text, notable, {"right": r_area, "left": l_area, "ratio": round(ratio, 3)})


def _most_deviating(zone_density: list[tuple[str, dict]]) -> Finding:
    zonal = [(zone, values) for zone, values in zone_density if zone != "whole"]
    zone, values = max(zonal, key=lambda item: abs(item[1]["relative_difference"]))
    side = "right" if values["relative_difference"] > 0 else "left"
    text = (
        f"Largest left-right density difference in the {zone} zones: {side} denser by "
        f"{abs(values['relative_difference']):.0%} (right {values['right']:.3g}, left {values['left']:.3g})"
    )
    threshold = parameters()["findings"]["density_relative_difference"]
    return Finding("density:most_deviating", text, abs(values["relative_difference"]) >= threshold, values)
