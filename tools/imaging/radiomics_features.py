"""radiomics_features: pyradiomics features per lung and per zone, and the left-right findings behind them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from medconsult.imaging import radiomics
from medconsult.imaging.io import normalise, read_radiograph
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult


class RadiomicsArgs(BaseModel):
    image: str = Field(..., description="path of the chest radiograph", max_length=1024)
    right_mask: str = Field(..., description="right-lung mask PNG from segment_lungs", max_length=1024)
    left_mask: str = Field(..., description="left-lung mask PNG from segment_lungs", max_length=1024)


class RegionResult(BaseModel):
    region: str
    pixels: int
    area_cm2: float | None
    features: dict[str, float]


class FindingResult(BaseModel):
    id: str
    text: str
    notable: bool
    values: dict[str, float]


class RadiomicsResult(ToolResult):
    image: str
    regions: list[RegionResult]
    findings: list[FindingResult]
    parameters: str

    def evidence(self) -> list[Evidence]:
        """Each notable finding (and the area ratio) with its values; the symmetric ones in one line, by name.

        Their values stay in the result: in every prompt of the case they would only add tokens."""
        shown = [f for f in self.findings if f.notable or f.id == "area:ratio"]
        items = [
            Evidence(kind="image finding", text=f.text + (" [notable]" if f.notable else ""), resource=self.image,
                     value=f.values.get("relative_difference", f.values.get("ratio")))
            for f in shown
        ]
        symmetric = [f for f in self.findings if f not in shown and " of the " in f.text.split(":")[0]]
        if symmetric:
            items.append(Evidence(kind="image finding", resource=self.image,
                                  text=f"symmetric left and right: {_by_feature(symmetric)}"))
        return items


def _by_feature(findings: list[FindingResult]) -> str:
    """"Mean density of the upper zones", "GLCM contrast of the lungs", ... -> "Mean density (upper zones); GLCM
    contrast (lungs, upper zones)"."""
    regions: dict[str, list[str]] = {}
    for finding in findings:
        feature, region = finding.text.split(":")[0].split(" of the ", 1)
        regions.setdefault(feature, []).append(region)
    return "; ".join(f"{feature} ({', '.join(names)})" for feature, names in regions.items())


class RadiomicsFeaturesTool(MedTool):
    name: str = "radiomics_features"
    description: str = (
        "pyradiomics features (first order, 2D shape, GLCM, GLRLM, GLSZM) of each lung and of its upper, middle "
        "and lower zone, with left-right findings: density and texture asymmetry, lung area ratio, most deviating zone."
    )
    args_schema: type[BaseModel] = RadiomicsArgs
    result_model = RadiomicsResult
    stage = Stage.LUNGS
    missing = "radiomics"

    def execute(self, args: RadiomicsArgs) -> RadiomicsResult:
        image = read_radiograph(Path(args.image))
        right, left = (read_mask(Path(p), image.pixels.shape) for p in (args.right_mask, args.left_mask))
        grey = (normalise(image.pixels) * 255).astype(np.uint8)
        regions = radiomics.extract(grey, right, left, image.pixel_spacing_mm)
        found = radiomics.findings(regions)
        notable = [f for f in found if f.notable]
        return RadiomicsResult(
            summary=f"{len(regions)} regions, {len(found)} findings, {len(notable)} notable"
            + (f": {notable[0].text}" if notable else ""),
            image=str(image.path),
            regions=[
                RegionResult(region=r.name, pixels=r.pixels, area_cm2=r.area_cm2, features=r.features)
                for r in regions
            ],
            findings=[FindingResult(**f.__dict__) for f in found],
            parameters="medconsult/imaging/radiomics.yaml",
        )


def read_mask(path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """A lung mask PNG (0/255) from segment_lungs, checked against the image's size."""
    mask = np.asarray(Image.open(path).convert("L")) > 127
    if mask.shape != shape:
        raise ValueError(f"{path.name}: mask {mask.shape[1]}x{mask.shape[0]} does not match the image size")
    if not mask.any():
        raise ValueError(f"{path.name}: empty mask")
    return mask
