"""The layout maps onto one import namespace, and only `medconsult` lands in site-packages."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYOUT = {
    "medconsult": "medconsult",
    "agents": "medconsult.agents",
    "tools": "medconsult.tools",
    "prompts": "medconsult.prompts",
    "graphs": "medconsult.graphs",
    "evals": "medconsult.evals",
}


def _declared_packages() -> set[str]:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    return set(config["packages"])


def test_every_python_folder_is_packaged_under_medconsult():
    declared = _declared_packages()
    for folder, package in LAYOUT.items():
        for init in (REPO / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(REPO / folder).parts
            dotted = ".".join((package, *relative))
            assert dotted in declared, f"{init.parent} is not packaged as {dotted}"


def test_layout_folders_exist_at_the_root():
    for name in ("pyproject.toml", "README.md", "agents", "tools", "prompts", "graphs", "evals", "tests"):
        assert (REPO / name).exists(), name


def test_the_wheel_installs_only_the_medconsult_namespace(tmp_path: Path):
    """Build the real wheel: its top-level names are what a `pip install` puts into site-packages."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    wheel = next(tmp_path.glob("medconsult-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names if not name.startswith("medconsult-")}
    assert top_level == {"medconsult"}
    for expected in (
        "medconsult/tools/fhir/observations.py",
        "medconsult/prompts/consult.system.md",
        "medconsult/templates/report.md.j2",
        "medconsult/llm/profiles.yaml",
    ):
        assert expected in names


def test_layout_modules_import_under_the_namespace():
    import medconsult.agents.schemas
    import medconsult.evals.trace_stats
    import medconsult.graphs.consult
    import medconsult.prompts
    import medconsult.tools.registry

    assert medconsult.tools.registry.__file__.startswith(str(REPO / "tools"))
    assert medconsult.prompts.render("differential.user.md", question="Q").startswith("Clinical question: Q")


def test_docs_show_the_current_graph():
    from typer.testing import CliRunner

    from medconsult.cli import app

    for args in (["graph"], ["graph", "--react"]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0
        assert result.stdout.strip() in (REPO / "docs" / "graph.md").read_text(), (
            f"docs/graph.md diagram is stale: paste `medconsult {' '.join(args)}` into it"
        )


def test_the_readme_is_short_and_starts_with_the_two_commands():
    readme = (REPO / "README.md").read_text()
    assert len(readme.encode()) < 12_000, "move long sections to docs/"
    first_block = readme.split("```")[1]
    assert "make demo" in first_block and "make test" in first_block
    for link in re.findall(r"\]\((docs/[^)#]+)", readme):
        assert (REPO / link).is_file(), link
