"""The project's local FHIR R4 server (fhirserver/server.mjs: @medplum/fhir-router behind a Node HTTP server).

No Java FHIR server installs here and no Python one implements search; Medplum's router does, in memory, and the
Node wrapper persists it to a JSON snapshot in the state folder, so loaded data survives a restart.
"""

from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from medconsult.config import REPO_ROOT, Settings
from medconsult.process import ServiceError, is_healthy, read_pid, start, stop_pid

SERVER_DIR = Path(os.environ.get("MEDCONSULT_FHIR_SERVER_DIR", REPO_ROOT / "fhirserver"))


@functools.cache
def _node_flags() -> tuple[str, ...]:
    """Medplum expects Node >= 22 (global WebSocket); Node 20 provides it behind a flag."""
    try:
        version = subprocess.run(["node", "--version"], capture_output=True, text=True, check=True).stdout
    except (FileNotFoundError, subprocess.CalledProcessError) as error:
        raise ServiceError("Node.js is required for the local FHIR server (node not found)") from error
    major = int(version.strip().lstrip("v").split(".")[0])
    return ("--experimental-websocket",) if major < 22 else ()


class LocalFhirServer:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.fhir_dir = settings.state_dir / "fhir"
        self.pid_file = self.fhir_dir / "server.pid"

    @property
    def base_url(self) -> str:
        return self.settings.local_fhir_url

    @property
    def health_url(self) -> str:
        return f"http://{self.settings.fhir_host}:{self.settings.fhir_port}/healthz"

    def is_up(self) -> bool:
        return is_healthy(self.health_url)

    def argv(self) -> list[str]:
        script = SERVER_DIR / "server.mjs"
        if not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
            raise ServiceError(
                f"FHIR server packages missing: run `npm ci` in {SERVER_DIR} (or `make setup`)"
            )
        return [
            "node", *_node_flags(), str(script),
            "--host", self.settings.fhir_host,
            "--port", str(self.settings.fhir_port),
            "--data", str(self.settings.fhir_snapshot.resolve()),
        ]

    def up(self, *, detach: bool = True, timeout_s: float = 60.0) -> int | None:
        """Start the server unless it answers already; returns the pid it started, or None."""
        if self.is_up():
            return None
        process = start(
            "FHIR server",
            self.argv(),
            health_url=self.health_url,
            log_path=self.fhir_dir / "server.log",
            detach=detach,
        )
        process.wait_healthy(timeout_s)
        if detach:
            self.pid_file.write_text(str(process.pid))
        return process.pid

    def down(self) -> bool:
        """Stop the server started by `up` (it writes its snapshot on SIGTERM); False when none was running."""
        pid = read_pid(self.pid_file)
        self.pid_file.unlink(missing_ok=True)
        if pid is None:
            return False
        stop_pid(pid, grace_s=20.0)
        return True


@contextmanager
def fhir_service(settings: Settings) -> Iterator[str]:
    """The FHIR base URL for one command: the configured server, the running local one, or a local one
    started for the duration of the block."""
    if not settings.uses_local_fhir:
        yield settings.effective_fhir_url
        return
    server = LocalFhirServer(settings)
    started = server.up(detach=True)
    try:
        yield server.base_url
    finally:
        if started is not None:
            server.down()
