"""Run-time context of the consult graph: what nodes use but the checkpoint must not store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from langchain_core.language_models import BaseChatModel

from medconsult.config import Settings, StructuredOutputMethod
from medconsult.tools.registry import ToolRegistry
from medconsult.tracing import Tracer


@dataclass
class ConsultContext:
    settings: Settings
    tools: ToolRegistry
    chat_model: BaseChatModel
    structured_output: StructuredOutputMethod
    tracer: Tracer
    out_dir: Path
    model_name: str = "unknown"
    fhir_base_url: str | None = None  # the server the tools read; sign-off writes back to it
