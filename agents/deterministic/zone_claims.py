"""Percentages in a radiology draft, checked in context: the zone a statement gives a figure to, and whether it is a
level ("37.6%") or a change ("increased by 20.6%"), must be those of a measurement fact that states the figure.

The grounding verifier accepts any number some fact states; a small model that writes "the right upper and middle
zones increased by 20.6% and 36.6%" from "right upper 20.6%, right middle 36.6%" passes it while saying something
false. This check reads the nearest zone named before each percentage and the words just before it.
"""

from __future__ import annotations

import re

from medconsult.agents.deterministic.quantities import scan_quantities
from medconsult.records import Fact

_ZONE_RE = re.compile(r"\b(right|left)\s+(upper|middle|lower)\b", re.IGNORECASE)
_CHANGE_RE = re.compile(
    r"(?:(?:\bby\b|increas\w*|decreas\w*|\brose\b|\bfell\b|\bgrew\b|chang\w*|improv\w*|worsen\w*)[^%\d]{0,12}"
    r"|[+\-−]\s*)$",
    re.IGNORECASE,
)

_LEVEL_RE = re.compile(r"\b(?:from|to|at|of|is|was)\s*$", re.IGNORECASE)  # "increased from 12% to 48%": levels


def _context(text: str, start: int) -> tuple[str | None, str]:
    """(zone named last before `start` in its sentence, "change" or "level")."""
    sentence_start = max(text.rfind(". ", 0, start), text.rfind("; ", 0, start)) + 1
    zones = list(_ZONE_RE.finditer(text, sentence_start, start))
    zone = f"{zones[-1].group(1)} {zones[-1].group(2)}".lower() if zones else None
    window = text[max(sentence_start, start - 24) : start]
    change = _CHANGE_RE.search(window) and not _LEVEL_RE.search(window)
    role = "change" if change else "level"
    return zone, role


def _percentages(text: str) -> list[tuple[float, str | None, str, str]]:
    """(value, zone, role, as written) of each percentage in `text`."""
    return [(q.value, *_context(text, q.number_start), q.text)
            for q in scan_quantities(text) if q.kind == "measure" and q.unit == "%"]


def misattributed(text: str, facts: list[Fact]) -> str | None:
    """Why a percentage in `text` is not what the facts say it is, or None when each one matches a fact's."""
    stated = [(value, zone, role) for fact in facts for value, zone, role, _ in _percentages(fact.text)]
    for value, zone, role, written in _percentages(text):
        same = [(z, r) for v, z, r in stated if abs(v - value) < 1e-6]
        if not same:
            continue  # a figure no fact states: the grounding verifier's to flag
        if not any((zone is None or z is None or z == zone) and r == role for z, r in same):
            z, r = same[0]
            said = f"{role} of the {zone} zone" if zone else role
            return f"{written} as a {said}: the measurements give it as a {r}" + (f" of the {z} zone" if z else "")
    return None
