"""Finding the image files of an ImagingStudy: a folder-based archive indexed by DICOM Study Instance UID.

The record says which exams a patient had (ImagingStudy, with its study UID in `identifier`); the pixels live in an
archive. Here the archive is a set of folders of DICOM files (`MEDCONSULT_IMAGE_ARCHIVE`; by default where
`medconsult cases import` writes its images), indexed by reading each file's header once. A hospital's PACS would
sit behind the same lookup through DICOMweb; only this module would change.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger(__name__)

_lock = threading.Lock()
_indexes: dict[Path, tuple[tuple[int, int], dict[str, Path]]] = {}  # folder -> ((files, newest mtime), index)


def _signature(files: list[Path]) -> tuple[int, int]:
    return len(files), max((f.stat().st_mtime_ns for f in files), default=0)


def _index(folder: Path) -> dict[str, Path]:
    """Study Instance UID -> the first file of that study under `folder`, rebuilt when its files change."""
    files = sorted(folder.rglob("*.dcm"))
    signature = _signature(files)
    with _lock:
        cached = _indexes.get(folder)
        if cached and cached[0] == signature:
            return cached[1]
    import pydicom

    index: dict[str, Path] = {}
    unreadable = 0
    for path in files:
        try:
            header = pydicom.dcmread(path, stop_before_pixels=True, specific_tags=["StudyInstanceUID"])
        except Exception:  # noqa: BLE001 - an unreadable file is left out of the index, not fatal
            unreadable += 1
            continue
        uid = str(header.get("StudyInstanceUID") or "")
        if uid:
            index.setdefault(uid, path)
    if unreadable:  # counted, not named: file names may carry patient identifiers
        log.warning("image archive: %d unreadable .dcm file(s) under %s left out", unreadable, folder)
    with _lock:
        _indexes[folder] = (signature, index)
    return index


def find_study(study_uid: str, folders: Iterable[Path]) -> Path | None:
    """A DICOM file of the study, or None when no archive folder holds it."""
    for folder in folders:
        folder = Path(folder).resolve()
        if folder.is_dir():
            found = _index(folder).get(study_uid)
            if found is not None:
                return found
    return None
