"""Decoding radiographs (DICOM, PNG, JPEG) into display-ready greyscale, and deciding whether they are chest films.

DICOM pixel data goes through the modality LUT (rescale) and the VOI LUT / window, and MONOCHROME1 is inverted, so
pixels read as on a viewing station (air dark, bone bright). Size limits are checked before decoding, so a corrupt,
truncated or enormous file fails fast with a clear message instead of exhausting memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_FILE_BYTES = 256 * 1024 * 1024
MAX_PIXELS = 80_000_000  # about 9000 x 9000: far above any radiograph, far below memory trouble
RADIOGRAPH_MODALITIES = {"CR", "DX", "DR", "RG"}
CHEST_BODY_PARTS = {"CHEST", "THORAX", "LUNG", "LUNGS", "PORT CHEST", "TORAX", "THORAX PA"}
FRONTAL_VIEWS = {"PA", "AP", "AP SUPINE", "PA ERECT", "AP ERECT"}


class ImageLoadError(ValueError):
    """The file cannot be decoded as a radiograph."""


class NotAChestRadiograph(ValueError):
    """The file decodes, but it is not a (frontal) chest radiograph: chest tools must not run on it."""


@dataclass
class Radiograph:
    path: Path
    format: str  # "dicom" | "png" | "jpeg"
    pixels: np.ndarray  # float32, display orientation (higher = brighter)
    meta: dict = field(default_factory=dict)

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def pixel_spacing_mm(self) -> tuple[float, float] | None:
        spacing = self.meta.get("pixel_spacing_mm")
        return (spacing[0], spacing[1]) if spacing else None

    def to_uint8(self) -> np.ndarray:
        return to_uint8(self.pixels)


def read_radiograph(path: Path) -> Radiograph:
    """Decode once per file version: the imaging tools of one case read the same file in turn."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ImageLoadError(f"{path}: no such file")
    stat = path.stat()
    return _read_cached(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=8)
def _read_cached(path: Path, mtime_ns: int, size: int) -> Radiograph:
    image = _read_uncached(path, size)
    image.pixels.setflags(write=False)  # shared between callers: nobody may change it in place
    return image


def _read_uncached(path: Path, size: int) -> Radiograph:
    if size > MAX_FILE_BYTES:
        raise ImageLoadError(f"{path}: {size / 2**20:.0f} MB is over the {MAX_FILE_BYTES // 2**20} MB limit")
    with open(path, "rb") as handle:
        head = handle.read(132)
    reader = _read_dicom if head[128:132] == b"DICM" or path.suffix.lower() in (".dcm", ".dicom") else _read_raster
    try:
        return reader(path)
    except ImageLoadError:
        raise
    except Exception as error:  # noqa: BLE001 - decoders fail late and in many ways on damaged files
        # pydicom converts each element when it is first read, so a damaged tag fails wherever it is used, with
        # whatever error its converter raises (found by `medconsult fuzz`: NotImplementedError for a broken VR).
        raise ImageLoadError(f"{path}: not a readable image ({type(error).__name__}: {error})") from error


def _read_raster(path: Path) -> Radiograph:
    Image.MAX_IMAGE_PIXELS = MAX_PIXELS  # PIL raises DecompressionBombError above this
    try:
        with Image.open(path) as image:
            fmt = (image.format or "").lower()
            if image.width * image.height > MAX_PIXELS:  # judged from the header, before any pixel is decoded
                raise ImageLoadError(
                    f"{path}: declared size {image.width}x{image.height} is outside the supported range"
                )
            if fmt not in ("png", "jpeg"):
                raise ImageLoadError(
                    f"{path}: {image.format or 'unknown'} images are not supported (PNG, JPEG, DICOM)"
                )
            image.load()
            meta = {"colour_spread": _colour_spread(image)}
            grey = image.convert("I") if image.mode in ("I", "I;16", "I;16B") else image.convert("L")
            pixels = np.asarray(grey, dtype=np.float32)
    except Image.DecompressionBombError as error:  # PIL's own guard, for sizes far beyond the limit
        raise ImageLoadError(f"{path}: declared size is outside the supported range ({error})") from error
    except (UnidentifiedImageError, OSError) as error:
        raise ImageLoadError(f"{path}: not a readable image ({error})") from error
    return Radiograph(path, fmt, pixels, meta)


def _colour_spread(image: Image.Image) -> float:
    """Mean absolute difference between colour channels (0 for greyscale): radiographs have none to speak of."""
    if image.mode not in ("RGB", "RGBA", "P", "CMYK", "YCbCr"):
        return 0.0
    rgb = np.asarray(image.convert("RGB").resize((128, 128)), dtype=np.float32)
    return float(np.mean(np.abs(rgb[..., 0] - rgb[..., 1]) + np.abs(rgb[..., 1] - rgb[..., 2])) / 2)


def _read_dicom(path: Path) -> Radiograph:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    try:
        header = pydicom.dcmread(path, stop_before_pixels=True)
        dataset = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, ValueError, EOFError) as error:
        raise ImageLoadError(
            f"{path}: not a readable DICOM file ({type(error).__name__}: {error})"
        ) from error
    if "PixelData" not in dataset:
        if (
            "Rows" in header and "Columns" in header
        ):  # the header promised an image that the file does not hold
            raise ImageLoadError(
                f"{path}: DICOM file truncated: it declares a {header.Columns}x{header.Rows} image but ends "
                f"after {path.stat().st_size} bytes without readable pixel data"
            )
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
    return Radiograph(path, "dicom", pixels, meta)


def check_chest_radiograph(image: Radiograph) -> list[str]:
    """Raise NotAChestRadiograph when the file is clearly something else; return softer warnings otherwise.

    DICOM files are judged by their tags (modality, body part, view); PNG/JPEG files, which carry none, by content:
    greyscale, plausible size and shape, and real contrast. The lung segmentation adds a last check: it must find
    two lung fields.
    """
    meta, warnings = image.meta, []
    if image.format == "dicom":
        modality = str(meta.get("modality") or "").upper()
        if modality and modality not in RADIOGRAPH_MODALITIES:
            raise NotAChestRadiograph(
                f"{image.path.name}: modality {modality} is not a projection radiograph"
            )
        body_part = str(meta.get("body_part") or "").upper()
        if body_part and body_part not in CHEST_BODY_PARTS:
            raise NotAChestRadiograph(f"{image.path.name}: body part examined is {body_part}, not the chest")
        view = str(meta.get("view_position") or "").upper()
        if view in ("LL", "RL", "LATERAL", "LAT"):
            raise NotAChestRadiograph(
                f"{image.path.name}: lateral view ({view}); the chest tools need a frontal view"
            )
        if not body_part:
            warnings.append("no BodyPartExamined tag: chest assumed from content")
    else:
        if meta.get("colour_spread", 0.0) > 8.0:
            raise NotAChestRadiograph(
                f"{image.path.name}: a colour image (channel spread {meta['colour_spread']:.1f}), not a radiograph"
            )
    if min(image.width, image.height) < 128:
        raise NotAChestRadiograph(
            f"{image.path.name}: {image.width}x{image.height} px is too small for a chest radiograph"
        )
    aspect = max(image.width, image.height) / min(image.width, image.height)
    if aspect > 2.0:
        raise NotAChestRadiograph(
            f"{image.path.name}: aspect ratio {aspect:.1f} does not fit a chest radiograph"
        )
    grey = image.to_uint8()
    if float(np.percentile(grey, 95) - np.percentile(grey, 5)) < 40:
        raise NotAChestRadiograph(f"{image.path.name}: almost no contrast; not a usable radiograph")
    return warnings


def dicom_date(value: object) -> date | None:
    """A DICOM DA value ("20200302") as a date; None when absent or malformed."""
    raw = str(value or "")
    if len(raw) != 8 or not raw.isdigit():
        return None
    try:
        return date(int(raw[:4]), int(raw[4:6]), int(raw[6:8]))
    except ValueError:
        return None


def normalise(pixels: np.ndarray) -> np.ndarray:
    """Scale to [0, 1] between the 1st and 99th percentiles: robust to burnt-in labels and collimation edges."""
    low, high = np.percentile(pixels, (1, 99))
    if high <= low:
        return np.zeros_like(pixels, dtype=np.float32)
    return np.clip((pixels.astype(np.float32) - np.float32(low)) / np.float32(high - low), 0, 1).astype(
        np.float32
    )


def to_uint8(pixels: np.ndarray) -> np.ndarray:
    low, high = float(pixels.min()), float(pixels.max())
    if high <= low:
        return np.zeros(pixels.shape, dtype=np.uint8)
    return np.round((pixels - low) * (255.0 / (high - low))).astype(np.uint8)
