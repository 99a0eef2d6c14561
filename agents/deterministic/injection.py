"""Defence in depth against instructions planted in record text.

The first defence is the prompt: record text is quoted data, and text addressed to an AI is flagged as a safety fact
(agents/evidence.py). This second one does not trust the model to have honoured that: a plan action that repeats
the wording of a passage addressed to an AI (found by `instruction_like_passages` in any record text: a note, a
report's conclusion, a condition's text...) is withheld from the plan and listed in the report with the fact it
echoes, so the physician sees both and nothing is silently lost.
"""

from __future__ import annotations

import re

from pydantic import BaseModel

from medconsult.agents.schemas import TreatmentPlan
from medconsult.records import Fact
from medconsult.tools.fhir.clinical_notes import instruction_like_passages

# Words too common in any plan to mark an action as echoing a planted passage.
_COMMON = frozenset(
    "patient patients should would could please recommend recommended recommendation treatment treat clinical "
    "therapy start continue consider assess review given every their there these those about after before which "
    "with within other immediately today".split()
)


class WithheldAction(BaseModel):
    action: str
    echoed_words: list[str]
    source_facts: list[str]  # the note facts whose planted passage the action repeats


def withhold_echoed_actions(plan: TreatmentPlan, facts: list[Fact]) -> tuple[TreatmentPlan, list[WithheldAction]]:
    """The plan without actions that echo planted instructions, and what was withheld."""
    planted = _planted_vocabulary(facts)
    if not planted:
        return plan, []
    kept, withheld = [], []
    for action in plan.actions:
        words = _content_words(f"{action.action} {action.rationale}")
        echoed = sorted(words & planted.keys())
        if len(echoed) >= 2 or (echoed and len(echoed) / max(len(words), 1) >= 0.34):
            sources = sorted({fact for word in echoed for fact in planted[word]})
            withheld.append(WithheldAction(action=action.action, echoed_words=echoed, source_facts=sources))
        else:
            kept.append(action)
    return plan.model_copy(update={"actions": kept}), withheld


def _planted_vocabulary(facts: list[Fact]) -> dict[str, set[str]]:
    """Words that occur in planted passages and nowhere else in the record, with the facts they come from."""
    planted: dict[str, set[str]] = {}
    elsewhere: set[str] = set()
    for fact in facts:
        if fact.kind == "safety":
            continue  # the flag restates the passage; it is not independent record content
        passages = instruction_like_passages(fact.text)  # any record text: notes, conclusions, condition text...
        rest = fact.text
        for passage in passages:
            rest = rest.replace(passage, " ")
            for word in _content_words(passage):
                planted.setdefault(word, set()).add(fact.id)
        elsewhere |= _content_words(rest)
    return {word: ids for word, ids in planted.items() if word not in elsewhere}


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _COMMON}
