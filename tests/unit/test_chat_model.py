from __future__ import annotations

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from medconsult.config import Settings
from medconsult.llm.chat_model import make_chat_model, structured_output_method


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
    assert structured_output_method(settings) == "function_calling"
    assert structured_output_method(Settings(llm_profile="medgemma-27b")) == "json_schema"
    assert structured_output_method(Settings(llm_profile="medgemma-27b", llm_structured_output="function_calling")) == "function_calling"
    assert structured_output_method(Settings()) == "function_calling"
