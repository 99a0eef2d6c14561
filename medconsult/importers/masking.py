"""Masking case notes that name the answer: the diagnosis, the pathogen, a giveaway test result or treatment.

Every note is masked against the whole label vocabulary of the data sets, not only against its own row's label,
so that where a sentence was withheld says nothing about the label. A sentence is withheld whole, never left
with a hole in it: "... [masked] pneumonia" would still hint. History that a clinician would have (HIV status,
CD4 count, travel, smoking, symptoms, vital signs, laboratory values, radiological description) is kept.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

WITHHELD = "[sentence withheld: names the diagnosis]"

# The label vocabulary: diagnoses and pathogens of the data sets, with their usual synonyms and abbreviations.
LABEL_TERMS: tuple[str, ...] = (
    r"covid(?:[\s-]?19)?",
    r"sars(?:[\s-]?cov(?:[\s-]?2)?)?",
    r"(?:2019[\s-]?)?n[\s-]?cov",
    r"corona[\s-]?virus(?:es)?",
    r"corona",
    r"strep(?:tococc\w*)?",
    r"pneumococc\w*",
    r"pneumoniae",
    r"klebsiella",
    r"e\.?\s*coli",
    r"escherichia",
    r"legionell\w*",
    r"legionnaires?'?",
    r"mycoplasma\w*",
    r"chlamydophila",
    r"chlamydia\w*",
    r"pneumocystis",
    r"pcp",
    r"pjp",
    r"jiroveci[i]?",
    r"carinii",
    r"varicella",
    r"chicken[\s-]?pox",
    r"vzv",
    r"(?:herpes\s+)?zoster",
    r"influenza",
    r"flu(?![\s-]+like)",  # "flu-like illness" is a symptom
    r"h1n1",
    r"h3n2",
    r"lipoid",
    r"ards",
    r"respiratory\s+distress\s+syndrome",
    r"bacterial",
    r"(?:viral|fungal|atypical)\s+(?:pneumonia|pneumonitis|infection)",
)

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


def _words(patterns: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(patterns) + r")\b", re.IGNORECASE)


LABEL_PATTERN = _words(LABEL_TERMS)
TREATMENT_PATTERN = _words(GIVEAWAY_TREATMENTS)
TEST_PATTERN = _words(DIAGNOSTIC_TESTS)
RESULT_PATTERN = _words(TEST_RESULTS)
RESULT_REFERENCE_PATTERN = _words(RESULT_REFERENCES)
HIV_PATTERN = _words((HIV_CONTEXT,))

# Words whose trailing full stop does not end a sentence.
ABBREVIATIONS = {"dr", "drs", "mr", "mrs", "ms", "prof", "fig", "figs", "vs", "e.g", "i.e", "approx", "no", "st",
                 "al", "ca", "resp", "temp"}  # fmt: skip
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
        sentences.append(text[start : boundary.start()].strip())
        start = boundary.end()
    sentences.append(text[start:].strip())
    return [s for s in sentences if s]


def withhold_reason(sentence: str) -> str | None:
    """Why a sentence must not reach the model, or None when it may."""
    if LABEL_PATTERN.search(sentence):
        return "names the diagnosis or pathogen"
    if TREATMENT_PATTERN.search(sentence):
        return "names a treatment that implies the diagnosis"
    if RESULT_REFERENCE_PATTERN.search(sentence):
        return "refers to a diagnostic test result"
    reports_result = TEST_PATTERN.search(sentence) and RESULT_PATTERN.search(sentence)
    if reports_result and not HIV_PATTERN.search(sentence):
        return "reports a diagnostic test result"
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
    return LABEL_PATTERN.search(text) is not None
