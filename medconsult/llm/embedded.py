"""The embedded llama.cpp server (`llama-server`, see `medconsult.llm.llama_server`) used when no LLM server is
configured.

It speaks the same OpenAI-compatible API as vLLM, so the rest of the project cannot tell them apart. One slot
(`--parallel 1`): the consult's calls run one after another and share a prompt prefix, which that slot keeps cached
between calls. The model's own chat template is used (`--jinja`), so forced tool calls work as on vLLM.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from medconsult.config import Settings
from medconsult.llm import llama_server, models
from medconsult.process import ManagedProcess, free_port, start


@dataclass
class LlmEndpoint:
    base_url: str
    model: str
    process: ManagedProcess | None = None  # set when this command started the server


def llama_server_argv(
    settings: Settings, binary: Path, model_path: str, port: int, host: str = "127.0.0.1"
) -> list[str]:
    return [
        str(binary),
        "--model", model_path,
        "--alias", settings.embedded_model,
        "--host", host,
        "--port", str(port),
        "--threads", str(settings.embedded_threads),
        "--ctx-size", str(settings.embedded_context),
        "--flash-attn", settings.embedded_flash_attention,
        "--parallel", "1",
        "--jinja",
        "--no-webui",
    ]


def start_embedded(settings: Settings, *, detach: bool = False) -> LlmEndpoint:
    model_path = models.ensure(settings.embedded_model, settings.model_dir)
    binary = llama_server.ensure_binary(settings.model_dir.parent)
    port = settings.embedded_port or free_port()
    process = start(
        "llama.cpp server",
        llama_server_argv(settings, binary, str(model_path), port),
        health_url=f"http://127.0.0.1:{port}/health",
        log_path=settings.state_dir / "logs" / f"llama-{port}.log",
        detach=detach,
    )
    process.wait_healthy(timeout_s=120)
    return LlmEndpoint(f"http://127.0.0.1:{port}/v1", settings.embedded_model, process)


@contextmanager
def llm_endpoint(settings: Settings) -> Iterator[LlmEndpoint]:
    """The configured server, or an embedded one that lives exactly as long as the `with` block."""
    if not settings.uses_embedded_llm:
        yield LlmEndpoint(settings.llm_base_url, settings.llm_model or "default")
        return
    endpoint = start_embedded(settings)
    try:
        yield endpoint
    finally:
        endpoint.process.stop()
