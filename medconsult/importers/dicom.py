"""Writing a source radiograph as a DICOM Secondary Capture file with a neutral name and chest tags.

Greyscale baseline JPEGs are encapsulated byte for byte (transfer syntax JPEG Baseline), so the import adds no
second lossy step; anything else (PNG, colour or progressive JPEG) is decoded to 8-bit MONOCHROME2 and stored
uncompressed. The tags tell the project's reader that the file is a frontal chest radiograph.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, time
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    SecondaryCaptureImageStorage,
)

from medconsult.importers.fhir_resources import DicomUids

BASELINE_SOF = 0xC0
STANDALONE_MARKERS = {0x01, *range(0xD0, 0xD8)}  # TEM, RSTn: no length field


@dataclass(frozen=True)
class RadiographTags:
    patient_id: str
    sex: str  # FHIR gender: male | female | other | unknown
    age_years: int | None
    study_date: date
    study_time: time
    modality: str  # DX, CR
    view: str  # PA, AP or ""
    supine: bool
    description: str


@dataclass(frozen=True)
class JpegFrame:
    marker: int  # SOFn
    precision: int
    rows: int
    columns: int
    components: int


def jpeg_frame(data: bytes) -> JpegFrame | None:
    """The frame header (SOFn) of a JPEG stream, or None when the bytes are not a readable JPEG."""
    if data[:2] != b"\xff\xd8":
        return None
    position = 2
    while position + 4 <= len(data):
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte
            position += 1
            continue
        if marker in STANDALONE_MARKERS:
            position += 2
            continue
        length = int.from_bytes(data[position + 2 : position + 4], "big")
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # SOFn, not DHT/JPG/DAC
            segment = data[position + 4 : position + 2 + length]
            if len(segment) < 6:
                return None
            rows = int.from_bytes(segment[1:3], "big")
            columns = int.from_bytes(segment[3:5], "big")
            return JpegFrame(marker, segment[0], rows, columns, segment[5])
        position += 2 + length
    return None


def write_radiograph(source: Path, target: Path, tags: RadiographTags, uids: DicomUids) -> None:
    data = source.read_bytes()
    frame = jpeg_frame(data)
    dataset = _dataset(tags, uids)
    if frame and frame.marker == BASELINE_SOF and frame.components == 1 and frame.precision == 8:
        _set_jpeg_pixels(dataset, data, frame)
        transfer_syntax = JPEGBaseline8Bit
    else:
        dataset.set_pixel_data(_greyscale_8bit(source), "MONOCHROME2", 8, generate_instance_uid=False)
        transfer_syntax = ExplicitVRLittleEndian
    dataset.file_meta = _file_meta(uids, transfer_syntax)
    target.parent.mkdir(parents=True, exist_ok=True)
    dataset.save_as(target, enforce_file_format=True)


def _dataset(tags: RadiographTags, uids: DicomUids) -> Dataset:
    dataset = Dataset()
    dataset.SOPClassUID = SecondaryCaptureImageStorage
    dataset.SOPInstanceUID = uids.instance
    dataset.StudyInstanceUID = uids.study
    dataset.SeriesInstanceUID = uids.series
    dataset.PatientID = tags.patient_id
    dataset.PatientName = tags.patient_id
    dataset.PatientSex = {"male": "M", "female": "F", "other": "O"}.get(tags.sex, "")
    if tags.age_years is not None:
        dataset.PatientAge = f"{min(tags.age_years, 999):03d}Y"
    dataset.StudyDate = dataset.SeriesDate = dataset.ContentDate = tags.study_date.strftime("%Y%m%d")
    dataset.StudyTime = dataset.SeriesTime = dataset.ContentTime = tags.study_time.strftime("%H%M%S")
    dataset.StudyID = "1"
    dataset.AccessionNumber = ""
    dataset.ReferringPhysicianName = ""
    dataset.SeriesNumber = 1
    dataset.InstanceNumber = 1
    dataset.Modality = tags.modality
    dataset.ConversionType = "WSD"  # Secondary Capture: converted at a workstation
    dataset.BodyPartExamined = "CHEST"
    dataset.ViewPosition = tags.view
    dataset.PatientOrientation = ""
    dataset.StudyDescription = "Chest radiograph"
    dataset.SeriesDescription = tags.description
    if tags.supine:  # PatientPosition's terms (HFS, FFS...) are for CT/MR: the position goes in a comment
        dataset.ImageComments = "patient supine"
    return dataset


def _set_jpeg_pixels(dataset: Dataset, data: bytes, frame: JpegFrame) -> None:
    dataset.Rows, dataset.Columns = frame.rows, frame.columns
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.BitsAllocated = dataset.BitsStored = 8
    dataset.HighBit = 7
    dataset.PixelRepresentation = 0
    dataset.LossyImageCompression = "01"
    dataset.LossyImageCompressionMethod = "ISO_10918_1"
    dataset.PixelData = encapsulate([data])
    dataset["PixelData"].VR = "OB"


def _greyscale_8bit(source: Path) -> np.ndarray:
    with Image.open(source) as image:
        if image.mode in ("I", "I;16", "I;16B", "F"):  # 16-bit or float greyscale: stretch to 8 bits
            pixels = np.asarray(image, dtype=np.float64)
            low, high = float(pixels.min()), float(pixels.max())
            scale = 255.0 / (high - low) if high > low else 0.0
            return np.round((pixels - low) * scale).astype(np.uint8)
        return np.asarray(image.convert("L"), dtype=np.uint8)


def _file_meta(uids: DicomUids, transfer_syntax: str) -> FileMetaDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = uids.instance
    meta.TransferSyntaxUID = transfer_syntax
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    return meta
