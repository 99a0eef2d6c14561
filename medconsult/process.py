"""Starting, health-checking and stopping the local services (llama.cpp server, FHIR server).

Both services are ordinary child processes bound to 127.0.0.1. A service started for one command is stopped by
that command; one started with `medconsult fhir up` is detached and recorded in a pid file so that
`medconsult fhir down` (or `make`) can stop it later.
"""

from __future__ import annotations

import ipaddress
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


class ServiceError(RuntimeError):
    """A local service could not be started or did not become healthy."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_healthy(url: str, timeout_s: float = 2.0) -> bool:
    try:
        return httpx.get(url, timeout=timeout_s).status_code == 200
    except httpx.HTTPError:
        return False


@dataclass
class ManagedProcess:
    """A started service: its process, the URL that answers 200 when it is ready, and its log file."""

    name: str
    process: subprocess.Popen
    health_url: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait_healthy(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with code {self.process.returncode} while starting; "
                    f"last log lines:\n{tail(self.log_path)}"
                )
            if is_healthy(self.health_url):
                return
            time.sleep(0.25)
        self.stop()
        raise ServiceError(f"{self.name} not healthy at {self.health_url} after {timeout_s:.0f} s")

    def stop(self, grace_s: float = 10.0) -> None:
        stop_pid(self.process.pid, grace_s, self.process)

    def peak_rss_mb(self) -> float | None:
        """The process's peak resident memory so far (Linux VmHWM; mapped model pages count once they are read).

        None where /proc is absent or the process is gone."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        return None


def start(
    name: str,
    argv: list[str],
    health_url: str,
    log_path: Path,
    *,
    detach: bool = False,
    env: dict | None = None,
) -> ManagedProcess:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log = open(log_path, "ab")
    process = subprocess.Popen(
        argv,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=detach,  # detached services survive the command that started them
        env={**os.environ, **(env or {})},
    )
    log.close()
    return ManagedProcess(name, process, health_url, log_path)


def stop_pid(pid: int, grace_s: float = 10.0, process: subprocess.Popen | None = None) -> None:
    """SIGTERM (services save state on it), then SIGKILL after the grace period."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not _alive(pid, process):
            return
        time.sleep(0.1)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if process is not None:
        process.wait(timeout=5)


def _alive(pid: int, process: subprocess.Popen | None) -> bool:
    if process is not None:
        return process.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie of a detached service still answers kill(0); check its state.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid, None) else None


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
