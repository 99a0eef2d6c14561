"""A tool plugin installed from its own package reaches the consult: examples/medconsult-smoking-status goes into a
fresh virtual environment layered on this one, and a consult run there cites its fact in the report."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from conftest import DEMO_MRN, REPO

pytestmark = pytest.mark.integration

PLUGIN = REPO / "examples" / "medconsult-smoking-status"


@pytest.fixture(scope="module")
def plugin_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A venv that sees this project's packages (a .pth runs site.addsitedir, so the editable install's finder
    loads too) and has the plugin installed in its own site-packages, from its folder, offline."""
    env_dir = tmp_path_factory.mktemp("plugin") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site_packages = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()
    host = sysconfig.get_paths()["purelib"]
    Path(site_packages, "medconsult_host.pth").write_text(f"import site; site.addsitedir({host!r})\n")
    install = [str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
               str(PLUGIN)]
    subprocess.run(install, check=True, capture_output=True, text=True, cwd=env_dir)
    return python


def _run(python: Path, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "medconsult.cli", *args], env={**os.environ, **env}, cwd=cwd,
                          capture_output=True, text=True, timeout=900)


def test_the_plugin_passes_its_own_tests(plugin_python: Path, tmp_path: Path):
    result = subprocess.run([str(plugin_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(PLUGIN / "tests")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def test_an_installed_plugin_tool_is_listed_and_its_fact_reaches_the_report(
    plugin_python: Path, fhir_server, llm_server, tmp_path: Path
):
    listed = _run(plugin_python, ["tools", "list", "--json"], {}, tmp_path)
    assert listed.returncode == 0, listed.stderr[-3000:]
    described = next(t for t in json.loads(listed.stdout) if t["name"] == "smoking_status")
    assert described["stage"] == "record"

    base_url, model = llm_server
    env = {"MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url, "MEDCONSULT_LLM_BASE_URL": base_url,
           "MEDCONSULT_LLM_MODEL": model, "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
           "MEDCONSULT_EVIDENCE_ROUNDS": "0"}
    out = tmp_path / "out"
    args = ["run", "--patient", DEMO_MRN, "--as-of", "2018-09-29", "--question", "Cough and fever?", "--out", str(out)]
    result = _run(plugin_python, args, env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    nodes = {e["name"] for e in trace if e["kind"] == "node"}
    assert "ehr_context.smoking_status" in nodes  # the record stage ran it beside the built-in tools
    report = (out / "report.md").read_text()
    catalogue = report.split("## Patient record used")[1]
    # A citable fact of the plugin, tied to the FHIR resource it read.
    assert re.search(r"\| history \| tobacco smoking status: Never smoker \(recorded 2018-09-29\)[^|]*"
                     r"\| `Observation/[0-9a-f-]+`", catalogue), catalogue[:3000]


@pytest.mark.parametrize("stage", ["record", "lungs"])
def test_a_scaffolded_plugin_installs_is_listed_and_passes_its_own_tests(plugin_python: Path, tmp_path: Path,
                                                                         stage: str):
    name = f"scaffolded_{stage}"
    made = _run(plugin_python, ["tools", "new", name, "--stage", stage, "--out", str(tmp_path)], {}, tmp_path)
    assert made.returncode == 0, made.stderr[-3000:]
    package = tmp_path / f"medconsult-scaffolded-{stage}"
    install = [str(plugin_python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
               "-e", str(package)]
    subprocess.run(install, check=True, capture_output=True, text=True, cwd=tmp_path)

    listed = _run(plugin_python, ["tools", "list", "--json"], {}, tmp_path)
    described = next(t for t in json.loads(listed.stdout) if t["name"] == name)
    assert described["stage"] == stage
    tests = subprocess.run([str(plugin_python), "-m", "pytest", "-q", "-p", "no:cacheprovider", str(package / "tests")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
    assert "3 passed" in tests.stdout
