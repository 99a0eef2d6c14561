"""`medconsult cases import FORMAT --source PATH --out CASES_DIR`: public data sets as FHIR records + case files."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings
from medconsult.config import Settings
from medconsult.fhir.client import FhirGateway, FhirRequestError, FhirUnavailable
from medconsult.fhir.loader import BundleError

cases_app = typer.Typer(
    no_args_is_help=True, help="Case files: import public data sets as FHIR records, DICOM images and cases."
)


class Format(StrEnum):
    ieee8023 = "ieee8023"  # metadata.csv + images/ (covid-chestxray-dataset layout)
    hannover = "hannover"  # data.csv + png/ (Hannover COVID-19 image repository layout)
    kermany = "kermany"  # manifest.csv + images/ (the paediatric radiographs)


@cases_app.command("import")
def import_cases(
    fmt: Format = typer.Argument(
        ..., metavar="FORMAT", help="ieee8023 (metadata.csv), hannover (data.csv) or kermany (manifest.csv)"
    ),
    source: Path = typer.Option(..., "--source", help="folder holding the CSV and the image files"),
    out: Path = typer.Option(..., "--out", help="cases folder: <case>.yaml, images/, fhir/, import-report.json"),
    load: bool = typer.Option(True, "--load/--no-load", help="load the bundles into the configured FHIR server"),
    anchor: datetime = typer.Option(
        "2020-03-02", formats=["%Y-%m-%d"], help="calendar date of every patient's day 0"
    ),
) -> None:
    """Import a data set: one FHIR bundle per patient, one DICOM file and one case file per image."""
    from medconsult.importers.pipeline import import_dataset
    from medconsult.importers.table import SourceError

    settings = invocation_settings()
    gateway = _reachable_gateway(settings) if load else None
    try:
        report = import_dataset(fmt.value, source, out, anchor=anchor.date(), gateway=gateway)
    except SourceError as error:
        fail(str(error))
    except (FhirUnavailable, FhirRequestError, BundleError) as error:
        fail(f"loading into {settings.effective_fhir_url} failed: {error} (files written to {out}; "
             "re-running the import loads only what is missing)")
    _print_summary(report.to_json(), out)


def _reachable_gateway(settings: Settings) -> FhirGateway:
    url = settings.effective_fhir_url
    try:
        FhirGateway(url, timeout_s=5, retries=0).capability()
    except FhirUnavailable:
        fail(f"FHIR server {url} is not reachable: start the local one with `medconsult fhir up` "
             "(or import without loading: --no-load)")
    except FhirRequestError as error:
        fail(f"{url} does not answer as a FHIR server: {error}")
    token = settings.fhir_bearer_token.get_secret_value() if settings.fhir_bearer_token else None
    return FhirGateway(url, timeout_s=max(settings.fhir_timeout_s, 120), bearer_token=token)


def _print_summary(report: dict, out: Path) -> None:
    console.print(
        f"{report['dataset']}: {report['rows']} rows -> {report['patients']} patients, {report['cases']} cases "
        f"(DICOM images), {report['observations']} observations, {report['notes']} notes in {report['elapsed_s']} s"
    )
    by_analyte = ", ".join(f"{k} {v}" for k, v in report["observations_by_analyte"].items()) or "none"
    console.print(f"  observations: {by_analyte}")
    if report["values_from_notes"]:
        console.print(f"  of which read from notes: {sum(report['values_from_notes'].values())}")
    if report["skipped_rows"]:
        console.print(f"  [yellow]rows skipped: {len(report['skipped_rows'])}[/] (reasons in the report)")
    if report["skipped_values"]:
        console.print(f"  values skipped: {sum(report['skipped_values'].values())} (reasons in the report)")
    if report["load"]:
        load = report["load"]
        console.print(f"  loaded into {load['server']}: {load['bundles_loaded']} bundles, "
                      f"{load['bundles_already_present']} already present")
    console.print(f"  report: {out / 'import-report.json'}")
