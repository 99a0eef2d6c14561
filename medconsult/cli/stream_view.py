"""The differential and the plan on screen while the model writes them.

The model's reply is a JSON object growing token by token, its fields in schema order. Each diagnosis (or plan
action) is printed once a field after the ones shown has begun, so those are complete; the rest of the object
streams on silently and the final report carries all of it. Model text is printed as plain text, never as console
markup.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from langchain_core.utils.json import parse_partial_json
from rich.text import Text

Printer = Callable[[Text], None]


class StreamView:
    """A stream listener (`Tracer.stream_listeners`): shows the items of each reply as they complete."""

    def __init__(self, printer: Printer):
        self.printer = printer
        self._shown: dict[str, int] = {}  # step -> items already printed
        self._header: set[str] = set()

    def __call__(self, step: str, text: str) -> None:
        lines = self._lines(step, text)
        if lines is None:
            return
        shown = self._shown.get(step, 0)
        if len(lines) < shown:  # a new reply of the same step (a repair or a redraft) starts again
            shown = 0
        for line in lines[shown:]:
            self.printer(Text(f"      {line}", style="cyan"))
        self._shown[step] = len(lines)

    def _lines(self, step: str, text: str) -> list[str] | None:
        reply = _parsed(text)
        if reply is None:
            return None
        if step == "differential":
            return [
                f"{rank}. {item['diagnosis']} ({item['likelihood']})"
                for rank, item in enumerate(_items(reply, "diagnoses"), start=1)
                if "supporting" in item  # the field after the likelihood
            ]
        if step == "plan":
            lines = [f"working diagnosis: {reply['working_diagnosis']}"] if "regimen" in reply else []
            return lines + [
                f"[{item['priority']}] {item['action']} ({item['category']})"
                for item in _items(reply, "actions")
                if "rationale" in item  # the field after the priority
            ]
        return None


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        reply = parse_partial_json(text)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _items(reply: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = reply.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
