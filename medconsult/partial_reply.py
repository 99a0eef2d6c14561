"""The items of a differential or plan reply that are complete while the model is still writing it.

The reply is a JSON object growing token by token, its fields in schema order: an item (a diagnosis, a plan action)
is complete once a field after the ones shown has begun. The terminal (`cli/stream_view.py`) and the web workspace
show these lines as they arrive; the final report carries the whole reply.
"""

from __future__ import annotations

from typing import Any

from langchain_core.utils.json import parse_partial_json


def reply_lines(step: str, text: str) -> list[str] | None:
    """The complete items of a differential or plan reply so far, one line each (None for other steps, or
    before the reply parses)."""
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


def partial_answer(text: str) -> str | None:
    """The `answer` field of a follow-up reply so far."""
    reply = _parsed(text)
    answer = reply.get("answer") if reply else None
    return answer if isinstance(answer, str) else None


def _parsed(text: str) -> dict[str, Any] | None:
    try:
        reply = parse_partial_json(text)
    except ValueError:
        return None
    return reply if isinstance(reply, dict) else None


def _items(reply: dict[str, Any], key: str) -> list[dict[str, Any]]:
    items = reply.get(key)
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
