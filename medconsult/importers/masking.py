"""Masking case notes that give the answer away: the diagnosis, a cause, a test result, a treatment or the outcome.

Every note is masked against the project's one etiology vocabulary (`medconsult.clinical.etiology`, which the
scorers read too), not only against its own row's label, so that where a sentence was withheld says nothing about
the label. A sentence is withheld whole, never left with a hole in it: "... [masked] pneumonia" would still hint.
Withheld:
- a sentence that mentions any label term of the vocabulary: an organism, an etiology class, "pneumonia", or a
  radiological impression that states the answer ("CXR: Normal", "classic appearance of a lobar pneumonia");
- a treatment specific enough to name the cause (acyclovir, co-trimoxazole...), a diagnostic test's result, or a
  sentence that refers back to one;
- the later course: discharge, recovery, resolution or response to treatment, follow-up, events "after 8 weeks of"
  or "2 weeks later". Case-report notes are written after the fact, and the course tells the cause.
History that a clinician would have at the time is kept: HIV status and CD4 count, travel and contacts that do not
name the disease, smoking, symptoms, vital signs, laboratory values, the radiological description.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

from medconsult.clinical.etiology import names_a_cause

WITHHELD = "[sentence withheld]"

# Treatments specific enough to name the pathogen (antiretroviral therapy is history and stays).
GIVEAWAY_TREATMENTS: tuple[str, ...] = (
    r"\w*ciclovir",
    r"acyclovir",
    r"oseltamivir",
    r"zanamivir",
    r"peramivir",
    r"baloxavir",
    r"tamiflu",
    r"remdesivir",
    r"favipiravir",
    r"(?:hydroxy)?chloroquine",
    r"co-?trimoxazole",
    r"trimethoprim[\s/-]+sulfamethoxazole",
    r"tmp[\s/-]*smx",
    r"bactrim",
    r"pentamidine",
    r"atovaquone",
)

# A sentence reporting a diagnostic test: a test word together with a result word.
DIAGNOSTIC_TESTS = (
    r"(?:rt[\s-]?)?pcr",
    r"polymerase\s+chain\s+reaction",
    r"antigens?",
    r"cultures?",
    r"cultured",
    r"serolog\w*",
    r"antibod(?:y|ies)",
    r"ig[mg]",
    r"swabs?",
    r"rna",
    r"dna",
    r"smears?",
    r"stain(?:ing)?",
    r"immunofluorescence",
    r"tests?",
    r"tested",
)
TEST_RESULTS = (
    r"positive",
    r"negative",
    r"detected",
    r"undetectable",
    r"isolated",
    r"grew",
    r"growth",
    r"confirmed",
    r"confirming",
    r"revealed",
)
# Sentences that refer back to a withheld result without naming it ("The positive result permitted ...").
RESULT_REFERENCES = (
    r"(?:positive|negative)\s+(?:result|test|finding)s?",
    r"(?:confirmed|established|permitted|allowed)\s+(?:a\s+|the\s+)?(?:\w+\s+)?diagnosis",
    r"diagnosis\s+(?:of\s+\w+\s+)?was\s+(?:confirmed|established|made)",
)
HIV_CONTEXT = r"hiv|cd4"  # an HIV test result is history, not the answer

_SPAN = (
    r"(?:\d+|an?|one|two|three|four|five|six|seven|eight|nine|ten|several|few)\s+(?:hours?|days?|weeks?|months?|years?)"
)
# The course after presentation. Past history before it ("3 days after onset of fever", "antibiotics for 3 days
# without benefit") is kept: it is what the clinician hears on the day.
LATER_COURSE = (
    r"discharg\w*",
    r"recover(?:y|ed|ing)",
    r"resol(?:ution|ved|ving)",
    r"regress\w*",
    r"improv(?:ement|ed|ing)",
    r"remission",
    r"recur\w*",
    r"relaps\w*",
    r"died|death|passed\s+away|deceased",
    r"follow[\s-]?up",
    r"later",
    r"subsequent(?:ly)?",
    r"deteriorat\w*",
    r"progression\s+of|progressive\s+deterioration",
    r"extracorporeal|ecmo",
    # "after 48 hours, ...", "after one month", "after 8 weeks of steroid treatment"; not "presented after 7 days
    # of fever", which is the history of the presentation
    rf"after\s+{_SPAN}(?!\s+of\b)",
    rf"after\s+{_SPAN}\s+of\s+(?:[\w-]+\s+){{0,2}}(?:treatment|therapy|antibiotics?|steroids?)",
    r"(?:hours?|days?|weeks?|months?|years?)\s+after\s+(?:the\s+)?(?:admission|treatment|therapy|initiation"
    r"|discharge|intubation|diagnosis)",
    r"after\s+(?:successful\s+|the\s+|first\s+)?(?:treatment|therapy|initiation|admission|intubation|remission)",
    r"(?:over|during|within)\s+the\s+(?:next|following)",
    r"during\s+(?:his|her|their|the)\s+(?:admission|stay|hospitali[sz]ation|course)",
    r"\d+(?:st|nd|rd|th)\s+day",
    r"(?:the\s+)?last\s+(?:one|image|radiograph|x-?ray)",
    r"repeat(?:ed)?\s+(?:chest\s+)?(?:x-?rays?|radiographs?|ct|imaging|(?:rt[\s-]?)?pcr)",
    r"response\s+to\s+(?:the\s+)?(?:treatment|therapy|antibiotics?)|responded",
    r"initially\s+(?:assumed|thought|considered|suspected|diagnosed|treated)",
)


def _words(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


TREATMENT_PATTERN = _words(GIVEAWAY_TREATMENTS)
TEST_PATTERN = _words(DIAGNOSTIC_TESTS)
RESULT_PATTERN = _words(TEST_RESULTS)
RESULT_REFERENCE_PATTERN = _words(RESULT_REFERENCES)
HIV_PATTERN = _words((HIV_CONTEXT,))
COURSE_PATTERN = _words(LATER_COURSE)

# Words whose trailing full stop does not end a sentence.
ABBREVIATIONS = {"dr", "drs", "mr", "mrs", "ms", "prof", "fig", "figs", "vs", "e.g", "i.e", "approx", "no", "st",
                 "al", "ca", "resp", "temp"}
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])")


@dataclass(frozen=True)
class MaskedNote:
    text: str
    withheld: Counter[str] = field(default_factory=Counter)  # reason -> sentences withheld


def split_sentences(text: str) -> list[str]:
    """Sentences of a note; abbreviations (Dr., Fig.) and single initials (E. coli) do not end one."""
    sentences, start = [], 0
    for boundary in SENTENCE_END.finditer(text):
        before = text[start : boundary.start()].rstrip(".!?")
        last_word = re.split(r"[\s(]", before)[-1].lower() if before else ""
        if last_word in ABBREVIATIONS or re.fullmatch(r"[a-z]", last_word):
            continue
        if text[boundary.start() - 1] == "?" and text[boundary.start() - 2 : boundary.start() - 1].isdigit():
            continue  # "39? C": a degree sign lost in the source's encoding, not a question
        sentences.append(text[start : boundary.start()].strip())
        start = boundary.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def withhold_reason(sentence: str) -> str | None:
    """Why a sentence must not reach the model, or None when it may."""
    if names_a_cause(sentence):
        return "names the diagnosis, a cause or an impression"
    if TREATMENT_PATTERN.search(sentence):
        return "names a treatment that implies the diagnosis"
    if RESULT_REFERENCE_PATTERN.search(sentence):
        return "refers to a diagnostic test result"
    reports_result = TEST_PATTERN.search(sentence) and RESULT_PATTERN.search(sentence)
    if reports_result and not HIV_PATTERN.search(sentence):
        return "reports a diagnostic test result"
    if COURSE_PATTERN.search(sentence):
        return "describes the later course or outcome"
    return None


def mask_note(text: str) -> MaskedNote:
    """The note with every giveaway sentence replaced by one marker (a run of them by a single marker)."""
    kept: list[str] = []
    withheld: Counter[str] = Counter()
    for sentence in split_sentences(" ".join(text.split())):
        reason = withhold_reason(sentence)
        if reason is None:
            kept.append(sentence)
            continue
        withheld[reason] += 1
        if not kept or kept[-1] != WITHHELD:
            kept.append(WITHHELD)
    return MaskedNote(" ".join(kept), withheld)


def names_label_term(text: str) -> bool:
    """True when the text mentions a term of the etiology vocabulary (what the masker withholds)."""
    return names_a_cause(text)
