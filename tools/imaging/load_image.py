"""load_image: decode a radiograph (DICOM, PNG or JPEG), check it is a chest film, report its metadata and write an
8-bit preview PNG. Anything that is not a chest radiograph is refused here, before any chest tool runs on it."""

from __future__ import annotations

import hashlib
from pathlib import Path

from PIL import Image
from pydantic import BaseModel, Field

from medconsult.imaging.io import check_chest_radiograph, read_radiograph
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult


class LoadImageArgs(BaseModel):
    path: str = Field(..., description="path of a DICOM, PNG or JPEG file", max_length=1024)


class LoadImageResult(ToolResult):
    path: str
    format: str  # "dicom" | "png" | "jpeg"
    sha256: str
    width: int
    height: int
    preview_png: str
    modality: str | None = None
    body_part: str | None = None
    view_position: str | None = None
    photometric: str | None = None
    bits_stored: int | None = None
    pixel_spacing_mm: list[float] | None = None
    patient_age: str | None = None
    patient_sex: str | None = None
    study_date: str | None = None
    transfer_syntax: str | None = None
    warnings: list[str] = Field(default_factory=list)

    def evidence(self) -> list[Evidence]:
        parts = [f"{self.format} radiograph {self.width}x{self.height} px"]
        for label, value in (
            ("modality", self.modality),
            ("body part", self.body_part),
            ("view", self.view_position),
        ):
            if value:
                parts.append(f"{label} {value}")
        if self.pixel_spacing_mm:
            parts.append(f"pixel spacing {self.pixel_spacing_mm[0]:.3f} mm")
        return [Evidence(kind="image", text=", ".join(parts), resource=self.path)]


class LoadImageTool(MedTool):
    name: str = "load_image"
    description: str = (
        "Decode a chest radiograph file (DICOM, PNG or JPEG) and check that it is one: size, modality, body part, "
        "view position, pixel spacing in mm, and an 8-bit preview PNG. Non-chest images are refused."
    )
    args_schema: type[BaseModel] = LoadImageArgs
    result_model = LoadImageResult
    stage = Stage.INTAKE
    missing = "image"

    def execute(self, args: LoadImageArgs) -> LoadImageResult:
        image = read_radiograph(Path(args.path))
        warnings = check_chest_radiograph(image)
        digest = _sha256(image.path)
        preview = self.context.work_dir / "images" / f"{digest[:16]}.png"
        preview.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.to_uint8()).save(preview)
        meta = {k: v for k, v in image.meta.items() if k in LoadImageResult.model_fields}
        described = ", ".join(
            filter(None, [meta.get("modality"), meta.get("body_part"), meta.get("view_position")])
        )
        return LoadImageResult(
            summary=f"{image.format} {image.width}x{image.height}" + (f" ({described})" if described else ""),
            path=str(image.path),
            format=image.format,
            sha256=digest,
            width=image.width,
            height=image.height,
            preview_png=str(preview),
            warnings=warnings,
            **meta,
        )


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
