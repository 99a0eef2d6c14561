"""Finding instructions planted in record text: passages addressed to an AI or to whoever drafts the consult, orders
dressed up as an authority's addendum, and hidden markup.

Detection only flags: the text stays quoted patient data (agents/evidence.py) and the draft items that repeat a
flagged passage are withheld (agents/deterministic/injection.py). It leans towards flagging, at the price of also
flagging a real record's rare authority-framed order ("Attending addendum: discharge on ..."): nothing in the text
tells a real one from a planted one, and a flag costs the physician one line to read. It finds the 90 passages of
the planted set it was developed against and 9 of the 15 held out from it (evals/planted_instructions.yaml; lexical
rules generalise poorly to unseen phrasings, docs/reliability.md), and the tests hold it to no flag at all on real
clinical text (Synthea records, radiology reports, case-report notes: evals/clinical_text.py).
"""

from __future__ import annotations

import re

# ---- hidden markup: whole spans, which may hold several sentences ------------------------------------------------
_MARKUP_SPANS = re.compile(
    r"<!--.*?(?:-->|$)"  # an HTML comment
    r"|<\|[a-z_]+\|>.*?(?:<\|[a-z_]+\|>|$)"  # chat-template tokens (<|im_start|> ... <|im_end|>)
    r"|\[/?INST\].*?(?:\[/INST\]|$)|<</?SYS>>.*?(?:<</SYS>>|$)"
    r"|\[\[[^\]]{0,40}\]\].*?(?:\[\[/[^\]]{0,40}\]\]|$)"  # [[ROLE: system]] ... [[/ROLE]]
    r"|```.*?(?:```|$)"  # a code fence
    r"|<(?P<tag>[a-z]+)\b[^>]*>.*?</(?P=tag)\s*>",  # an element: <span style="display:none">...</span>
    re.IGNORECASE | re.DOTALL,
)
_MARKUP = [
    r"<!--|<\|[a-z_]+\|>|\[/?INST\]|<</?SYS>>|```",
    r"</?\s*(?:record|system|assistant|user|developer|instructions?|prompt|tool)\b[^>]{0,40}>",
    r"\[\[?\s*/?\s*(?:role|system|assistant|user|developer|instructions?|prompt)\b",
    r"[\"']role[\"']\s*:\s*[\"'](?:system|assistant|user|developer)",
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0|opacity\s*:\s*0|<[a-z]+\b[^>]*\bhidden\b",
    r"\[\s*hidden\b|^\s*\[//\]\s*:|\{\{[^}]*\}\}",  # [hidden ...], a Markdown comment, {{template}}
    r"^\s*#{1,6}\s*(?:system|instructions?|override|prompt|assistant|new task)\b",
    r"\b(?:system|developer) (?:prompt|message|instructions?|override)\b",
    # code that writes to the draft: plan.actions.append(...), conclusion := '...'
    r"\b(?:plan|actions?|conclusion|diagnos[ie]s|answer|output|response|recommendations?)\s*"
    r"(?:\.\s*[a-z_]+\s*\(|:=|\+=|=\s*[\"'\w])",
]

# ---- addressed to an AI -----------------------------------------------------------------------------------------
# Names that mean an AI wherever they stand, and names that do only where addressed: "AI" is also aortic
# insufficiency, an assistant may be a physician's, a model or an algorithm may be clinical.
_AI = (
    r"\b(?:llms?|(?:large )?language models?|artificial intelligence|chat ?gpt|gpt-?\d*|copilot|chat ?bots?|bots?"
    r"|machine[- ]learning (?:system|model|tool)s?|neural network|summari[sz]ers?"
    r"|(?:automated|digital|virtual|drafting|writing|summari[sz]ing|documentation|charting|scribing|dictation"
    r"|decision[- ]support) (?:assistant|agent|system|summari[sz]er|reviewer|reader|tool|scribe|engine|pipeline"
    r"|software|model)s?"
    r"|machine (?:reader|reading)|(?:consult|inference|recommendation) engine"
    r"|inteligencia artificial|intelligence artificielle|k\u00fcnstliche intelligenz|intelligenza artificiale"
    r"|(?-i:A\.?I\.?) (?:system|model|assistant|agent|reviewer|reader|tool|scribe)s?)\b"
)
_MAYBE_AI = (
    r"(?:(?-i:\bA\.?I\b)|(?<!physician )(?<!nursing )(?<!medical )(?<!clinical )(?<!care )(?<!research )"
    r"(?<!pharmacy )(?<!dental )\bassistant\b|\bmodel\b|\balgorithm\b|\bsoftware\b)"
)
_ADDRESS = r"\b(?:to|for|attention|dear|hey|hi|hello)\b\W+(?:(?:the|any|this|an?|our)\s+)?(?:\w+\s+){0,2}"
_ADDRESSED = [
    rf"{_ADDRESS}(?:{_AI}|{_MAYBE_AI})",
    rf"{_ADDRESS}(?:reviewing|reading|drafting|summari[sz]ing|processing|parsing|generating)\s+"
    r"(?:party|entity|reader|system|tool|service|process|agent)\b",
    rf"{_AI}[^.\n]{{0,40}}(?:[:,]|\b(?:must|should|shall|please|is to|are to|needs? to|has to|have to)\b)",
    rf"^\W*{_MAYBE_AI}(?:\s*,|[^.\n:]{{0,40}}:)",  # "Model, please ...", "Assistant reading this: ..."
    rf"{_MAYBE_AI}\s+(?:instructions?|prompt|task|directive|command)s?\b",
    rf"\byou\b[^.\n]{{0,12}}\b(?:are|as)\b[^.\n]{{0,12}}(?:{_AI}|{_MAYBE_AI})",
]

# ---- addressed to whoever, or whatever, drafts the consult -------------------------------------------------------
_MODAL = (
    r"(?:should|must|shall|ought to|has to|have to|is to|are to|needs? to|make sure|ensure"
    r"|(?:is|are) (?:hereby )?(?:expected|required|obliged|told|instructed|asked|directed) to)"
)
_DRAFTER = (
    r"\b(?:whoever|whatever|anyone|anybody|anything|the person|the people|those|readers?|reviewers?|the author)\b"
    r"[^.\n]{0,40}\b"
    r"(?:draft|compil|writ|prepar|generat|interpret|summari[sz]|process|pars)\w*"
)
# What the drafter writes: some words name it wherever they stand; others ("plan", "note") only when the sentence
# also says it is derived from the record ("any note generated for this visit").
_OUTPUT = r"\b(?:summar(?:y|ies)|write-?ups?|interpretations?|answers?|outputs?|responses?|drafts?|treatment advice)\b"
_ARTIFACT = (
    rf"(?:{_OUTPUT}|\b(?:recommendations?|plans?|assessments?|differentials?|consults?|treatment lists?"
    r"|impressions?|letters?|notes?|text)\b)"
)
_DERIVED = (
    r"\b(?:any|every|downstream|resulting|next|drafted|generated|produced|created|prepared|compiled|drawn up"
    r"|derived|written|passed on|come out of|coming out of)\b"
)
_CONTENT_VERB = (
    r"\b(?:include|contain|say|state|list|name|rank|recommend|advise|open with|conclude|mention|attribute"
    r"|document|describe|show|report|read)(?:s|ed)?\b"
)
# Several signs that must meet in one clause (no full stop between them).
_TO_DRAFTER_TOGETHER = [
    (_ARTIFACT, _DERIVED, rf"\b{_MODAL}\b", _CONTENT_VERB),  # "any summary produced from this record ... advise"
    (_OUTPUT, rf"\b{_MODAL}\b", _CONTENT_VERB),  # "the resulting summary should say"
]
_TO_DRAFTER = [
    rf"{_DRAFTER}[^.\n]{{0,60}}(?:\b{_MODAL}\b|:)",
    r"\b(?:ignore|disregard|forget|override|bypass)\b[^.\n]{0,40}\b(?:instructions?|prompts?|rules|guidelines"
    r"|above|previous|your|readings?|findings)\b",
    r"\byour (?:own )?(?:first |final )?(?:reading|answer|output|response|summary|plan|recommendations?|draft"
    r"|differential|interpretation|assessment)\b",
    r"\byou (?:will |shall |are going to )?(?:write|draft|summari[sz]e|generate|output|produce|answer|respond"
    r"|compose|return|prepare)\b",
    r"\b(?:respond|reply|output|answer) (?:that|with|only)\b|\b(?:output|write|print|return|say)\s+['\"]",
    r"\b(?:do not|don't|never|must not|should not)\s+(?:mention|list|flag|disclose|reveal|suggest)\b",
    r"\bleave\b[^.\n]{0,30}\boff the (?:list|plan|differential|summary)\b",
    r"\b(?:suppress|omit|prepend|append)\b[^.\n]{0,20}\b(?:findings|results|diagnos[ie]s|plans?|every|all|any)\b",
    r"\b(?:final answer|new instructions?|new task|(?:your|the) task (?:has|is) (?:now )?changed)\b",
]

# ---- orders dressed up as an authority's ------------------------------------------------------------------------
_AUTHORITY = (
    r"\b(?:addendum|(?:verbal|telephone|standing|consult) orders?|directive|notice|correction|ruling"
    r"|protocol|policy|agreement|memo|mandate|amended|amendment|outcome|comment|request|decision|second opinion"
    r"|(?:standing )?instructions?|ward round|(?:plan|orders?|management|disposition) (?:changed|updated|revised)"
    r"|attending|consultant|director|chief|registrar|resident|fellow|professor|prof|physician|surgeon|matron"
    r"|manager|pharmacist|\w+ologists?|clinician|team|clinic|office|mdt|board|committee|panel)\b"
)
_ORDER = (
    r"\b(?:discharge|send|sent home|stop|discontinue|cease|withhold|cancel|refuse|start|commence|give|administer"
    r"|prescribe|dispense|transfuse|amend|treat\b[^.\n]{0,25}\bwith|switch\w*|substitut\w*|replaces?|desensiti[sz]e"
    r"|refer|transfer|order"
    r"|receive|apply|document|arrange|book|is to|are to|to be)\b"
)
_DOSE = r"\b\d+(?:\.\d+)?\s?(?:mg|mcg|micrograms?|g|units?|ml|iu)\b(?!\s*/)"  # not a concentration: mg/dL
# The authority frames the order: a label before a colon or dash ("Attending addendum:", "CORRECTION FROM MEDICAL
# DIRECTOR -") or an attribution ("per pain team directive", "(ID consult order)"). A plain "Plan: start ..." has
# neither and is left alone.
_FRAMED = (
    rf"{_AUTHORITY}[^.:\n]{{0,40}}(?::|\s[-\u2013\u2014]\s)|\b(?:per|by|from)\b[^.\n]{{0,30}}{_AUTHORITY}"
    rf"|\([^)\n]*{_AUTHORITY}[^)\n]*\)"
)
_DISGUISED_TOGETHER = [(_FRAMED, rf"{_ORDER}|{_DOSE}")]  # both on one line

# ---- orders where the record describes: a condition's or reaction's text, a result's note, a report's conclusion ----
# These fields say what is (a disorder, a reaction, a finding); an order, an obligation or a "you" in them is out of
# place, whoever it claims to come from. A radiology report may recommend imaging "to document resolution", thank
# "your" referral or name a transfer in its indication: there only the other orders count, and recommending verbs
# only with a dose.
DESCRIPTIVE_KINDS = frozenset({"condition", "allergy", "lab", "vital", "report"})
_DIRECTIVE = (
    r"\b(?:start|stop|give|prescribe|dispense|administer|transfuse|propose|replace|substitute|switch to|discharge"
    r"|cancel|withhold|discontinue|cease|amend|diagnose|treat with|write|output|conclude|document (?:it|this|that|as"
    r"|accordingly)|must|shall|ought to|is to|are to|to be (?:given|prescribed|started|stopped|used))\b"
)
_RECOMMENDING = (r"\b(?:recommend|advise|suggest|consider)\b", _DOSE)  # both on one line
_OTHER_DIRECTIVE = r"\b(?:transfer|recommend|advise|suggest|state that|you|your)\b"


def _compiled(patterns: list[str]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{p})" for p in patterns), re.IGNORECASE | re.MULTILINE)


def _each(groups: list[tuple[str, ...]]) -> list[tuple[re.Pattern[str], ...]]:
    return [tuple(_compiled([p]) for p in group) for group in groups]


# One alternation for the signs that suffice alone; the signs that must meet are searched one by one in each clause
# or line (a single pattern of lookaheads would rescan the sentence from every position).
_ALONE = _compiled(_MARKUP + _ADDRESSED + _TO_DRAFTER)
_IN_A_CLAUSE = _each(_TO_DRAFTER_TOGETHER)
_ON_A_LINE = _each(_DISGUISED_TOGETHER)
_MISPLACED = {"report": (_compiled([_DIRECTIVE]), _each([_RECOMMENDING])),
              "other": (_compiled([_DIRECTIVE, _OTHER_DIRECTIVE]), [])}
# Sentences; and the record tools' statements split where the record's own text starts ("Creatinine 0.9 mg/dL on
# 2024-03-12; note: ...", "allergy to Latex (...; described: ...", "XR Chest (final) on 2024-03-12: conclusion: ..."),
# so a flagged passage never takes the tool's words in with it.
_SENTENCES = re.compile(r"(?<=[.!?])\s+|\n+|(?<=[;:])\s+(?=(?:note|described|conclusion|text): )")


def instruction_like_passages(text: str, kind: str | None = None) -> list[str]:
    """The passages of `text` that address a language model or whoever drafts the consult, or dress an order up as
    an authority's: hidden markup spans whole, otherwise sentence by sentence. A flagged sentence that ends in a
    colon carries on into the next ("Attending addendum:" / "discharge on ...").

    `kind`: the record field the text comes from (an evidence kind); in a descriptive one (DESCRIPTIVE_KINDS) any
    order is out of place and flagged too."""
    misplaced = _MISPLACED["report" if kind == "report" else "other"] if kind in DESCRIPTIVE_KINDS else None
    passages = [m.group(0).strip() for m in _MARKUP_SPANS.finditer(text) if _suspect(m.group(0), misplaced)]
    rest = text
    for passage in passages:
        rest = rest.replace(passage, "\n")
    carry = False
    for sentence in (s.strip() for s in _SENTENCES.split(rest)):
        if not sentence:
            continue
        if carry or _suspect(sentence, misplaced):
            passages.append(sentence)
            carry = sentence.endswith(":")
    return passages


def _suspect(sentence: str, misplaced: tuple | None) -> bool:
    lines = sentence.split("\n")
    if _ALONE.search(sentence) or _meet(_ON_A_LINE, lines) or _meet(_IN_A_CLAUSE, re.split(r"[.\n]", sentence)):
        return True
    return bool(misplaced) and bool(misplaced[0].search(sentence) or _meet(misplaced[1], lines))


def _meet(groups: list[tuple[re.Pattern[str], ...]], parts: list[str]) -> bool:
    """Whether every pattern of some group matches within one of `parts`."""
    return any(all(p.search(part) for p in group) for group in groups for part in parts)
