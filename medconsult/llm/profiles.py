"""Serving profiles (profiles.yaml): server launch flags plus the client options each model needs."""

from __future__ import annotations

from functools import cache
from importlib import resources

import yaml
from pydantic import BaseModel, Field

from medconsult.config import StructuredOutputMethod


class ServingProfile(BaseModel):
    name: str
    description: str
    model: str
    structured_output: StructuredOutputMethod = "json_schema"
    extra_body: dict = Field(default_factory=dict)
    vllm_args: list[str] = Field(default_factory=list)


@cache
def load_profiles() -> dict[str, ServingProfile]:
    raw = yaml.safe_load(resources.files("medconsult.llm").joinpath("profiles.yaml").read_text())
    return {name: ServingProfile(name=name, **body) for name, body in raw["profiles"].items()}


def get_profile(name: str) -> ServingProfile:
    profiles = load_profiles()
    if name not in profiles:
        raise KeyError(f"unknown serving profile {name!r}; known: {', '.join(sorted(profiles))}")
    return profiles[name]
