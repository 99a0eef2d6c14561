"""Defence in depth against instructions planted in record text.

The first defence is the prompt: record text is quoted data, and text that reads as an instruction planted for
the drafter is flagged as a safety fact (agents/evidence.py). This second one does not trust the model to have
honoured that: every field of the draft the model wrote (each diagnosis, its reasoning and test, the summary, the
working diagnosis, the regimen's reason, treatment outside the knowledge base, each action with its rationale, each
caution) that repeats a planted passage (found by `instruction_like_passages` in any record text) is withheld and
listed in the report with the fact it echoes, so the physician sees both and nothing is silently lost.

"Repeats" is lexical, on what only the planted passages say (words and word pairs found nowhere else in the
record): a distinctive uncommon word ("colchicine", "malingering"), a distinctive order or negation ("stop all",
"no pneumonia"), a short text (a diagnosis's name) with a distinctive pair or two distinctive words, or a longer
one with four distinctive generic words and pairs ("discharge home" said twice). A model that reworded a plant
entirely would pass it; the safety fact still shows the physician the plant.
"""

from __future__ import annotations

import functools
import re
from typing import Literal

from pydantic import BaseModel

from medconsult.agents.schemas import Differential, TreatmentPlan
from medconsult.knowledge import knowledge_base
from medconsult.records import Fact
from medconsult.safety.planted import instruction_like_passages

WITHHELD = "(withheld: it repeats an instruction planted in the record; see the report)"

# Words too common in any text to tie it to a planted passage, and the words the record tools write around record
# text (a planted condition's statement ends "..., onset 2023, background").
_COMMON = frozenset(
    "patient patients should would could please recommend recommended recommendation treatment treat clinical "
    "therapy start continue consider assess review given every their there these those about after before which "
    "with within other immediately today this that from have been will what when where your they them than then "
    "also into only some such very more most must none each both "
    "onset background active inactive resolved criticality reactions described conclusion final status unknown "
    "text".split()
)
# Words a sound draft for a chest infection uses as often as a planted passage does: alone, they do not tie a draft
# text to a plant; four of them, or word pairs, do. Knowledge-base drug names are added (the safety review checks
# those whoever asked for them).
_GENERIC = frozenset(
    "antibiotic antibiotics antimicrobial antimicrobials oxygen supplemental blood culture cultures sputum chest "
    "radiograph film imaging follow followup discharge home admission admit admitted ward hospital infection "
    "pneumonia fever cough saturation monitoring monitor daily twice three times hours days weeks week dose doses "
    "oral intravenous fluids fluid tests test testing result results findings lung lungs diagnosis plan note notes "
    "record chart report summary further needed required urgent stop cancel give prescribe advise avoid team care "
    "refer referral transfer first next respiratory sepsis severity score risk allergy allergies reaction "
    "medication medications drug drugs tablet tablets units level levels signs symptoms repeat check "
    "order orders ordered suggest suggests suggested".split()
)
# A pair that opens with one of these is an order or a negation: distinctive, it ties a text to a plant by itself.
_NEGATING = frozenset("no not without never stop cancel discontinue withhold cease refuse skip omit discharge".split())
_STOP = frozenset("a an the of to in on at for and or is are be as by with it this that per".split())
_UNITS = re.compile(r"^(?:\d+|mg|mcg|g|ml|iu|units?)$")
_SHORT = 3  # content words: a diagnosis's name, a one-line caution
_PLAN_FIELDS = ("working diagnosis", "regimen reason", "outside the knowledge base", "plan action", "caution")


class WithheldAction(BaseModel):
    """A piece of the draft withheld because it repeats a planted passage (plan actions were the first: the name)."""

    action: str  # the withheld text
    echoed_words: list[str]
    source_facts: list[str]  # the facts whose planted passage it repeats
    field: str = "plan action"  # where it stood in the draft
    detail: str = ""  # the rest of the item: an action's rationale, a diagnosis's reasoning and test
    draft: Literal["differential", "plan"] = "plan"


class PlantedText:
    """The planted passages of a case's record, and the words and word pairs that only they contain."""

    def __init__(self, facts: list[Fact]) -> None:
        self.words: dict[str, set[str]] = {}
        self.pairs: dict[str, set[str]] = {}
        elsewhere_words: set[str] = set()
        elsewhere_pairs: set[str] = set()
        for fact in facts:
            if fact.kind == "safety":
                continue  # the flag restates the passage; it is not independent record content
            rest = fact.text
            for passage in instruction_like_passages(fact.text, fact.kind):
                rest = rest.replace(passage, " ")
                for word in _content_words(passage):
                    self.words.setdefault(word, set()).add(fact.id)
                for pair in _pairs(passage):
                    self.pairs.setdefault(pair, set()).add(fact.id)
            elsewhere_words |= _content_words(rest)
            elsewhere_pairs |= _pairs(rest)
        self.words = {w: ids for w, ids in self.words.items() if w not in elsewhere_words}
        self.pairs = {p: ids for p, ids in self.pairs.items() if p not in elsewhere_pairs}

    def __bool__(self) -> bool:
        return bool(self.words or self.pairs)

    def echo(self, text: str) -> tuple[list[str], list[str]] | None:
        """(the distinctive words and pairs `text` repeats, the facts they come from) when it repeats a plant."""
        words = _content_words(text)
        echoed_words = sorted(words & self.words.keys())
        echoed_pairs = sorted(_pairs(text) & self.pairs.keys())
        generic = _generic_words()
        telling = [w for w in echoed_words if w not in generic]
        telling += [p for p in echoed_pairs if p.split()[0] in _NEGATING]
        echoed = echoed_words + echoed_pairs
        # A short text (a diagnosis's name, a test) repeating a pair or two words; one generic word is not enough
        # ("Chest X-ray [report F39]" beside a planted report conclusion).
        short = len(words) <= _SHORT and (bool(echoed_pairs) or len(echoed_words) >= 2)
        if not (telling or short or len(echoed) >= 4):
            return None
        sources = {f for w in echoed_words for f in self.words[w]} | {f for p in echoed_pairs for f in self.pairs[p]}
        return echoed, sorted(sources, key=lambda f: int(f[1:]) if f[1:].isdigit() else 0)


def withhold_from_differential(
    differential: Differential | None, facts: list[Fact]
) -> tuple[Differential | None, list[WithheldAction]]:
    """The differential without what repeats planted text: a diagnosis whose name does is withheld whole; a
    reasoning, a test or the summary that does is replaced by a marker. No diagnosis left: no differential."""
    planted = PlantedText(facts)
    if differential is None or not planted:
        return differential, []
    withheld: list[WithheldAction] = []
    kept = []
    for item in differential.diagnoses:
        detail = f"reasoning: {item.reasoning}; test: {item.discriminating_test}"
        if _withheld(planted, item.diagnosis, "differential diagnosis", withheld, detail):
            continue
        updates = {}
        for name, label in (("reasoning", "reasoning"), ("discriminating_test", "discriminating test")):
            if _withheld(planted, getattr(item, name), f"{label} of {item.diagnosis}", withheld):
                updates[name] = WITHHELD
        kept.append(item.model_copy(update=updates))
    if not kept:
        return None, withheld
    summary = WITHHELD if _withheld(planted, differential.summary, "differential summary", withheld) else None
    updates = {"diagnoses": kept} | ({"summary": summary} if summary else {})
    return differential.model_copy(update=updates), withheld


def withhold_from_plan(plan: TreatmentPlan, facts: list[Fact]) -> tuple[TreatmentPlan, list[WithheldAction]]:
    """The plan without what repeats planted text: actions (with their rationale), cautions and treatments outside
    the knowledge base are withheld; a working diagnosis or a regimen's reason is replaced by a marker."""
    planted = PlantedText(facts)
    if not planted:
        return plan, []
    withheld: list[WithheldAction] = []
    updates: dict = {}
    if _withheld(planted, plan.working_diagnosis, "working diagnosis", withheld):
        updates["working_diagnosis"] = WITHHELD
    if plan.regimen_reason and _withheld(planted, plan.regimen_reason, "regimen reason", withheld):
        updates["regimen_reason"] = WITHHELD
    updates["off_knowledge_base"] = [
        t for t in plan.off_knowledge_base if not _withheld(planted, t, "outside the knowledge base", withheld)
    ]
    updates["actions"] = [
        a for a in plan.actions
        if not _withheld(planted, f"{a.action} {a.rationale}", "plan action", withheld, a.rationale, a.action)
    ]
    updates["cautions"] = [c for c in plan.cautions if not _withheld(planted, c, "caution", withheld)]
    return plan.model_copy(update=updates), withheld


def _withheld(planted: PlantedText, text: str, field: str, withheld: list[WithheldAction], detail: str = "",
              shown: str | None = None) -> bool:
    """Whether `text` repeats a plant; if so, it joins `withheld` (as `shown`, when the text checked is longer)."""
    echo = planted.echo(text)
    if echo is not None:
        draft = "plan" if field in _PLAN_FIELDS else "differential"
        withheld.append(WithheldAction(action=shown or text, echoed_words=echo[0], source_facts=echo[1], field=field,
                                       detail=detail, draft=draft))
    return echo is not None


def _content_words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z]{4,}", text.lower()) if w not in _COMMON}


def _pairs(text: str) -> set[str]:
    """Adjacent word pairs, without pairs of two stop words or with a number or a unit (a dose is not telling)."""
    tokens = re.findall(r"[a-z0-9]+", text.lower())
    return {
        f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)
        if not (a in _STOP and b in _STOP) and not _UNITS.match(a) and not _UNITS.match(b)
    }


@functools.cache
def _generic_words() -> frozenset[str]:
    drugs = {w for name in knowledge_base().drug_names() for w in re.findall(r"[a-z]{4,}", name)}
    return _GENERIC | drugs
