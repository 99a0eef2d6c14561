"""`medconsult tools new NAME --stage STAGE`: a plugin package that installs, registers and passes its own tests.

The files come from medconsult/templates/plugin: a tool of the chosen stage (record-like stages read an
Observation; image stages measure the radiograph), its factory, the entry point and a test module.
"""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from jinja2 import Environment, PackageLoader, StrictUndefined

from medconsult.tools.base import Stage

NAME_RE = re.compile(r"^[a-z][a-z0-9_]{1,39}$")
IMAGE_STAGES = (Stage.IMAGE, Stage.LUNGS)
STAGE_HELP = {
    Stage.RECORD: "every consult calls it once with the patient, beside the built-in record tools.",
    Stage.SCORES: "every consult calls it once with the patient, beside the built-in calculators.",
    Stage.IMAGE: "every consult calls it on each radiograph that loaded.",
    Stage.LUNGS: "every consult calls it on each radiograph whose lungs were segmented, with the two masks.",
    Stage.ON_REQUEST: "the consult calls it only when a step asks for it.",
}


class ScaffoldError(ValueError):
    """A name or folder the scaffold cannot use; the message says which and why."""


def new_plugin(name: str, stage: Stage, parent: Path) -> Path:
    """Write the package `medconsult-NAME` under `parent` and return its folder."""
    if not NAME_RE.match(name) or keyword.iskeyword(name) or "__" in name:
        raise ScaffoldError(f"{name!r}: a tool name is 2-40 lower-case letters, digits and single underscores")
    if stage == Stage.INTAKE:
        raise ScaffoldError("the intake stage is the graph's own (finding the patient, loading images)")
    package = f"medconsult-{name.replace('_', '-')}"
    folder = parent / package
    if folder.exists():
        raise ScaffoldError(f"{folder} already exists")
    module = f"medconsult_{name}"
    values = {
        "name": name, "module": module, "package": package, "stage": stage.name, "stage_value": stage.value,
        "stage_help": STAGE_HELP[stage], "class_name": "".join(p.capitalize() for p in name.split("_")) + "Tool",
    }
    kind = "image" if stage in IMAGE_STAGES else "record"
    files = {
        "pyproject.toml": "pyproject.toml.j2",
        "README.md": "README.md.j2",
        f"{module}/__init__.py": "__init__.py.j2",
        f"{module}/{name}.py": f"tool_{kind}.py.j2",
        f"tests/test_{name}.py": f"test_{kind}.py.j2",
    }
    templates = Environment(
        loader=PackageLoader("medconsult", "templates/plugin"), undefined=StrictUndefined, keep_trailing_newline=True
    )
    for relative, template in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(templates.get_template(template).render(**values))
    return folder
