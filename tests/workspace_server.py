"""`medconsult workspace` as a clinician starts it, for integration tests: users added, served on a free port."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from medconsult.process import free_port


@contextmanager
def served_workspace(env: dict[str, str], users: list[str], log_path: Path) -> Iterator[str]:
    """Add `users` (their password from MEDCONSULT_WORKSPACE_PASSWORD in `env`), serve the workspace until the block
    ends and yield its URL; its output goes to `log_path`, shown when it fails to come up."""
    cli = str(Path(sys.executable).parent / "medconsult")
    for user in users:
        subprocess.run([cli, "workspace", "add-user", user], env=env, check=True, capture_output=True, timeout=60)
    port = free_port()
    with log_path.open("w") as log:
        server = subprocess.Popen([cli, "workspace", "--port", str(port)], env=env, stdout=log, stderr=log)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None and time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.5)
            yield url
        finally:
            server.terminate()
            server.wait(timeout=30)
