"""load_image: decode a radiograph (DICOM, PNG or JPEG), report its metadata and write an 8-bit preview PNG.

DICOM pixel data goes through the modality LUT (rescale) and the VOI LUT / window, and MONOCHROME1 is inverted,
so the preview looks as a reader would see it. Files that are too large or not images fail fast with a clear
message instead of exhausting memory.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, Field

from medconsult.tools.base import Evidence, MedTool, ToolResult

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 80_000_000  # about 9000 x 9000: far above any radiograph, far below memory trouble


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


class ImageLoadError(ValueError):
    pass


class LoadImageTool(MedTool):
    name: str = "load_image"
    description: str = (
        "Decode a chest radiograph file (DICOM, PNG or JPEG): size, modality, body part, view position, pixel "
        "spacing in mm, and an 8-bit preview PNG."
    )
    args_schema: type[BaseModel] = LoadImageArgs
    result_model = LoadImageResult

    def execute(self, args: LoadImageArgs) -> LoadImageResult:
        path = Path(args.path).expanduser()
        if not path.is_file():
            raise ImageLoadError(f"{path}: no such file")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise ImageLoadError(
                f"{path}: {size / 2**20:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit"
            )
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if data[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom"):
            pixels, meta = _read_dicom(path)
            fmt = "dicom"
        else:
            pixels, fmt = _read_raster(path)
            meta = {}
        preview = self.context.work_dir / "images" / f"{digest[:16]}.png"
        preview.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(preview)
        height, width = pixels.shape
        described = ", ".join(
            filter(None, [meta.get("modality"), meta.get("body_part"), meta.get("view_position")])
        )
        return LoadImageResult(
            summary=f"{fmt} {width}x{height}" + (f" ({described})" if described else ""),
            path=str(path),
            format=fmt,
            sha256=digest,
            width=width,
            height=height,
            preview_png=str(preview),
            **meta,
        )


def _read_raster(path: Path) -> tuple[np.ndarray, str]:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL raises DecompressionBombError above this
    try:
        with Image.open(path) as image:
            fmt = (image.format or "").lower()
            if fmt not in ("png", "jpeg"):
                raise ImageLoadError(
                    f"{path}: {image.format or 'unknown'} images are not supported (PNG, JPEG, DICOM)"
                )
            image.load()
            grey = image.convert("I;16") if image.mode in ("I", "I;16") else image.convert("L")
            pixels = np.asarray(grey)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError) as error:
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    return _to_uint8(pixels.astype(np.float32)), "jpeg" if fmt == "jpeg" else "png"


def _read_dicom(path: Path) -> tuple[np.ndarray, dict]:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise ImageLoadError(
            f"{path}: not a readable DICOM file ({type(error).__name__}: {error})"
        ) from error
    if "PixelData" not in dataset:
        raise ImageLoadError(f"{path}: DICOM file without pixel data")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns > MAX_PIXELS or rows * columns == 0:
        raise ImageLoadError(f"{path}: image size {columns}x{rows} is outside the supported range")
    try:
        raw = dataset.pixel_array
    except Exception as error:  # noqa: BLE001 - decoders raise many types for corrupt or truncated data
        raise ImageLoadError(
            f"{path}: pixel data cannot be decoded ({type(error).__name__}: {error})"
        ) from error
    if raw.ndim != 2:
        raise ImageLoadError(f"{path}: expected one greyscale frame, got pixel array of shape {raw.shape}")
    pixels = apply_voi_lut(apply_modality_lut(raw, dataset), dataset).astype(np.float32)
    photometric = str(dataset.get("PhotometricInterpretation", ""))
    if photometric == "MONOCHROME1":  # higher values are darker: invert to the usual display
        pixels = pixels.max() - pixels
    spacing = dataset.get("PixelSpacing") or dataset.get("ImagerPixelSpacing")
    meta = {
        "modality": dataset.get("Modality") or None,
        "body_part": dataset.get("BodyPartExamined") or None,
        "view_position": dataset.get("ViewPosition") or None,
        "photometric": photometric or None,
        "bits_stored": int(dataset.BitsStored) if "BitsStored" in dataset else None,
        # Some files carry 0.000 (unknown): only positive spacings are physical.
        "pixel_spacing_mm": [float(v) for v in spacing]
        if spacing and all(float(v) > 0 for v in spacing)
        else None,
        "patient_age": dataset.get("PatientAge") or None,
        "patient_sex": dataset.get("PatientSex") or None,
        "study_date": dataset.get("StudyDate") or None,
        "transfer_syntax": str(dataset.file_meta.TransferSyntaxUID.name)
        if "TransferSyntaxUID" in dataset.file_meta
        else None,
    }
    return _to_uint8(pixels), meta


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.round((pixels - low) * (255.0 / (high - low))).astype(np.uint8)
