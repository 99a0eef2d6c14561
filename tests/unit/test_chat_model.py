from __future__ import annotations

import json

import httpx
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from medconsult.agents.schemas import differential_request
from medconsult.config import Settings
from medconsult.llm.chat_model import make_chat_model, structured_output_method
from medconsult.llm.structured import structured_call


def _payload(settings: Settings, messages):
    model = make_chat_model(settings, "http://127.0.0.1:1/v1", "m")
    return model._get_request_payload(messages)


def test_payload_sends_max_tokens_and_empty_content_for_tool_calls():
    messages = [
        HumanMessage("hi"),
        AIMessage(content="", tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1"}]),
        ToolMessage("result", tool_call_id="c1"),
    ]
    payload = _payload(Settings(llm_max_tokens=321), messages)
    assert payload["max_tokens"] == 321 and "max_completion_tokens" not in payload
    assistant = [m for m in payload["messages"] if m["role"] == "assistant"][0]
    assert assistant["content"] == "" and assistant["tool_calls"]


def test_profile_sets_client_options():
    settings = Settings(llm_profile="qwen3-medical")
    payload = _payload(settings, [HumanMessage("hi")])
    assert payload["extra_body"] == {"chat_template_kwargs": {"enable_thinking": False}}
    assert structured_output_method(settings) == "json_schema"  # the schema out of the prompt: a shared prefix
    assert structured_output_method(Settings(llm_profile="medgemma-27b")) == "json_schema"
    assert (
        structured_output_method(
            Settings(llm_profile="medgemma-27b", llm_structured_output="function_calling")
        )
        == "function_calling"
    )
    # A response format by default, on any server: the schema stays out of the shared prompt prefix.
    assert structured_output_method(Settings()) == "json_schema"
    assert structured_output_method(Settings(llm_base_url="http://gpu.test/v1")) == "json_schema"


def _recording_client(reply_content: str, sent: list[dict]) -> httpx.AsyncClient:
    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={
            "id": "c", "object": "chat.completion", "created": 0, "model": "m",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply_content}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
        })

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_json_schema_mode_sends_the_schema_as_response_format():
    """What a MedGemma profile sends to vLLM: a JSON-schema response format and no tools."""
    labels = ["Leukocytes [lab F1]"]
    answer = {"summary": "s", "diagnoses": [{"diagnosis": "CAP", "likelihood": "high", "reasoning": "r",
              "discriminating_test": "CXR", "supporting": [labels[0]], "opposing": []}]}
    sent: list[dict] = []
    settings = Settings(llm_profile="medgemma-27b", llm_stream=False)
    model = make_chat_model(
        settings, "http://vllm.test/v1", "m", http_async_client=_recording_client(json.dumps(answer), sent)
    )
    parsed = await structured_call(model, differential_request(labels), [HumanMessage("q")],
                                   method=structured_output_method(settings))
    assert parsed.diagnoses[0].diagnosis == "CAP"
    body = sent[0]
    assert body["response_format"]["type"] == "json_schema" and "tools" not in body
    assert labels[0] in json.dumps(body["response_format"]["json_schema"]["schema"])
    assert body["max_tokens"] == settings.llm_max_tokens


def _streaming_client(reply_content: str, sent: list[dict]) -> httpx.AsyncClient:
    """An OpenAI-compatible server streaming `reply_content` in small pieces, then the usage with its cache hits."""

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(json.loads(request.content))
        base = {"id": "c", "object": "chat.completion.chunk", "created": 0, "model": "m"}
        pieces = [reply_content[i : i + 7] for i in range(0, len(reply_content), 7)]
        chunks = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": piece},
                                        "finish_reason": None}]} for piece in pieces]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        chunks.append({**base, "choices": [], "usage": {"prompt_tokens": 3000, "completion_tokens": 40,
                       "total_tokens": 3040, "prompt_tokens_details": {"cached_tokens": 2900}}})
        body = "".join(f"data: {json.dumps(chunk)}\n\n" for chunk in chunks) + "data: [DONE]\n\n"
        return httpx.Response(200, text=body, headers={"content-type": "text/event-stream"})

    return httpx.AsyncClient(transport=httpx.MockTransport(handler))


async def test_a_streamed_structured_reply_is_shown_as_it_grows_and_parsed_at_the_end():
    from medconsult.tracing import Tracer

    labels = ["Leukocytes [lab F1]"]
    answer = {"summary": "s", "diagnoses": [{"diagnosis": "CAP", "likelihood": "high", "reasoning": "r",
              "discriminating_test": "CXR", "supporting": [labels[0]], "opposing": []}]}
    sent: list[dict] = []
    partial: list[str] = []
    tracer = Tracer(stream_listeners=[lambda step, text: partial.append(text)])
    model = make_chat_model(Settings(), "http://embedded.test/v1", "m",
                            http_async_client=_streaming_client(json.dumps(answer), sent))
    parsed = await structured_call(model, differential_request(labels), [HumanMessage("q")], method="json_schema",
                                   config={"callbacks": [tracer.llm_callback("differential")]})
    assert parsed.diagnoses[0].diagnosis == "CAP"
    assert sent[0]["stream"] is True and sent[0]["response_format"]["type"] == "json_schema"
    assert len(partial) > 3 and partial[-1] == json.dumps(answer)  # the reply, piece by piece
    line = tracer.events[-1]
    assert (line["prompt_tokens"], line["prompt_tokens_evaluated"], line["completion_tokens"]) == (3000, 100, 40)
    assert line["first_token_s"] is not None and line["first_token_s"] <= line["duration_s"]
