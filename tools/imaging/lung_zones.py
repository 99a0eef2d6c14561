"""lung_zones: per lung and zone, the opacity extent, density and texture of a chest radiograph, with laterality and
pattern: the numbers a radiology draft's Findings rest on (medconsult/imaging/zones.py)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field

from medconsult.imaging.comparison import load_noise_floor
from medconsult.imaging.io import read_radiograph
from medconsult.imaging.zones import (
    OPAQUE_ZONE,
    LungMeasures,
    load_reference,
    measure,
    opacified,
    pattern,
)
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.imaging.radiomics_features import read_mask


class LungZonesArgs(BaseModel):
    image: str = Field(..., description="path of the chest radiograph", max_length=1024)
    right_mask: str = Field(..., description="right-lung mask PNG from segment_lungs", max_length=1024)
    left_mask: str = Field(..., description="left-lung mask PNG from segment_lungs", max_length=1024)


class ZoneResult(BaseModel):
    side: str
    zone: str
    opacity_pct: float  # share of the zone denser than the reference threshold
    density: float  # share of the mediastinum's grey value
    density_percentile: float | None  # among the reference films' same zone
    heterogeneity: float
    outer_opacity_pct: float
    inner_opacity_pct: float


class LungZonesResult(ToolResult):
    image: str
    zones: list[ZoneResult]
    area_index: dict[str, float]
    opacified: list[str]  # zone names with opacity >= the opacified level
    laterality: str  # "none" | "right" | "left" | "bilateral"
    pattern: str
    reference: str
    opacity_quantile: float  # the reference's pixel quantile a pixel must exceed to count as opaque
    zone_noise_pct: float | None  # same-day repeat noise of one zone's opacity (percentage points)

    def evidence(self) -> list[Evidence]:
        noise = f"; same-day repeat noise ±{self.zone_noise_pct:g} points per zone" if self.zone_noise_pct else ""
        table = ", ".join(f"{z.side} {z.zone} {z.opacity_pct:g}%" for z in self.zones)
        items = [Evidence(kind="image finding", resource=self.image, text=(
            f"Zone opacity (share of each zone denser than {self.opacity_quantile:.0%} of the reference films there"
            f"{noise}): "
            f"{table}"))]
        involved = [z for z in self.zones if f"{z.side} {z.zone}" in self.opacified]
        if involved:
            parts = [f"{z.side} {z.zone} {z.opacity_pct:g}% (density {_ordinal(z.density_percentile)} reference "
                     f"percentile)" for z in involved]
            text = (f"Opacified zones (opacity {OPAQUE_ZONE:.0%} or more): {', '.join(parts)}; laterality "
                    f"{self.laterality}; pattern {self.pattern}")
        else:
            text = f"No zone opacified (every zone's opacity under {OPAQUE_ZONE:.0%})"
        items.append(Evidence(kind="image finding", resource=self.image, text=text))
        rough = max(self.zones, key=lambda z: z.heterogeneity)
        items.append(Evidence(kind="image finding", resource=self.image, text=(
            f"Lung size index (area over squared thorax width): right {self.area_index['right']:g}, left "
            f"{self.area_index['left']:g}; most heterogeneous texture: {rough.side} {rough.zone} zone "
            f"(density SD {rough.heterogeneity:g})")))
        return items


def _ordinal(value: float | None) -> str:
    if value is None:
        return "unknown"
    number = round(value)
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def zone_results(measures: LungMeasures) -> list[ZoneResult]:
    return [ZoneResult(side=z.side, zone=z.zone, opacity_pct=round(100 * z.opacity, 1), density=z.density,
                       density_percentile=z.density_percentile, heterogeneity=z.heterogeneity,
                       outer_opacity_pct=round(100 * z.outer_opacity, 1),
                       inner_opacity_pct=round(100 * z.inner_opacity, 1))
            for z in measures.zones]


def laterality(measures: LungMeasures) -> str:
    sides = {z.side for z in opacified(measures)}
    return "none" if not sides else sides.pop() if len(sides) == 1 else "bilateral"


class LungZonesTool(MedTool):
    name: str = "lung_zones"
    description: str = (
        "Per lung and zone (upper, middle, lower) of a segmented chest radiograph: opacity extent, density against "
        "the mediastinum and a reference set, texture; laterality and pattern (focal, unilateral, bilateral, "
        "peripheral, diffuse)."
    )
    args_schema: type[BaseModel] = LungZonesArgs
    result_model = LungZonesResult
    stage = Stage.LUNGS
    missing = "lung zone measurements"

    def execute(self, args: LungZonesArgs) -> LungZonesResult:
        image = read_radiograph(Path(args.image))
        right, left = (read_mask(Path(p), image.pixels.shape) for p in (args.right_mask, args.left_mask))
        measures = measure(image.pixels, right, left)
        involved = [z.name.removesuffix(" zone") for z in opacified(measures)]
        noise = load_noise_floor()
        side = laterality(measures)
        shape = pattern(measures)
        return LungZonesResult(
            summary=f"{len(involved)} of 6 zones opacified"
            + (f" ({', '.join(involved)}; {shape})" if involved else ""),
            image=str(image.path), zones=zone_results(measures), area_index=measures.area_index,
            opacified=involved, laterality=side, pattern=shape, reference=measures.reference,
            opacity_quantile=load_reference()["opacity_quantile"],
            zone_noise_pct=noise.zone_opacity if noise else None,
        )
