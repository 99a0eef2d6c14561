"""The reference that zone densities and opacity are measured against (zones.py), learned from radiographs with
human-reviewed lung masks (the seg_lung_v7_ccby set), so no model's segmentation errors shape it.

For each of the six zones: the 80th percentile of all its pixel densities over the reference films (the opacity
threshold) and every film's mean zone density (for percentiles). Written as a bundle folder: configs/reference.json
and configs/metadata.json saying what it was learned from.
"""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import numpy as np
from PIL import Image

from medconsult.imaging.io import read_radiograph
from medconsult.imaging.radiomics import SIDES, zones
from medconsult.imaging.segmentation import split_lungs
from medconsult.imaging.zones import ZONE_NAMES, density_map

OPACITY_QUANTILE = 0.80
PIXELS_PER_ZONE = 4000  # a fixed-size sample of each film's zone, so large films do not outweigh small ones


def build_reference(data: Path, seed: int = 20261201) -> dict:
    """Thresholds and zone densities over every image of the manifest whose mask splits into two lungs."""
    rng = np.random.default_rng(seed)
    pixels: dict[str, list[np.ndarray]] = {name: [] for name in ZONE_NAMES}
    means: dict[str, list[float]] = {name: [] for name in ZONE_NAMES}
    used, skipped, patients = [], [], set()
    with open(data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        try:
            image = read_radiograph(data / row["image"])
            mask = np.asarray(Image.open(data / row["mask"]).convert("L")) > 127
            right, left = split_lungs(mask)
            density, right, left, _ = density_map(image.pixels, right, left)
        except ValueError as error:
            skipped.append(f"{row['image']}: {error}")
            continue
        used.append(row["image"])
        patients.add(row["group"])
        for side, lung in zip(SIDES, (right, left), strict=True):
            for zone, mask_ in zones(lung).items():
                values = density[mask_]
                means[f"{side} {zone}"].append(round(float(values.mean()), 4))
                pixels[f"{side} {zone}"].append(rng.choice(values, size=PIXELS_PER_ZONE, replace=True))
    if not used:
        raise ValueError(f"{data}: no usable image with a two-lung mask")
    thresholds = {name: round(float(np.quantile(np.concatenate(pixels[name]), OPACITY_QUANTILE)), 4)
                  for name in ZONE_NAMES}
    return {
        "name": f"zone_reference ({len(used)} radiographs of {len(patients)} patients, human-reviewed masks)",
        "opacity_quantile": OPACITY_QUANTILE,
        "thresholds": thresholds,
        "zone_densities": {name: sorted(values) for name, values in means.items()},
        "images": len(used),
        "patients": len(patients),
        "skipped": skipped,
    }


def write_reference(reference: dict, bundle: Path, data: Path) -> Path:
    (bundle / "configs").mkdir(parents=True, exist_ok=True)
    (bundle / "configs" / "reference.json").write_text(json.dumps(reference, indent=1))
    metadata = {
        "name": "zone_reference",
        "version": "1.0.0",
        "created": date.today().isoformat(),
        "description": "Per-zone opacity thresholds and mean-density distributions of frontal chest radiographs, "
                       "density as a share of the film's mediastinal grey value (medconsult/imaging/zones.py)",
        "command": "medconsult seg zone-reference",
        "training_data": f"{data.name}: {reference['images']} radiographs of {reference['patients']} patients "
                         "(ieee8023 COVID-19 collection, mostly Hannover Medical School) with V7 Labs lung masks; "
                         "mostly COVID-19 pneumonia, so the reference is a sick population, not a normal one",
        "licences": {"images": "CC BY 3.0 (Hannover) / CC BY 4.0", "masks": "CC BY 4.0 (V7 Labs)"},
        "opacity_quantile": reference["opacity_quantile"],
        "intended_use": "thresholds and percentiles for describing a radiograph's zones and comparing two films of "
                        "one patient; the figures are relative to this reference, not absolute densities",
    }
    (bundle / "configs" / "metadata.json").write_text(json.dumps(metadata, indent=1))
    return bundle / "configs" / "reference.json"
