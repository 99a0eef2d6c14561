from __future__ import annotations

from medconsult.evals.bench_llm import _call_figures, _request_of, _time_to


def _llm(name: str, start: str, duration: float, **usage) -> dict:
    return {"kind": "llm", "name": name, "start": start, "duration_s": duration, "error": None, **usage}


TRACE = [
    {"kind": "node", "name": "intake", "start": "2026-01-01T00:00:00+00:00", "duration_s": 1.0, "error": None},
    _llm("request_evidence", "2026-01-01T00:00:10+00:00", 50.0, prompt_tokens=2000, prompt_tokens_evaluated=2000,
         completion_tokens=21, first_token_s=40.0),
    _llm("differential", "2026-01-01T00:01:05+00:00", 45.0, prompt_tokens=2600, prompt_tokens_evaluated=600,
         completion_tokens=301, first_token_s=15.0),
]


def test_rates_follow_from_the_evaluated_tokens_and_the_first_token_time():
    figures = _call_figures(TRACE[2])
    assert figures["prefill_tok_s"] == 40.0  # 600 evaluated tokens before the first token at 15 s
    assert figures["decode_tok_s"] == 10.0  # 300 tokens after the first in the remaining 30 s
    unknown = _call_figures({**TRACE[2], "first_token_s": None, "prompt_tokens_evaluated": None})
    assert unknown["prefill_tok_s"] is None and unknown["decode_tok_s"] is None  # not streamed: not guessed


def test_time_to_the_differential_runs_from_intake_to_the_end_of_its_call():
    assert _time_to(TRACE, "differential") == 110.0
    assert _time_to(TRACE, "plan") is None


def test_a_request_is_matched_to_its_step_only_when_every_call_was_captured():
    requests = [{"n": 1}, {"n": 2}]
    assert _request_of(requests, "differential", TRACE) == {"n": 2}
    assert _request_of(requests[:1], "differential", TRACE) is None
