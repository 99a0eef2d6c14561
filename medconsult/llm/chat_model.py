"""One chat-model factory for every OpenAI-compatible server: vLLM in production, llama.cpp here."""

from __future__ import annotations

from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_openai import ChatOpenAI

from medconsult.config import Settings, StructuredOutputMethod
from medconsult.llm.profiles import get_profile


class OpenAICompatibleChat(ChatOpenAI):
    """ChatOpenAI with the request payload every OpenAI-compatible server accepts.

    - `max_tokens`, not `max_completion_tokens`: llama.cpp ignores the latter and then generates up to the
      context limit; vLLM accepts both.
    - assistant messages carrying tool calls get `content: ""` instead of null, which llama.cpp rejects (HTTP 500).
    """

    def _get_request_payload(self, input_: Any, *, stop: list[str] | None = None, **kwargs: Any) -> dict:
        payload = super()._get_request_payload(input_, stop=stop, **kwargs)
        if "max_completion_tokens" in payload:
            payload["max_tokens"] = payload.pop("max_completion_tokens")
        for message in payload.get("messages", []):
            if message.get("role") == "assistant" and message.get("content") is None:
                message["content"] = ""
        return payload


def make_chat_model(settings: Settings, base_url: str, model: str, **client_options: Any) -> BaseChatModel:
    """`client_options` go to ChatOpenAI unchanged (for example an `http_client` with custom TLS)."""
    extra_body = get_profile(settings.llm_profile).extra_body if settings.llm_profile else {}
    return OpenAICompatibleChat(
        base_url=base_url,
        model=model,
        api_key=settings.llm_api_key,
        temperature=settings.llm_temperature,
        seed=settings.llm_seed,
        max_tokens=settings.llm_max_tokens,
        timeout=settings.llm_timeout_s,
        max_retries=settings.llm_retries,
        streaming=settings.llm_stream,
        stream_usage=True,  # the last chunk carries the token counts (and the server's cache hits)
        extra_body=extra_body or None,
        **client_options,
    )


def structured_output_method(settings: Settings) -> StructuredOutputMethod:
    """Explicit setting, else the profile's, else a JSON-schema response format (llama.cpp, vLLM and the OpenAI API
    all accept it).

    The server turns a response format into a grammar without putting the schema into the prompt, so every call of
    a case keeps the same prompt prefix and its cached evaluation. A forced tool call (`function_calling`) also
    constrains the reply, but chat templates write the tool's schema into the system message, which then differs per
    step. (With smollm2 on llama.cpp's server, forced tool calls also ran to the token limit where the same schema
    as a response format did not.)
    """
    if settings.llm_structured_output:
        return settings.llm_structured_output
    if settings.llm_profile:
        return get_profile(settings.llm_profile).structured_output
    return "json_schema"
