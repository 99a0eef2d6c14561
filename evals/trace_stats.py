"""Where a case's wall time went, from its trace.jsonl.

Tool calls run in parallel and overlap each other (and the imaging branch may overlap LLM calls in later
graphs), so times are unions of intervals, not sums: LLM time is the union of "llm" intervals, tool time the
part of the union of "tool" intervals not already counted as LLM time, and the rest is everything else in the
"consult" node's span (graph overhead, report rendering, checkpoints).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

Interval = tuple[float, float]


def _interval(event: dict[str, Any]) -> Interval:
    start = datetime.fromisoformat(event["start"]).timestamp()
    return start, start + float(event["duration_s"])


def _union(intervals: list[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _length(intervals: list[Interval]) -> float:
    return sum(end - start for start, end in intervals)


def _overlap(a: list[Interval], b: list[Interval]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


def time_split(events: list[dict[str, Any]]) -> dict[str, Any]:
    runs = [e for e in events if e["kind"] == "node" and e["name"] == "consult"]
    if runs:
        total = float(runs[-1]["duration_s"])
    else:  # a run cut short has no "consult" line: use the span of what it traced
        spans = [_interval(e) for e in events]
        total = max(end for _, end in spans) - min(start for start, _ in spans) if spans else 0.0
    llm = _union([_interval(e) for e in events if e["kind"] == "llm"])
    tools = _union([_interval(e) for e in events if e["kind"] == "tool"])
    llm_s = _length(llm)
    tool_s = _length(tools) - _overlap(tools, llm)
    llm_events = [e for e in events if e["kind"] == "llm"]
    return {
        "wall_s": round(total, 3),
        "llm_s": round(llm_s, 3),
        "tools_s": round(tool_s, 3),
        "rest_s": round(max(0.0, total - llm_s - tool_s), 3),
        "llm_calls": len(llm_events),
        "tool_calls": sum(e["kind"] == "tool" for e in events),
        "tool_errors": sum(e["kind"] == "tool" and bool(e.get("error")) for e in events),
        "prompt_tokens": sum(e.get("prompt_tokens") or 0 for e in llm_events),
        "prompt_tokens_evaluated": _evaluated(llm_events),
        "completion_tokens": sum(e.get("completion_tokens") or 0 for e in llm_events),
    }


def _evaluated(llm_events: list[dict[str, Any]]) -> int | None:
    """Prompt tokens the server processed, cache hits excluded; None unless every call reported them."""
    counts = [e.get("prompt_tokens_evaluated") for e in llm_events if not e.get("error")]
    return sum(counts) if counts and all(c is not None for c in counts) else None
