from __future__ import annotations

import stat
from pathlib import Path

import pytest

from medconsult.config import Settings
from medconsult.llm import llama_server
from medconsult.llm.embedded import llama_server_argv


def _script(path: Path, exit_code: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\nexit {exit_code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return path


def test_a_built_server_that_runs_is_reused_without_building(tmp_path, monkeypatch):
    binary = _script(llama_server.binary_path(tmp_path), 0)
    monkeypatch.setattr(llama_server, "_compile", lambda *a: pytest.fail("rebuilt a working binary"))
    assert llama_server.ensure_binary(tmp_path) == binary


def test_a_broken_binary_is_rebuilt_and_a_missing_compiler_is_named(tmp_path, monkeypatch):
    _script(llama_server.binary_path(tmp_path), 1)  # a half-copied or foreign file
    monkeypatch.setattr(llama_server.shutil, "which", lambda tool: None if tool == "cmake" else "/usr/bin/" + tool)
    with pytest.raises(llama_server.BuildError, match="needs cmake"):
        llama_server.ensure_binary(tmp_path)


def test_the_server_listens_on_loopback_with_one_cached_slot_and_the_model_template():
    argv = llama_server_argv(Settings(embedded_threads=2, embedded_context=8192), Path("/bin/llama-server"),
                             "/m/qwen.gguf", 8123)
    options = dict(zip(argv[1::2], argv[2::2], strict=False))
    assert options["--host"] == "127.0.0.1" and options["--port"] == "8123"
    assert options["--parallel"] == "1" and options["--ctx-size"] == "8192" and options["--threads"] == "2"
    assert "--jinja" in argv and "--no-webui" in argv
    assert options["--flash-attn"] == "off"  # measured slower on the CPU (see Settings.embedded_flash_attention)


def test_a_started_process_reports_its_peak_resident_memory(tmp_path):
    import sys

    from medconsult.process import start

    process = start("sleeper", [sys.executable, "-c", "import time; time.sleep(30)"], "http://127.0.0.1:1/",
                    tmp_path / "sleeper.log")
    try:
        import time

        deadline = time.monotonic() + 10
        while ((peak := process.peak_rss_mb()) is None or peak < 5) and time.monotonic() < deadline:
            time.sleep(0.05)  # until the interpreter has started
        assert peak is not None and 1 < peak < 500  # a Python interpreter: megabytes, not bytes or gigabytes
    finally:
        process.stop()
    assert process.peak_rss_mb() is None  # gone: unknown, not zero
