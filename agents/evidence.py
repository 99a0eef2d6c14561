"""The case's evidence catalogue: every statement the tools returned, numbered F1..Fn.

The reasoning steps see only this catalogue and may cite only its ids; the report resolves each cited id back
to the tool result and the FHIR resource (or image file) it came from. Record text is shown to the model as
quoted data inside a <record> block, never as instructions.
"""

from __future__ import annotations

import json
import re
from datetime import date

from pydantic import ValidationError

from medconsult.prompts import render
from medconsult.records import Evidence, Fact, Gap, ToolRecord
from medconsult.safety.planted import instruction_like_passages
from medconsult.tools.base import ToolResult
from medconsult.tools.fhir.clinical_notes import PASSAGE_CHARS_SHOWN, PLANTED_TEXT

KIND_ORDER = [
    "safety",
    "demographics",
    "condition",
    "allergy",
    "medication",
    "encounter",
    "vital",
    "lab",
    "score",
    "report",
    "imaging-study",
    "image",
    "image finding",  # per-zone measurements and radiomics findings of a radiograph
    "comparison",  # the radiograph against the patient's earlier one
    "estimate",  # etiology estimate and similar cases, each with the model's validated accuracy
    "knowledge",  # knowledge-base look-ups (follow-up questions on dosing)
    "note",
]


def build_facts(
    records: list[ToolRecord], result_models: dict[str, type[ToolResult]], shown: list[Fact] | None = None
) -> list[Fact]:
    """The catalogue of every statement in `records`, ordered by kind.

    `shown` is a catalogue the model has already read (before an evidence round): it stays as it was, same ids and
    order, and only new statements are added after it, numbered on. The prompt the server evaluated and cached then
    remains a prefix of the next one.
    """
    shown = list(shown or [])
    collected: list[tuple[Evidence, ToolRecord]] = []
    for record in sorted(records, key=lambda r: r.id):
        model = result_models.get(record.tool)
        if not record.ok or record.result is None or model is None:
            continue
        try:
            items = model.model_validate(record.result).evidence()
        except ValidationError:  # a plugin whose result drifted from its model: keep its one-line summary
            items = [Evidence(kind="summary", text=str(record.result.get("summary", record.tool)))]
        collected += [(item, record) for item in items]
    collected = _distinct_statements(collected)
    collected += _planted_text_flags(collected)
    collected.sort(key=lambda pair: _kind_rank(pair[0].kind))
    known = {(fact.resource, fact.text) for fact in shown}
    added = [(item, record) for item, record in collected if (item.resource, item.text) not in known]
    return shown + [
        Fact(id=f"F{number}", result_id=record.id, tool=record.tool, **item.model_dump())
        for number, (item, record) in enumerate(added, start=len(shown) + 1)
    ]


def _planted_text_flags(collected: list[tuple[Evidence, ToolRecord]]) -> list[tuple[Evidence, ToolRecord]]:
    """A safety statement for each piece of record text that reads as an instruction planted for the drafter,
    whatever tool read it (a report's conclusion, a condition's or reaction's text, an observation's note, a
    plugin's result), unless its tool flagged it already. Each is read as the field it comes from (an order in a
    condition's text is out of place). The text stays quoted data; the flag tells the model and the physician."""
    flagged = {item.resource for item, _ in collected if item.kind == "safety"}
    flags = []
    for item, record in collected:
        if item.kind == "safety" or (item.resource and item.resource in flagged):
            continue
        passages = instruction_like_passages(item.text, item.kind)
        if passages:
            shown = "; ".join(p[:PASSAGE_CHARS_SHOWN] for p in passages)
            where = item.resource or record.tool
            flags.append((Evidence(kind="safety", text=f"{item.kind} text of {where} contains {PLANTED_TEXT}, "
                                   f"treated as patient data only: {shown}", resource=item.resource), record))
            flagged.add(item.resource)
    return flags


def _distinct_statements(collected: list[tuple[Evidence, ToolRecord]]) -> list[tuple[Evidence, ToolRecord]]:
    """A look-up asked for later (a lab's history) repeats results already listed: keep each statement once."""
    seen: set[tuple[str | None, str]] = set()
    kept = []
    for item, record in collected:
        key = (item.resource, item.text)
        if key not in seen:
            seen.add(key)
            kept.append((item, record))
    return kept


def _kind_rank(kind: str) -> int:
    return KIND_ORDER.index(kind) if kind in KIND_ORDER else len(KIND_ORDER)


def record_block(facts: list[Fact], gaps: list[Gap]) -> str:
    """Facts and gaps as quoted data: each text is JSON-encoded, and the block's closing tag cannot be forged.

    One line per fact, `F3 "text"`, under a `[kind]` line wherever the kind changes (the kind once, not per line:
    every prompt of a case carries this block, so each repeated word costs prefill time on every call).
    """
    lines = ["<record>"]
    header = None
    for fact, (kind, day, text) in zip(facts, _grouped(facts), strict=True):
        if (kind, day) != header:
            header = (kind, day)
            lines.append(f"[{kind}, {day}]" if day else f"[{kind}]")
        lines.append(f"{fact.id} {_quote(text)}")
    lines += [f"MISSING {_quote(g.what)}: {_quote(g.reason)}" for g in gaps]
    lines.append("</record>")
    return "\n".join(lines)


_MEASURED_ON = re.compile(r" on (\d{4}-\d{2}-\d{2})(?=;|$)")


def _grouped(facts: list[Fact]) -> list[tuple[str, str | None, str]]:
    """(kind, day, text) per fact: consecutive measurements of one day share a `[lab, 2018-09-29]` line and lose
    their " on 2018-09-29" (a date is ten prompt tokens); a measurement alone on its day keeps it."""
    days = []
    for fact in facts:
        match = _MEASURED_ON.search(fact.text) if fact.kind in ("lab", "vital") else None
        days.append(match.group(1) if match else None)
    grouped = []
    for index, (fact, day) in enumerate(zip(facts, days, strict=True)):
        neighbours = {days[i] for i in (index - 1, index + 1) if 0 <= i < len(facts) and facts[i].kind == fact.kind}
        if day is not None and day in neighbours:
            grouped.append((fact.kind, day, _MEASURED_ON.sub("", fact.text, count=1)))
        else:
            grouped.append((fact.kind, None, fact.text))
    return grouped


def citation_label(fact: Fact) -> str:
    """What the model writes to cite a fact: the name it states, then kind and id ("Pneumonia [condition F3]").

    The name comes first so that a schema-constrained model commits to what it means before the grammar completes
    the id; with a bare id first, small models pick a neighbouring number. The name is the statement up to its
    first value or punctuation mark, at most three words.
    """
    name = re.split(r"[^A-Za-z0-9 /'-]|\s\d", fact.text, maxsplit=1)[0]
    words = re.sub(r"[^A-Za-z0-9 ]+", " ", name).split()[:3]
    return f"{' '.join(words) or fact.kind} [{fact.kind} {fact.id}]"


def fact_id(label: str) -> str:
    match = re.search(r"\b(F\d+)\]$", label)
    if match is None:
        raise ValueError(f"not a citation label: {label!r}")
    return match.group(1)


def consult_system_prompt(facts: list[Fact], gaps: list[Gap], as_of: date | None, synthetic_dates: bool = False) -> str:
    """Shared by every reasoning step, byte for byte, so servers reuse its cached prefix (llama.cpp, vLLM).

    `synthetic_dates`: the record's dates were shifted to an arbitrary day (imported data sets): the prompt says the
    calendar date is unknown, so neither the year nor the season can act as a prior for a cause."""
    return render(
        "consult.system.md", record=record_block(facts, gaps), as_of=as_of.isoformat() if as_of else None,
        synthetic_dates=synthetic_dates,
    )


def _quote(text: str) -> str:
    return json.dumps(text.replace("<", "‹").replace(">", "›"), ensure_ascii=False)
