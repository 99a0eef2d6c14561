"""A new case from a patient on the FHIR server and uploaded radiographs.

Patients are found by resource id, identifier (MRN) or name. Uploads are checked before a case exists: a size
limit per file (read in chunks, so an oversized file is never held whole), at most a few files, and each must
decode as a chest radiograph (DICOM, PNG or JPEG). A bad file is refused with the reason, naming the file; the
form keeps what the clinician entered.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from fhirclient.models.patient import Patient
from starlette.datastructures import UploadFile

from medconsult.fhir.client import FhirGateway, FhirNotFound
from medconsult.imaging.io import ImageLoadError, NotAChestRadiograph, check_chest_radiograph, read_radiograph
from medconsult.tools.fhir.find_patient import PatientMatch, patient_match

SUFFIXES = {".dcm": ".dcm", ".dicom": ".dcm", ".png": ".png", ".jpg": ".jpg", ".jpeg": ".jpg"}
MAX_FILES = 4
CHUNK = 1 << 20


class UploadRefused(ValueError):
    """A file the case cannot use; the message names it and says why."""


@dataclass(frozen=True)
class SavedRadiograph:
    path: Path
    warnings: list[str]


def search_patients(gateway: FhirGateway, query: str, limit: int = 20) -> list[PatientMatch]:
    query = query.strip().removeprefix("Patient/")
    if not query:
        return []
    if re.fullmatch(r"[A-Za-z0-9\-.]{1,64}", query):
        try:
            return [patient_match(gateway.read(Patient, query))]
        except FhirNotFound:
            pass
    found = gateway.search(Patient, {"identifier": query, "_count": str(limit)}, limit=limit)
    if not found:
        found = gateway.search(Patient, {"name": query, "_count": str(limit)}, limit=limit)
    return [patient_match(patient) for patient in found]


async def save_radiographs(files: list[UploadFile], folder: Path, max_bytes: int) -> list[SavedRadiograph]:
    """Every file saved under a generated name and checked; on the first bad one, all are removed and it is
    refused."""
    files = [f for f in files if f.filename]
    if len(files) > MAX_FILES:
        raise UploadRefused(f"at most {MAX_FILES} radiographs per case ({len(files)} given)")
    saved: list[SavedRadiograph] = []
    try:
        for upload in files:
            saved.append(await _save_one(upload, folder, max_bytes))
    except UploadRefused:
        for item in saved:
            item.path.unlink(missing_ok=True)
        raise
    return saved


async def _save_one(upload: UploadFile, folder: Path, max_bytes: int) -> SavedRadiograph:
    name = Path(upload.filename or "file").name[:80]
    suffix = SUFFIXES.get(Path(name).suffix.lower())
    if suffix is None:
        raise UploadRefused(f"{name}: not a DICOM, PNG or JPEG file (by its name)")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{secrets.token_hex(6)}{suffix}"
    size = 0
    with path.open("wb") as handle:
        while chunk := await upload.read(CHUNK):
            size += len(chunk)
            if size > max_bytes:
                handle.close()
                path.unlink(missing_ok=True)
                raise UploadRefused(f"{name}: larger than the {max_bytes // (1 << 20)} MB limit")
            handle.write(chunk)
    try:
        warnings = check_chest_radiograph(read_radiograph(path))
    except (ImageLoadError, NotAChestRadiograph) as error:
        path.unlink(missing_ok=True)
        reason = str(error).replace(str(path), "").strip(": ")
        raise UploadRefused(f"{name}: {reason}") from None
    except Exception as error:  # noqa: BLE001 - a decoder's own failure (a decompression bomb, a codec error)
        path.unlink(missing_ok=True)
        raise UploadRefused(f"{name}: cannot be read as an image ({type(error).__name__})") from None
    return SavedRadiograph(path, warnings)
