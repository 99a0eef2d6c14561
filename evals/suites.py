"""Suites: a folder of case files, optionally with a `suite.yaml` saying what the FHIR server must hold first.

`medconsult eval SUITE` takes a bundled suite's name (a folder under evals/suites/) or any folder of case files,
such as one `medconsult cases import` wrote. A manifest can ask for

    fhir_bundles: ["{data}/fhir_synthea_r4/bundles", "fhir"]    # files or folders of bundles, loaded if missing
    import: {format: ieee8023, source: "{data}/cxr_ieee8023_ncsa"}  # cases written by the importer
    cases: [ieee8023-183-d0, ...]                                  # which of the suite's cases (default: all)

Paths start with `{data}` (the configured data folder) or are relative to the suite folder. Loading and importing
are idempotent (bundles of a patient already on the server are skipped; the importer PUTs to content ids), so a
new suite needs no code, and preparing a suite a second time changes nothing.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field

from medconsult.cases import resolve_image_path
from medconsult.fhir.client import FhirGateway
from medconsult.fhir.loader import load_bundle_file

BUNDLED = Path(__file__).parent / "suites"
CASE_SUFFIXES = (".yaml", ".yml", ".json")
MANIFEST = "suite.yaml"
# Bundles other bundles refer to (Synthea's organisations and practitioners) go first.
LOAD_FIRST = ("hospitalInformation", "practitionerInformation")


class SuiteError(ValueError):
    """The suite cannot be found or prepared; the message says what to do."""


class ImportSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str = Field(..., description="an importer of `medconsult cases import` (ieee8023, hannover)")
    source: str = Field(..., description="the data set folder ({data}/... or relative to the suite)")


class SuiteManifest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    description: str = ""
    fhir_bundles: list[str] = Field(default_factory=list)
    import_: ImportSpec | None = Field(None, alias="import")
    cases: list[str] = Field(default_factory=list, description="case ids to run; empty: every case file")


def bundled_suites() -> list[str]:
    return sorted(p.name for p in BUNDLED.iterdir() if (p / MANIFEST).is_file()) if BUNDLED.is_dir() else []


def resolve_suite(name_or_path: str) -> Path:
    """A folder given as a path wins; otherwise a bundled suite's name."""
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return path
    if (BUNDLED / name_or_path / MANIFEST).is_file():
        return BUNDLED / name_or_path
    raise SuiteError(f"no suite folder or bundled suite named {name_or_path!r}; bundled: {', '.join(bundled_suites())}")


def read_manifest(suite: Path) -> SuiteManifest:
    path = suite / MANIFEST
    if not path.is_file():
        return SuiteManifest()
    try:
        return SuiteManifest.model_validate(yaml.safe_load(path.read_text()) or {})
    except (yaml.YAMLError, ValueError) as error:
        raise SuiteError(f"{path}: {error}") from error


def case_files(folder: Path) -> list[Path]:
    """Case files of a folder, in name order (the manifest and the import report are not cases)."""
    files = sorted(p for p in folder.iterdir() if p.suffix in CASE_SUFFIXES and p.is_file())
    return [p for p in files if p.name not in (MANIFEST, "import-report.json")]


def prepare_suite(suite: Path, data_dir: Path, import_root: Path, gateway: FhirGateway | None) -> list[Path]:
    """Load what the manifest asks for into the FHIR server (when `gateway` is given) and return the case files."""
    manifest = read_manifest(suite)
    for bundle in _bundle_files(manifest, suite, data_dir):
        if gateway is not None:
            load_bundle_file(gateway, bundle)
    folder = suite
    if manifest.import_ is not None:
        folder = _imported(manifest.import_, suite, data_dir, import_root, gateway)
    files = case_files(folder)
    if not manifest.cases:
        return files
    by_id = {p.stem: p for p in files}
    missing = [c for c in manifest.cases if c not in by_id]
    if missing:
        raise SuiteError(f"{suite.name}: cases not found in {folder}: {', '.join(missing)}")
    return [by_id[c] for c in manifest.cases]


def _bundle_files(manifest: SuiteManifest, suite: Path, data_dir: Path) -> list[Path]:
    files: list[Path] = []
    for entry in manifest.fhir_bundles:
        path = resolve_image_path(entry, suite, data_dir)
        if path.is_dir():
            files += sorted(path.glob("*.json"), key=lambda p: (not p.name.startswith(LOAD_FIRST), p.name))
        elif path.is_file():
            files.append(path)
        else:
            raise SuiteError(f"{suite.name}: bundle path {path} does not exist (is the data folder set?)")
    return files


def _imported(spec: ImportSpec, suite: Path, data_dir: Path, import_root: Path, gateway: FhirGateway | None) -> Path:
    from medconsult.importers.pipeline import import_dataset

    source = resolve_image_path(spec.source, suite, data_dir)
    if not source.is_dir():
        raise SuiteError(f"{suite.name}: the {spec.format} data set is not at {source} (set MEDCONSULT_DATA_DIR)")
    out = import_root / spec.format
    import_dataset(spec.format, source, out, gateway=gateway)
    return out
