"""The vLLM command line for a serving profile (GPU hosts; `pip install 'medconsult[vllm]'`)."""

from __future__ import annotations

from medconsult.llm.profiles import ServingProfile


def vllm_command(
    profile: ServingProfile,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    model_path: str | None = None,
    tensor_parallel_size: int = 1,
    api_key: str | None = None,
    extra_args: list[str] | None = None,
) -> list[str]:
    """`vllm serve` arguments; the served model name stays the profile's model id so clients need not change."""
    argv = ["vllm", "serve", model_path or profile.model, "--host", host, "--port", str(port)]
    argv += ["--served-model-name", profile.model, "--seed", "7"]
    if tensor_parallel_size > 1:
        argv += ["--tensor-parallel-size", str(tensor_parallel_size)]
    if api_key:
        argv += ["--api-key", api_key]
    return argv + profile.vllm_args + list(extra_args or [])


def client_environment(profile: ServingProfile, host: str, port: int) -> dict[str, str]:
    """What a medconsult client sets to use this server instead of the embedded one."""
    return {
        "MEDCONSULT_LLM_BASE_URL": f"http://{host}:{port}/v1",
        "MEDCONSULT_LLM_MODEL": profile.model,
        "MEDCONSULT_LLM_PROFILE": profile.name,
    }
