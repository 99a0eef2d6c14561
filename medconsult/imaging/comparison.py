"""Two radiographs of one patient compared zone by zone: what changed, by how much, and whether it is more than two
films of an unchanged chest differ by.

Both films are measured with zones.py, so their zones are aligned by anatomy (each lung's own thirds). The change of
a zone is its opacity change in percentage points and its density change relative to the prior film; the films'
`change_score` is the mean opacity change over the six zones, in percentage points (positive = worse). Its noise
floor is the repeatability coefficient of the score over same-day pairs of the Hannover set (1.96 x the standard
deviation of their scores), measured by `medconsult eval change --record` and kept beside the zone reference. A
film whose segmentation the model itself doubts (segmentation.LungMasks.quality_warnings) makes the comparison not
interpretable: its zones would not be the other film's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from medconsult.imaging.zones import OPAQUE_ZONE, REFERENCE_BUNDLE, LungMeasures

NOISE_FILE = "change_noise.json"


@dataclass
class ZoneChange:
    side: str
    zone: str
    opacity_prior: float  # share of the zone (0-1)
    opacity_current: float
    opacity_change: float  # percentage points, current - prior
    density_prior: float
    density_current: float
    density_change: float  # percent of the prior density

    @property
    def name(self) -> str:
        return f"{self.side} {self.zone} zone"

    @property
    def new_opacity(self) -> bool:
        return self.opacity_prior < OPAQUE_ZONE <= self.opacity_current

    @property
    def cleared(self) -> bool:
        return self.opacity_current < OPAQUE_ZONE <= self.opacity_prior


@dataclass
class NoiseFloor:
    change_score: float  # |change_score| below this is within what same-day films differ by
    zone_opacity: float  # the same for one zone's opacity change (percentage points)
    pairs: int
    patients: int
    source: str


NOT_INTERPRETABLE = "not interpretable (segmentation caution)"


@dataclass
class Comparison:
    zones: list[ZoneChange]
    area_change: dict[str, float]  # per side: percent change of the lung's area index
    change_score: float
    noise: NoiseFloor | None
    cautions: list[str] = field(default_factory=list)  # a film whose lung masks may not be two lungs

    @property
    def verdict(self) -> str:
        """"worse", "better" or "within noise"; NOT_INTERPRETABLE when a film's segmentation is in doubt (its masks
        may hold one lung, or lung and mediastinum: every zone compared would be a different region); "unknown noise
        floor" without one."""
        if self.cautions:
            return NOT_INTERPRETABLE
        if self.noise is None:
            return "unknown noise floor"
        if abs(self.change_score) < self.noise.change_score:
            return "within noise"
        return "worse" if self.change_score > 0 else "better"

    def beyond_noise(self) -> list[ZoneChange]:
        """Zones whose opacity changed by more than one zone's noise floor, largest first (none when the comparison
        is not interpretable)."""
        if self.cautions:
            return []
        floor = self.noise.zone_opacity if self.noise else 0.0
        return sorted((z for z in self.zones if abs(z.opacity_change) >= floor),
                      key=lambda z: -abs(z.opacity_change))


def compare(prior: LungMeasures, current: LungMeasures, noise: NoiseFloor | None = None,
            cautions: list[str] | None = None) -> Comparison:
    changes = []
    for now in current.zones:
        before = prior.zone(now.side, now.zone)
        changes.append(ZoneChange(
            side=now.side, zone=now.zone,
            opacity_prior=before.opacity, opacity_current=now.opacity,
            opacity_change=round(100 * (now.opacity - before.opacity), 1),
            density_prior=before.density, density_current=now.density,
            density_change=round(100 * (now.density - before.density) / before.density, 1) if before.density else 0.0,
        ))
    score = round(sum(c.opacity_change for c in changes) / len(changes), 1)
    areas = {side: round(100 * (current.area_index[side] / prior.area_index[side] - 1), 1)
             for side in current.area_index if prior.area_index.get(side)}
    return Comparison(changes, areas, score, noise, list(cautions or []))


@cache
def _recorded(folder: str | None = None) -> dict:
    path = Path(folder or REFERENCE_BUNDLE) / "configs" / NOISE_FILE
    return json.loads(path.read_text()) if path.is_file() else {}


def load_noise_floor(folder: str | None = None) -> NoiseFloor | None:
    recorded = _recorded(folder).get("noise_floor")
    return NoiseFloor(**recorded) if recorded else None


def load_validation(folder: str | None = None) -> dict | None:
    """The change score's AUC for clinical worsening, recorded with the noise floor."""
    return _recorded(folder).get("validation")
