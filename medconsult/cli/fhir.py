"""`medconsult fhir up|down|status|load`."""

from __future__ import annotations

from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings, print_json
from medconsult.fhir.auth import gateway_from_settings
from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.fhir.loader import BundleError, load_bundle_file
from medconsult.fhir.server import LocalFhirServer
from medconsult.process import ServiceError

fhir_app = typer.Typer(
    no_args_is_help=True, help="The FHIR R4 server: start/stop the local one, load bundles."
)


@fhir_app.command("up")
def up() -> None:
    """Start the local FHIR server on 127.0.0.1 (data persists in the state folder)."""
    settings = invocation_settings()
    server = LocalFhirServer(settings)
    try:
        pid = server.up(detach=True)
    except ServiceError as error:
        fail(str(error))
    console.print(
        f"FHIR server {'started (pid ' + str(pid) + ')' if pid else 'already running'} at {server.base_url}"
    )


@fhir_app.command("down")
def down() -> None:
    """Stop the local FHIR server started by `up` (it saves its data first)."""
    stopped = LocalFhirServer(invocation_settings()).down()
    console.print("FHIR server stopped" if stopped else "no local FHIR server was running")


@fhir_app.command("status")
def status() -> None:
    """Whether the configured FHIR server answers, and what it is."""
    settings = invocation_settings()
    try:
        capability = gateway_from_settings(settings, timeout_s=5, retries=0).capability()
    except (FhirUnavailable, FhirRequestError) as error:
        fail(f"{settings.effective_fhir_url}: {error}")
    print_json(
        {
            "base_url": settings.effective_fhir_url,
            "software": capability.get("software"),
            "fhirVersion": capability.get("fhirVersion"),
        }
    )


@fhir_app.command("load")
def load(
    bundles: list[Path] = typer.Argument(
        ..., exists=True, dir_okay=False, help="transaction or collection bundles"
    ),
    force: bool = typer.Option(False, help="load even when the bundle's patient is already on the server"),
) -> None:
    """Load Bundles into the configured FHIR server, in the order given (organisations/practitioners first)."""
    settings = invocation_settings()
    gateway = gateway_from_settings(settings, timeout_s=max(settings.fhir_timeout_s, 120))
    loaded = skipped = failed = 0
    for path in bundles:
        try:
            result = load_bundle_file(gateway, path, force=force)
        except (BundleError, FhirUnavailable, FhirRequestError) as error:
            fail(str(error))
        if result.status == "skipped":
            skipped += 1
            console.print(f"  skipped {path.name}: {result.note}")
        else:
            loaded += 1
            failed += result.failed
            console.print(
                f"  loaded  {path.name}: {result.created}/{result.entries} created in {result.duration_s:.2f} s"
                + (f", [red]{result.failed} failed[/]" if result.failed else "")
            )
    console.print(f"{loaded} bundle(s) loaded, {skipped} already present, into {settings.effective_fhir_url}")
    if failed:
        fail(f"{failed} bundle entries were not created")
