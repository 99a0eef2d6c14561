from __future__ import annotations

from uuid import uuid4

from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, LLMResult

from medconsult.tracing import Tracer


def _finish(usage: dict | None, usage_metadata: dict | None = None) -> dict:
    tracer = Tracer()
    callback = tracer.llm_callback("differential")
    run_id = uuid4()
    callback.on_chat_model_start({}, [], run_id=run_id)
    message = AIMessage(content="{}", usage_metadata=usage_metadata)
    output = {"token_usage": usage} if usage else {}
    result = LLMResult(generations=[[ChatGeneration(message=message)]], llm_output=output)
    callback.on_llm_end(result, run_id=run_id)
    return tracer.events[-1]


def test_an_llm_line_counts_the_prompt_tokens_the_server_did_not_take_from_its_cache():
    # The OpenAI usage block that llama.cpp's server and vLLM return: 6,000 sent, 5,600 reused from the prompt cache.
    line = _finish({"prompt_tokens": 6000, "completion_tokens": 300, "prompt_tokens_details": {"cached_tokens": 5600}})
    assert (line["prompt_tokens"], line["prompt_tokens_evaluated"], line["completion_tokens"]) == (6000, 400, 300)


def test_a_server_that_does_not_report_its_cache_leaves_the_count_unknown():
    line = _finish({"prompt_tokens": 6000, "completion_tokens": 300})
    assert line["prompt_tokens_evaluated"] is None  # not 6000: nothing says the whole prompt was processed


def test_usage_metadata_cache_reads_are_read_when_there_is_no_token_usage():
    metadata = {"input_tokens": 1000, "output_tokens": 50, "total_tokens": 1050,
                "input_token_details": {"cache_read": 900}}
    assert _finish(None, metadata)["prompt_tokens_evaluated"] == 100


def test_a_reply_cut_at_max_tokens_is_traced_as_an_error_that_ended_on_length():
    from openai import LengthFinishReasonError
    from openai.types.chat import ChatCompletion

    tracer = Tracer()
    callback = tracer.llm_callback("differential")
    run_id = uuid4()
    callback.on_chat_model_start({}, [], run_id=run_id)
    cut = ChatCompletion(id="x", choices=[], created=0, model="m", object="chat.completion")
    callback.on_llm_error(LengthFinishReasonError(completion=cut), run_id=run_id)
    line = tracer.events[-1]
    assert line["error"].startswith("LengthFinishReasonError") and line["finish_reason"] == "length"
    assert line["prompt_tokens"] is None  # a streamed reply that was cut carries no usage block
