"""compare_radiographs: a radiograph against the patient's earlier one, zone by zone (medconsult/imaging/comparison.py).

Both films are segmented and measured the same way, aligned by lung and zone, and compared: per-zone opacity and
density changes, lung size changes, the interval in days when the dates are known, and one `change_score`
(positive = worse) with the noise floor measured on same-day film pairs and the score's validation figures.
"""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from pydantic import BaseModel, Field
from scipy import ndimage

from medconsult.imaging.comparison import (
    NOT_INTERPRETABLE,
    Comparison,
    compare,
    load_noise_floor,
    load_validation,
)
from medconsult.imaging.io import Radiograph, check_chest_radiograph, dicom_date, read_radiograph
from medconsult.imaging.overlay import LEFT_COLOUR, RIGHT_COLOUR, write_side_by_side, zone_layer
from medconsult.imaging.radiomics import SIDES, zones
from medconsult.imaging.zones import measure, working_copy
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult

if TYPE_CHECKING:
    from medconsult.imaging.segmentation import LungMasks  # torch loads only when a film is compared


class CompareArgs(BaseModel):
    current: str = Field(..., description="path of the current chest radiograph (DICOM, PNG or JPEG)", max_length=1024)
    prior: str = Field(..., description="path of the patient's earlier chest radiograph", max_length=1024)
    current_date: date | None = Field(None, description="date of the current film (else its DICOM StudyDate)")
    prior_date: date | None = Field(None, description="date of the earlier film (else its DICOM StudyDate)")


class ZoneChangeResult(BaseModel):
    side: str
    zone: str
    opacity_prior_pct: float
    opacity_current_pct: float
    opacity_change: float  # percentage points
    density_change_pct: float
    beyond_noise: bool


class CompareResult(ToolResult):
    current: str
    prior: str
    current_date: date | None
    prior_date: date | None
    interval_days: int | None
    zones: list[ZoneChangeResult]
    area_change_pct: dict[str, float]
    change_score: float  # mean opacity change over the six zones, percentage points; positive = worse
    noise_floor: float | None  # |change_score| below this is within same-day repeat noise
    zone_noise: float | None
    verdict: str  # "worse" | "better" | "within noise" | "not interpretable (...)" | "unknown noise floor"
    cautions: list[str] = Field(default_factory=list)  # segmentation warnings of either film
    new_opacities: list[str]
    cleared: list[str]
    reliability: str
    overlay_png: str

    @property
    def steady(self) -> bool:
        """Nothing to report as changed: within the noise or not interpretable, and no zone beyond its own noise."""
        return self.verdict in ("within noise", NOT_INTERPRETABLE) and not any(z.beyond_noise for z in self.zones)

    def _when(self, which: str) -> str:
        day = self.prior_date if which == "prior" else self.current_date
        return f"{which} film of {day.isoformat()}" if day else f"{which} film"

    def evidence(self) -> list[Evidence]:
        interval = f", {self.interval_days} days earlier" if self.interval_days is not None else ""
        noise = f"same-day noise floor ±{self.noise_floor:g}" if self.noise_floor is not None else "no noise floor"
        caution = f" Caution: {'; '.join(self.cautions)}; check the side-by-side image." if self.cautions else ""
        items = [Evidence(kind="comparison", resource=self.overlay_png, value=self.change_score, text=(
            f"Comparison of the {self._when('current')} with the {self._when('prior')}{interval}: change score "
            f"{self.change_score:+g} points (mean opacity change over the six zones; {noise}): {self.verdict}. "
            f"Reliability: {self.reliability}.{caution}"))]
        if self.cautions:
            return items  # zones of a doubtful segmentation are not the other film's: no zone or size change stated
        before = self.prior_date.isoformat() if self.prior_date else "prior"
        after = self.current_date.isoformat() if self.current_date else "current"
        moved = sorted((z for z in self.zones if z.beyond_noise), key=lambda z: -abs(z.opacity_change))
        for z in moved[:3]:
            label = "new opacity" if f"{z.side} {z.zone}" in self.new_opacities else (
                "cleared" if f"{z.side} {z.zone}" in self.cleared else ("more opaque" if z.opacity_change > 0
                                                                         else "less opaque"))
            items.append(Evidence(kind="comparison", resource=self.overlay_png, value=z.opacity_change, text=(
                f"{z.side.capitalize()} {z.zone} zone {label}: opacity {z.opacity_prior_pct:g}% on {before}, "
                f"{z.opacity_current_pct:g}% on {after} ({z.opacity_change:+g} points, beyond the "
                f"±{self.zone_noise or 0:g}-point zone noise); density {z.density_change_pct:+g}%")))
        if not moved:
            z = max(self.zones, key=lambda z: abs(z.opacity_change))
            items.append(Evidence(kind="comparison", resource=self.overlay_png, text=(
                f"No zone's opacity changed beyond the ±{self.zone_noise or 0:g}-point zone noise between {before} "
                f"and {after}; largest change {z.side} {z.zone} zone {z.opacity_prior_pct:g}% to "
                f"{z.opacity_current_pct:g}% ({z.opacity_change:+g} points)")))
        sizes = ", ".join(f"{side} {change:+g}%" for side, change in self.area_change_pct.items())
        items.append(Evidence(kind="comparison", resource=self.overlay_png,
                              text=f"Lung size index change from {before} to {after}: {sizes}"))
        return items


def _reliability() -> str:
    figures = load_validation()
    if not figures:
        return "not validated"
    low, high = figures["auc_95ci"]
    return (f"AUC {figures['auc']:.2f} (95% CI {low:.2f}-{high:.2f}) for clinical worsening over "
            f"{figures['pairs']} film pairs of {figures['patients']} patients")


class CompareRadiographsTool(MedTool):
    name: str = "compare_radiographs"
    description: str = (
        "Compare a chest radiograph with the patient's earlier one: both segmented and aligned by lung and zone; "
        "per-zone opacity and density change, lung size change, interval in days, and a change_score (positive = "
        "worse) with its same-day noise floor."
    )
    args_schema: type[BaseModel] = CompareArgs
    result_model = CompareResult
    stage = Stage.PRIOR
    missing = "comparison with the prior exam"

    def execute(self, args: CompareArgs) -> CompareResult:
        from medconsult.imaging.segmentation import load_segmenter  # torch loads only when a film is compared

        segmenter = load_segmenter(self.context.settings.seg_bundle)
        films = [read_radiograph(Path(p)) for p in (args.prior, args.current)]
        measured, panels, cautions = [], [], []
        for which, film in zip(("prior", "current"), films, strict=True):
            check_chest_radiograph(film)
            masks = segmenter.segment(film.pixels)
            cautions += [f"{which} film: {warning}" for warning in masks.quality_warnings()]
            measured.append(measure(film.pixels, masks.right, masks.left))
            panels.append((film, masks))
        noise = load_noise_floor()
        comparison = compare(measured[0], measured[1], noise, cautions)
        prior_date = args.prior_date or dicom_date(films[0].meta.get("study_date"))
        current_date = args.current_date or dicom_date(films[1].meta.get("study_date"))
        overlay = self._overlay(panels, comparison)
        beyond = {z.name for z in comparison.beyond_noise()}
        return CompareResult(
            summary=f"change score {comparison.change_score:+g} ({comparison.verdict})"
            + (f", {len(beyond)} zone(s) beyond noise" if beyond else ""),
            current=str(films[1].path), prior=str(films[0].path),
            current_date=current_date, prior_date=prior_date,
            interval_days=(current_date - prior_date).days if current_date and prior_date else None,
            zones=[ZoneChangeResult(
                side=z.side, zone=z.zone, opacity_prior_pct=round(100 * z.opacity_prior, 1),
                opacity_current_pct=round(100 * z.opacity_current, 1), opacity_change=z.opacity_change,
                density_change_pct=z.density_change, beyond_noise=z.name in beyond,
            ) for z in comparison.zones],
            area_change_pct=comparison.area_change, change_score=comparison.change_score,
            noise_floor=noise.change_score if noise else None, zone_noise=noise.zone_opacity if noise else None,
            verdict=comparison.verdict, cautions=comparison.cautions,
            new_opacities=[z.name.removesuffix(" zone") for z in comparison.zones if z.new_opacity],
            cleared=[z.name.removesuffix(" zone") for z in comparison.zones if z.cleared],
            reliability=_reliability(), overlay_png=str(overlay),
        )

    def _overlay(self, panels: list[tuple[Radiograph, LungMasks]], comparison: Comparison) -> Path:
        """Prior and current side by side, lungs outlined, zones that changed beyond noise tinted."""
        changed = {f"{z.side} {z.zone}": z.opacity_change for z in comparison.beyond_noise()}
        rendered = []
        for film, masks in panels:
            grey, right, left = working_copy(film.pixels, masks.right, masks.left)
            rgb = np.repeat((grey * 255)[..., None], 3, axis=2)
            zone_masks = {f"{side} {zone}": mask for side, lung in zip(SIDES, (right, left), strict=True)
                          for zone, mask in zones(lung).items()}
            rgb = zone_layer(rgb, zone_masks, changed)
            for lung, colour in ((right, RIGHT_COLOUR), (left, LEFT_COLOUR)):
                rgb[lung & ~ndimage.binary_erosion(lung, iterations=2)] = colour
            rendered.append(rgb)
        key = hashlib.sha256("|".join(str(film.path.resolve()) for film, _ in panels).encode()).hexdigest()[:10]
        return write_side_by_side(rendered, self.context.work_dir / "comparison" / f"comparison-{key}.png")

