"""Every arrow points down: no module imports a package of a higher layer (docs/architecture.md holds the order)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = {"medconsult": (), "agents": ("agents",), "graphs": ("graphs",), "tools": ("tools",), "evals": ("evals",),
         "prompts": ("prompts",)}  # folder -> its place under `medconsult`


def layers() -> dict[str, int]:
    """Package (the name after `medconsult.`) -> layer number, from the table in docs/architecture.md."""
    table = (REPO / "docs" / "architecture.md").read_text()
    found = {}
    for number, packages in re.findall(r"^\| (\d+) \| ([^|]+) \|", table, re.MULTILINE):
        for package in re.findall(r"`([a-z_]+)`", packages):
            found[package] = int(number)
    return found


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> dict[str, Path]:
    """Every source module by its import name."""
    found = {}
    for folder, prefix in ROOTS.items():
        for path in (REPO / folder).rglob("*.py"):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if folder == "medconsult" and parts[0] in {name for name in ROOTS if name != "medconsult"}:
                continue
            name = ".".join(["medconsult", *prefix, *parts])
            found[name.removesuffix(".__init__")] = path
    return found


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
    return {name for name in names if name == "medconsult" or name.startswith("medconsult.")}


def test_every_package_has_a_layer():
    order = layers()
    assert {_package(module) for module in _modules()} <= set(order), "add the package to docs/architecture.md"


def upward_imports(modules: dict[str, Path], order: dict[str, int]) -> list[str]:
    return [
        f"{module} (layer {order[_package(module)]}) imports {target} (layer {order[_package(target)]})"
        for module, path in modules.items()
        for target in _imports(path)
        if order.get(_package(target), 0) > order.get(_package(module), 0)
    ]


def test_no_import_runs_up_the_layers():
    assert upward_imports(_modules(), layers()) == []


def test_the_check_sees_an_upward_import_even_inside_a_function(tmp_path: Path):
    lazy = tmp_path / "lazy.py"
    lazy.write_text("def f():\n    from medconsult.graphs.consult import build_consult_graph\n")
    found = upward_imports({"medconsult.tools.lazy": lazy}, layers())
    assert found == ["medconsult.tools.lazy (layer 6) imports medconsult.graphs.consult (layer 8)"]
