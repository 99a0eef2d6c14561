from __future__ import annotations

from medconsult.evals.trace_stats import time_split


def _event(kind: str, name: str, start: float, duration: float, **extra) -> dict:
    return {
        "kind": kind,
        "name": name,
        "start": f"2026-01-01T00:00:{start:06.3f}+00:00",
        "duration_s": duration,
        "error": None,
        **extra,
    }


def test_parallel_tools_count_once_and_llm_time_is_separate():
    events = [
        _event("tool", "a", 1.0, 2.0),
        _event("tool", "b", 1.5, 2.0),  # overlapping: 1.0-3.5
        _event("llm", "differential", 4.0, 10.0, prompt_tokens=100, completion_tokens=10),
        _event("tool", "late", 13.0, 2.0),  # 13-15: 1 s inside the LLM call
        _event("node", "consult", 0.0, 20.0),
    ]
    split = time_split(events)
    assert split["llm_s"] == 10.0
    assert split["tools_s"] == 2.5 + 1.0
    assert split["rest_s"] == 20.0 - 10.0 - 3.5
    assert (split["llm_calls"], split["tool_calls"], split["prompt_tokens"]) == (1, 3, 100)


def test_prompt_tokens_evaluated_sum_only_when_every_call_reports_them():
    reported = [
        _event("llm", "differential", 0.0, 5.0, prompt_tokens=5000, prompt_tokens_evaluated=5000),
        _event("llm", "plan", 6.0, 5.0, prompt_tokens=5400, prompt_tokens_evaluated=400),  # prefix reused
    ]
    assert time_split(reported)["prompt_tokens_evaluated"] == 5400
    unreported = [*reported, _event("llm", "repair", 12.0, 5.0, prompt_tokens=5400, prompt_tokens_evaluated=None)]
    assert time_split(unreported)["prompt_tokens_evaluated"] is None  # a partial sum would understate the work
