"""The differential and the plan on screen while the model writes them.

The model's reply is a JSON object growing token by token, its fields in schema order. Each diagnosis (or plan
action) is printed once a field after the ones shown has begun, so those are complete; the rest of the object
streams on silently and the final report carries all of it. Model text is printed as plain text, never as console
markup.
"""

from __future__ import annotations

from collections.abc import Callable

from rich.text import Text

from medconsult.partial_reply import reply_lines

Printer = Callable[[Text], None]


class StreamView:
    """A stream listener (`Tracer.stream_listeners`): shows the items of each reply as they complete."""

    def __init__(self, printer: Printer):
        self.printer = printer
        self._shown: dict[str, int] = {}  # step -> items already printed
        self._header: set[str] = set()

    def __call__(self, step: str, text: str) -> None:
        lines = reply_lines(step, text)
        if lines is None:
            return
        shown = self._shown.get(step, 0)
        if len(lines) < shown:  # a new reply of the same step (a repair or a redraft) starts again
            shown = 0
        for line in lines[shown:]:
            self.printer(Text(f"      {line}", style="cyan"))
        self._shown[step] = len(lines)
