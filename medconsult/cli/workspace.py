"""`medconsult workspace`: the clinician workspace in the browser; `medconsult workspace add-user NAME`."""

from __future__ import annotations

import typer

from medconsult.cli.common import console, fail, invocation_settings

workspace_app = typer.Typer(help="The clinician workspace: chat over a case in the browser.")


@workspace_app.callback(invoke_without_command=True)
def serve(
    context: typer.Context,
    host: str = typer.Option(None, help="address to serve on (default: the settings', 127.0.0.1)"),
    port: int = typer.Option(None, help="port (default: the settings', 8300)"),
) -> None:
    """Serve the workspace (starting the local FHIR and LLM servers when none is configured) until Ctrl-C."""
    if context.invoked_subcommand is not None:
        return
    import uvicorn

    from medconsult.fhir.client import FhirUnavailable
    from medconsult.llm.models import ModelError
    from medconsult.process import ServiceError
    from medconsult.runner import consult_services
    from medconsult.workspace.app import create_app
    from medconsult.workspace.security import check_binding
    from medconsult.workspace.store import WorkspaceStore

    settings = invocation_settings()
    host, port = host or settings.workspace_host, port or settings.workspace_port
    store = WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite")
    try:
        check_binding(host, store.user_count(), settings.workspace_secret is not None)
    except ValueError as error:
        fail(str(error))
    if store.user_count() == 0:
        console.print("[yellow]no users yet[/]: add one with `medconsult workspace add-user NAME`")
    try:
        with consult_services(settings) as services:
            console.print(f"FHIR {services.fhir_base_url} · LLM {services.model_name}")
            console.print(f"[bold]workspace: http://{host}:{port}/[/]  (Ctrl-C stops it)")
            # No access log: URLs carry only random case ids, but a log line per request helps nobody here.
            uvicorn.run(create_app(settings, services, store), host=host, port=port, access_log=False,
                        log_level="warning")
    except (ServiceError, ModelError, FhirUnavailable) as error:
        fail(str(error))


@workspace_app.command("add-user")
def add_user(
    name: str = typer.Argument(..., help="sign-in name (letters, digits, . _ @ -)"),
    password: str = typer.Option(
        ...,
        prompt=True,
        hide_input=True,
        confirmation_prompt=True,
        envvar="MEDCONSULT_WORKSPACE_PASSWORD",
        help="at least 12 characters (prompted; or MEDCONSULT_WORKSPACE_PASSWORD)",
    ),
) -> None:
    """Add a clinician who may sign in (or set a new password for one)."""
    import re

    from medconsult.workspace.auth import NAME_PATTERN, hash_password
    from medconsult.workspace.store import WorkspaceStore

    if not re.match(NAME_PATTERN, name):
        fail("a name is 1-64 letters, digits or . _ @ -")
    try:
        password_hash = hash_password(password)
    except ValueError as error:
        fail(str(error))
    settings = invocation_settings()
    WorkspaceStore(settings.resolved_workspace_dir / "workspace.sqlite").add_user(name, password_hash)
    console.print(f"user {name} can sign in")
