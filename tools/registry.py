"""Tool discovery through the `medconsult.tools` entry-point group.

Each entry point names a factory `(ToolContext) -> Iterable[BaseTool]`. This project registers its own tools the
same way (pyproject.toml), so a separate package adds tools exactly as this one does. A plugin that fails to
load is reported, not fatal: the other tools still work.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib.metadata import entry_points

from langchain_core.tools import BaseTool

from medconsult.tools.base import Stage, ToolContext

ENTRY_POINT_GROUP = "medconsult.tools"


@dataclass
class ToolRegistry:
    tools: dict[str, BaseTool] = field(default_factory=dict)
    load_errors: dict[str, str] = field(default_factory=dict)  # entry point -> why it could not be loaded

    def get(self, name: str) -> BaseTool:
        try:
            return self.tools[name]
        except KeyError:
            raise KeyError(f"no tool named {name!r}; available: {', '.join(sorted(self.tools))}") from None

    def result_models(self) -> dict[str, type]:
        """Typed result model of each tool that declares one (plain LangChain tools do not)."""
        return {
            name: model for name, tool in self.tools.items() if (model := getattr(tool, "result_model", None))
        }

    def describe(self) -> list[dict]:
        return [
            {"name": t.name, "stage": str(getattr(t, "stage", Stage.ON_REQUEST)), "description": t.description,
             "args_schema": t.args_schema.model_json_schema()}
            for t in sorted(self.tools.values(), key=lambda t: t.name)
        ]


def discover_tools(context: ToolContext) -> ToolRegistry:
    registry = ToolRegistry()
    disabled = set(context.settings.disabled_tools)
    for entry_point in entry_points(group=ENTRY_POINT_GROUP):
        try:
            provided = list(entry_point.load()(context))
        except Exception as error:  # noqa: BLE001 - a broken plugin must not take the others down
            registry.load_errors[entry_point.name] = f"{type(error).__name__}: {error}"
            continue
        for tool in provided:
            if not isinstance(tool, BaseTool) or tool.args_schema is None:
                registry.load_errors[entry_point.name] = f"{tool!r} is not a BaseTool with an args_schema"
                continue
            if tool.name in registry.tools:
                registry.load_errors[entry_point.name] = f"duplicate tool name {tool.name!r}"
                continue
            if tool.name not in disabled:
                registry.tools[tool.name] = tool
    return registry
