"""vLLM cannot run here: the command lines it would get are tested instead."""

from __future__ import annotations

import shlex

from typer.testing import CliRunner

from medconsult.cli import app
from medconsult.llm.profiles import get_profile, load_profiles
from medconsult.llm.vllm import client_environment, vllm_command


def test_qwen3_medical_profile_uses_the_hermes_tool_parser():
    argv = vllm_command(get_profile("qwen3-medical"), port=8001, tensor_parallel_size=2)
    line = shlex.join(argv)
    assert argv[:3] == ["vllm", "serve", "Intelligent-Internet/II-Medical-8B"]
    assert "--enable-auto-tool-choice --tool-call-parser hermes" in line
    assert "--reasoning-parser qwen3" in line and "--tensor-parallel-size 2" in line and "--port 8001" in line


def test_medgemma_profiles_use_json_schema_and_no_tool_parser():
    for name in ("medgemma-27b", "medgemma-4b"):
        profile = get_profile(name)
        assert profile.structured_output == "json_schema"
        assert "--tool-call-parser" not in vllm_command(profile)


def test_every_profile_serves_under_its_model_id():
    for profile in load_profiles().values():
        argv = vllm_command(profile, model_path="/models/local")
        assert argv[2] == "/models/local"
        assert argv[argv.index("--served-model-name") + 1] == profile.model
        env = client_environment(profile, "10.0.0.5", 8000)
        assert (
            env["MEDCONSULT_LLM_BASE_URL"] == "http://10.0.0.5:8000/v1"
            and env["MEDCONSULT_LLM_PROFILE"] == profile.name
        )


def test_cli_prints_the_command_line_in_dry_run():
    result = CliRunner().invoke(
        app,
        [
            "llm",
            "serve",
            "--engine",
            "vllm",
            "--profile",
            "medgemma-27b",
            "--dry-run",
            "--port",
            "8002",
            "--",
            "--max-num-seqs",
            "64",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "vllm serve google/medgemma-27b-text-it --host 127.0.0.1 --port 8002" in result.stdout
    assert result.stdout.strip().endswith("--max-num-seqs 64")


def test_serving_beyond_this_machine_needs_an_api_key_and_never_prints_it(monkeypatch):
    from typer.testing import CliRunner

    from medconsult.cli import app

    serve = ["llm", "serve", "--engine", "vllm", "--profile", "medgemma-27b", "--dry-run", "--host", "0.0.0.0"]
    refused = CliRunner().invoke(app, serve)
    assert refused.exit_code == 1 and "refusing to serve on 0.0.0.0" in refused.output
    monkeypatch.setenv("MEDCONSULT_LLM_API_KEY", "s3cret-key-value")
    served = CliRunner().invoke(app, serve)
    assert served.exit_code == 0, served.output
    assert "--api-key '***'" in served.stdout or "--api-key ***" in served.stdout
    assert "s3cret-key-value" not in served.output
    loopback = CliRunner().invoke(app, ["llm", "serve", "--engine", "vllm", "--profile", "medgemma-27b", "--dry-run"])
    assert loopback.exit_code == 0 and "s3cret-key-value" not in loopback.output
