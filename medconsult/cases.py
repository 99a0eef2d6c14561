"""A case: a FHIR patient, zero or more images and an optional question, from a case file or from flags.

Case files are YAML or JSON. Image paths are relative to the case file, or start with `{data}` for the
configured data folder. A `label` (the reference answer, for evaluation) may be present in the file; it is
dropped by `CaseFile.to_case()`, so the consult graph never sees it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field


class PriorImage(BaseModel):
    """An earlier radiograph of the patient given with the case (the record's own are found through ImagingStudy)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: str
    date: dt.date | None = None  # when the film was taken; else its DICOM StudyDate


class Case(BaseModel):
    """What the consult graph receives."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(..., pattern=r"^[A-Za-z0-9._-]{1,80}$")
    patient: str = Field(..., description="Patient resource id or an identifier value (e.g. the MRN)")
    images: list[str] = Field(default_factory=list)
    priors: list[PriorImage] = Field(
        default_factory=list, description="earlier radiographs of the patient to compare with, besides the record's"
    )
    question: str | None = None
    as_of: date | None = Field(None, description="review the record as it stood on this day")
    synthetic_dates: bool = Field(
        False, description="the record's dates are shifted to an arbitrary day 0 (imported data sets): not a real "
        "calendar date, so the prompts say the date is unknown"
    )
    population: Literal["adult", "paediatric"] | None = Field(
        None, description="stated by the referrer when the record has no birth date; the estimates need it"
    )


class CaseFile(Case):
    model_config = ConfigDict(extra="forbid", frozen=True)

    label: dict[str, Any] | None = None  # evaluation only
    description: str | None = None

    def to_case(self) -> Case:
        return Case(**self.model_dump(include=set(Case.model_fields)))


class CaseError(ValueError):
    pass


def load_case_file(path: Path, data_dir: Path) -> CaseFile:
    try:
        text = path.read_text()
        raw = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (OSError, json.JSONDecodeError, yaml.YAMLError) as error:
        raise CaseError(f"{path}: cannot read case file ({error})") from error
    if not isinstance(raw, dict):
        raise CaseError(f"{path}: a case file holds one mapping")
    raw.setdefault("id", path.stem)
    raw["images"] = [str(resolve_image_path(p, path.parent, data_dir)) for p in raw.get("images", [])]
    raw["priors"] = [_prior(p, path, data_dir) for p in raw.get("priors") or []]
    return CaseFile.model_validate(raw)


def case_from_flags(
    patient: str, images: list[Path], question: str | None, as_of: date | None, case_id: str | None = None
) -> Case:
    return Case(
        id=case_id or _slug(f"case-{patient}"),
        patient=patient,
        images=[str(p.resolve()) for p in images],
        question=question,
        as_of=as_of,
    )


def _prior(value: Any, case_path: Path, data_dir: Path) -> dict[str, Any]:
    """`{path: ..., date: ...}` or a bare path, resolved like the case's images."""
    prior = value if isinstance(value, dict) else {"path": value}
    if not isinstance(prior.get("path"), str):
        raise CaseError(f"{case_path}: a prior image needs a path")
    return {**prior, "path": str(resolve_image_path(prior["path"], case_path.parent, data_dir))}


def resolve_image_path(value: str, base: Path, data_dir: Path) -> Path:
    if value.startswith("{data}"):
        return (data_dir / value.removeprefix("{data}").lstrip("/")).resolve()
    candidate = Path(value).expanduser()
    return candidate if candidate.is_absolute() else (base / candidate).resolve()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)[:80]
