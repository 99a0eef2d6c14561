"""Schema-constrained calls that never rely on the model choosing to call a tool.

`function_calling` forces the one tool whose arguments are the schema (llama.cpp and vLLM both constrain the
arguments with a grammar); `json_schema` asks the server for a JSON-schema-constrained answer. Output that still
fails validation (a reply cut at max_tokens, for one) is sent back once with the validation error.
"""

from __future__ import annotations

import re
import warnings
from typing import Any, TypeVar

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from openai import LengthFinishReasonError
from pydantic import BaseModel

from medconsult.config import StructuredOutputMethod

Schema = TypeVar("Schema", bound=BaseModel)

# The OpenAI client types a response-format completion's `parsed` as None when it is given a JSON schema rather than
# a class; serializing our parsed model then warns on every call. The value is right; only the annotation is not.
warnings.filterwarnings(
    "ignore", message=r"(?s)Pydantic serializer warnings:.*field_name='parsed'", category=UserWarning
)


class StructuredOutputError(RuntimeError):
    """The model did not produce output matching the schema, even after the repair attempt."""


async def structured_call(
    model: BaseChatModel,
    schema: type[Schema],
    messages: list[BaseMessage],
    *,
    method: StructuredOutputMethod,
    repair_attempts: int = 1,
    config: RunnableConfig | None = None,
) -> Schema:
    runnable = model.with_structured_output(schema, method=method, include_raw=True)
    history = list(messages)
    problem = ""
    for _ in range(repair_attempts + 1):
        try:
            result = await runnable.ainvoke(history, config=config)
        except LengthFinishReasonError:  # a response-format reply cut at max_tokens: the client refuses to parse it
            result = {"parsed": None, "parsing_error": "the reply was cut at the token limit; write shorter texts"}
        except ValueError as invalid:  # a streamed response-format reply that is not the schema's JSON is raised,
            # not returned as a parsing error (pydantic's ValidationError and LangChain's parser errors included)
            result = {"parsed": None, "parsing_error": f"{type(invalid).__name__}: {invalid}"}
        parsed = result.get("parsed")
        if isinstance(parsed, schema):
            return _without_echo(parsed, schema, history[len(messages) :])
        problem = _describe_failure(result)
        history = [
            *messages,
            HumanMessage(
                f"Your previous answer could not be used ({problem}). "
                f"Answer again with one {schema.__name__} object that matches the schema exactly."
            ),
        ]
    raise StructuredOutputError(f"{schema.__name__}: {problem}")


def _without_echo(parsed: Schema, schema: type[Schema], repairs: list[BaseMessage]) -> Schema:
    """Small models copy the repair request into the answer's free text; that text is ours, not the answer."""
    if not repairs:
        return parsed
    sentences = [s.strip() for m in repairs for s in re.split(r"(?<=[.)])\s+", str(m.content)) if s.strip()]
    try:
        return schema.model_validate(_strip_sentences(parsed.model_dump(mode="json"), sentences))
    except (ValueError, TypeError):  # the cleaning broke a constraint: keep the answer as given
        return parsed


def _strip_sentences(value: Any, sentences: list[str]) -> Any:
    """The same structure with `sentences` removed from every string in it, and nothing else touched."""
    if isinstance(value, str):
        for sentence in sentences:
            value = value.replace(sentence, "")
        return re.sub(r" {2,}", " ", value).strip()
    if isinstance(value, list):
        return [_strip_sentences(v, sentences) for v in value]
    if isinstance(value, dict):
        return {k: _strip_sentences(v, sentences) for k, v in value.items()}
    return value


def _describe_failure(result: dict) -> str:
    if result.get("parsing_error") is not None:
        return f"invalid output: {str(result['parsing_error'])[:300]}"
    raw = result.get("raw")
    invalid = getattr(raw, "invalid_tool_calls", None)
    if invalid:
        return f"invalid tool-call JSON: {str(invalid[0].get('error') or invalid[0].get('args'))[:300]}"
    return "no structured output in the reply"
