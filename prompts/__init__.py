"""Prompt templates (Jinja2 files in this folder), rendered by name."""

from __future__ import annotations

from functools import cache
from importlib import resources

import jinja2

_environment = jinja2.Environment(
    loader=jinja2.FunctionLoader(lambda name: resources.files(__name__).joinpath(name).read_text()),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=False,
    autoescape=False,
)


@cache
def _template(name: str) -> jinja2.Template:
    return _environment.get_template(name)


def render(name: str, **values: object) -> str:
    """Render prompts/<name> (for example "differential.system.md")."""
    return _template(name).render(**values).strip()
