"""segment_lungs: right and left lung masks of a frontal chest radiograph (MONAI network from a bundle)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image
from pydantic import BaseModel, Field

from medconsult.imaging.io import check_chest_radiograph, read_radiograph
from medconsult.imaging.overlay import write_overlay
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult


class SegmentLungsArgs(BaseModel):
    image: str = Field(..., description="path of a chest radiograph (DICOM, PNG or JPEG)", max_length=1024)


class SegmentLungsResult(ToolResult):
    image: str
    right_mask_png: str  # patient's right lung (image left), 0/255, the input image's size
    left_mask_png: str
    overlay_png: str
    width: int
    height: int
    area_unit: str  # "cm2" when the pixel spacing is known, else "px"
    right_area: float
    left_area: float
    lung_fraction: float  # share of the image covered by lung
    model: str
    warnings: list[str] = Field(default_factory=list)  # check the overlay before relying on the masks

    def evidence(self) -> list[Evidence]:
        caution = [
            Evidence(kind="image", resource=self.overlay_png, text=f"segmentation caution: {w}")
            for w in self.warnings
        ]
        areas = f"right {self.right_area:g} {self.area_unit}, left {self.left_area:g} {self.area_unit}"
        return caution + [Evidence(kind="image", resource=self.overlay_png, text=f"lung areas segmented: {areas}")]


class SegmentLungsTool(MedTool):
    name: str = "segment_lungs"
    description: str = (
        "Segment the right and left lungs of a frontal chest radiograph: mask PNGs at the image's size, areas "
        "(cm2 when the pixel spacing is known, else pixels) and an overlay PNG."
    )
    args_schema: type[BaseModel] = SegmentLungsArgs
    result_model = SegmentLungsResult
    stage = Stage.IMAGE
    missing = "lung segmentation"

    def execute(self, args: SegmentLungsArgs) -> SegmentLungsResult:
        image = read_radiograph(Path(args.image))
        check_chest_radiograph(image)
        from medconsult.imaging.segmentation import (
            load_segmenter,  # torch loads only when a lung is segmented
        )

        segmenter = load_segmenter(self.context.settings.seg_bundle)
        masks = segmenter.segment(image.pixels)
        stem = f"{image.path.stem}-{hashlib.sha256(str(image.path.resolve()).encode()).hexdigest()[:8]}"
        folder = self.context.work_dir / "segmentation"
        folder.mkdir(parents=True, exist_ok=True)
        paths = {side: folder / f"{stem}-{side}-lung.png" for side in ("right", "left")}
        for side, mask in (("right", masks.right), ("left", masks.left)):
            Image.fromarray((mask * 255).astype(np.uint8)).save(paths[side])
        overlay = write_overlay(image.to_uint8(), masks.right, masks.left, folder / f"{stem}-overlay.png")
        spacing = image.pixel_spacing_mm
        factor, unit = (spacing[0] * spacing[1] / 100, "cm2") if spacing else (1.0, "px")
        right_area, left_area = (round(float(m.sum()) * factor, 1) for m in (masks.right, masks.left))
        fraction = round(float(masks.lungs.mean()), 4)
        warnings = masks.quality_warnings()
        return SegmentLungsResult(
            summary=f"lungs segmented: right {right_area:g} {unit}, left {left_area:g} {unit} "
            f"({fraction:.0%} of the image)" + (f"; caution: {'; '.join(warnings)}" if warnings else ""),
            image=str(image.path),
            right_mask_png=str(paths["right"]),
            left_mask_png=str(paths["left"]),
            overlay_png=str(overlay),
            width=image.width,
            height=image.height,
            area_unit=unit,
            right_area=right_area,
            left_area=left_area,
            lung_fraction=fraction,
            model=f"{segmenter.metadata['name']} {segmenter.metadata['version']} ({segmenter.bundle})",
            warnings=warnings,
        )
