"""The etiology vocabulary: which words name a cause of a chest illness, and which class each cause belongs to.

One table, read by three consumers that must agree with each other:

- the note masker (`medconsult.importers.masking`) withholds every note sentence that mentions a label term;
- the scorers (`medconsult.evals.scorers`) map a data set's label and each drafted diagnosis to a class;
- the evaluation's label-visibility check runs `mentions` over every fact the agent saw.

Classes: bacterial / viral / fungal / covid-19 / other (non-infectious) / normal. A text that names no cause
("pneumonia", "community-acquired pneumonia") or hedges between causes ("bacterial or viral pneumonia") reads as
`unspecified`: it is not an etiology, so it never scores a hit, and a label that reads so is left out of the
etiology metrics. Aspiration pneumonia is bacterial (its treatment targets oral and enteric bacteria).

Terms are regular expressions matched case-insensitively on word boundaries. `label_term=False` marks background
conditions (COPD, heart failure, cancer...): a drafted diagnosis naming one is a non-infectious answer, but in a
note they are history a clinician has, so the masker keeps them. "other" is a bucket, not one etiology, so every
class-"other" term also names its `condition`: a scorer counts an "other" answer right only for the label's own
condition (COPD is not lipoid pneumonia).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

Etiology = Literal["bacterial", "viral", "fungal", "covid-19", "other", "normal"]
ETIOLOGIES: tuple[Etiology, ...] = ("bacterial", "viral", "fungal", "covid-19", "other", "normal")
UNSPECIFIED = "unspecified"
Reading = Literal["bacterial", "viral", "fungal", "covid-19", "other", "normal", "unspecified"]


@dataclass(frozen=True)
class Term:
    pattern: str
    reading: Reading
    pathogen: str | None = None  # normalised organism, where the term names one
    label_term: bool = True  # False: background condition, kept in notes (see the module docstring)
    condition: str | None = None  # the non-infectious disease a class-"other" term names


# Organisms. Genus level where the labels are genus level ("Streptococcus").
PATHOGENS: tuple[Term, ...] = (
    Term(r"covid(?:[\s-]?19)?|coronavirus\s+disease(?:[\s-]?(?:2019|19))?|sars(?:[\s-]?cov(?:[\s-]?2)?)?"
         r"|(?:2019[\s-]?)?n[\s-]?cov|(?:novel\s+)?corona[\s-]?virus(?:es)?|corona", "covid-19", "sars-cov-2"),
    Term(r"strep(?:tococc\w*)?|pneumococc\w*|s\.\s?pneumoniae", "bacterial", "streptococcus"),
    Term(r"staph(?:ylococc\w*)?|mrsa|mssa|s\.\s?aureus", "bacterial", "staphylococcus aureus"),
    Term(r"klebsiella", "bacterial", "klebsiella"),
    Term(r"e\.?\s?coli|escherichia", "bacterial", "escherichia coli"),
    Term(r"legionell\w*|legionnaires?'?", "bacterial", "legionella"),
    Term(r"mycoplasma\w*", "bacterial", "mycoplasma"),
    Term(r"chlamydophila|chlamydia\w*", "bacterial", "chlamydophila"),
    Term(r"ha?emophilus|h\.\s?influenzae", "bacterial", "haemophilus influenzae"),
    Term(r"pseudomonas", "bacterial", "pseudomonas"),
    Term(r"moraxella", "bacterial", "moraxella"),
    Term(r"tubercul\w*|tb|mycobacteri\w*", "bacterial", "mycobacterium tuberculosis"),
    Term(r"pneumoniae", "bacterial"),  # Streptococcus / Klebsiella / Mycoplasma / Chlamydia pneumoniae
    Term(r"pneumocystis|pcp|pjp|jiroveci[i]?|carinii", "fungal", "pneumocystis"),
    Term(r"aspergill\w*", "fungal", "aspergillus"),
    Term(r"histoplasm\w*", "fungal", "histoplasma"),
    Term(r"cryptococc\w*", "fungal", "cryptococcus"),
    Term(r"varicella|chicken[\s-]?pox|vzv|(?:herpes\s+)?zoster", "viral", "varicella-zoster virus"),
    Term(r"influenza|flu(?![\s-]+like)|h1n1|h3n2", "viral", "influenza virus"),  # \b: not "influenzae"
    Term(r"rsv|respiratory\s+syncytial(?:\s+virus)?", "viral", "respiratory syncytial virus"),
    Term(r"adenovir\w*", "viral", "adenovirus"),
    Term(r"cytomegalovir\w*|cmv", "viral", "cytomegalovirus"),
    Term(r"(?:human\s+)?metapneumovirus|parainfluenza|rhinovirus", "viral"),
)

# Classes named without an organism.
CLASS_TERMS: tuple[Term, ...] = (
    # "viral load", "viral suppression" and the human immunodeficiency virus are HIV history, not the answer.
    Term(r"viral(?!\s+(?:load|suppression|replication|hepatitis))|(?<!immunodeficiency\s)virus(?:es)?", "viral"),
    Term(r"fung(?:al|us|i)|mycos[ie]s", "fungal"),
    Term(r"bacteri\w*|bacter[a]?emia", "bacterial"),
    Term(r"atypical\s+(?:pneumonia|pneumonitis|infection|organisms?)", "bacterial"),  # the atypicals are bacteria
    Term(r"aspiration\s+(?:pneumonia|pneumonitis)"
         r"|(?:consistent\s+with|in\s+keeping\s+with|compatible\s+with|suggestive\s+of|suggesting|typical\s+of"
         r"|due\s+to|secondary\s+to)\s+aspiration", "bacterial"),
    Term(r"(?:lung|pulmonary)\s+abscess\w*|abscess\w*|empyema", "bacterial"),
    # Non-infectious diseases a label names; each is its own condition, since "other" is no single etiology.
    Term(r"lipoid", "other", condition="lipoid pneumonia"),
    Term(r"ards|(?:acute\s+)?respiratory\s+distress\s+syndrome", "other", condition="ARDS"),
    Term(r"organi[sz]ing\s+pneumonia", "other", condition="organising pneumonia"),
    Term(r"eosinophilic\s+pneumonia", "other", condition="eosinophilic pneumonia"),
    Term(r"hypersensitivity\s+pneumonitis", "other", condition="hypersensitivity pneumonitis"),
    Term(r"radiation\s+pneumonitis", "other", condition="radiation pneumonitis"),
    Term(r"(?:drug|chemical)[\s-]induced\s+pneumonitis", "other", condition="drug-induced pneumonitis"),
)

# Non-infectious conditions a differential may name; history in a note, so never masked.
BACKGROUND_TERMS: tuple[Term, ...] = tuple(
    Term(pattern, "other", condition=condition, label_term=False)
    for condition, pattern in (
        ("pulmonary oedema", r"(?:pulmonary|interstitial|alveolar|cardiogenic)\s+o?edema|o?edema"),
        ("heart failure", r"(?:congestive\s+)?(?:heart|cardiac)\s+failure|chf"),
        ("atelectasis", r"atelecta\w*"),
        ("pleural effusion", r"(?:pleural\s+)?effusion"),
        ("cancer", r"malignan\w*|carcinoma|cancer|neoplasm|tumou?r|mass|metasta\w*|lymphoma"),
        ("pulmonary embolism", r"(?:pulmonary\s+)?embol\w*"),
        ("fibrosis", r"fibrosis|interstitial\s+lung\s+disease"),
        ("sarcoidosis", r"sarcoid\w*"),
        ("COPD", r"copd|chronic\s+obstructive(?:\s+pulmonary\s+disease)?|emphysema"),
        ("asthma", r"asthma"),
        ("bronchiectasis", r"bronchiectasis"),
        ("pneumothorax", r"pneumothorax"),
        ("contusion", r"contusion"),
        ("vasculitis", r"vasculitis"),
    )
)

# A radiological impression that reads normal. A bare "normal" elsewhere ("normal heart size") is not one.
NORMAL_TERMS: tuple[Term, ...] = (
    Term(r"no\s+(?:significant\s+|acute\s+|radiographic\s+|radiological\s+|thoracic\s+|cardiopulmonary\s+|active\s+)*"
         r"(?:findings?|abnormalit\w*|disease|pathology|process)", "normal"),
    Term(r"(?:cxr|x-?rays?|radiographs?|films?|studies|study|imaging)\s*(?::|shows?|showed|is|was|demonstrat\w*"
         r"|revealed|reads?)?\s*(?:an?\s+)?(?:normal|unremarkable|clear)", "normal"),
    Term(r"(?:normal|unremarkable)\s+(?:chest\s+)?(?:cxr|x-?rays?|radiographs?|films?|study|imaging)", "normal"),
    Term(r"lungs?\s+(?:fields?\s+)?(?:is\s+|are\s+|were\s+|was\s+|appear\s+)?(?:clear|normal)", "normal"),
    Term(r"(?:did|does)\s+not\s+show\s+(?:any\s+)?abnormal\w*", "normal"),
)
# The whole text is a "nothing found" answer ("Normal", "No Finding", "Healthy").
NORMAL_ANSWER = re.compile(
    r"^\W*(?:normal|healthy|unremarkable|no\s+(?:acute\s+)?(?:findings?|disease|abnormalit\w*|pathology))"
    r"(?:\s+(?:chest|study|radiograph|x-?ray|cxr|lungs?))*\W*$",
    re.IGNORECASE,
)

# Pneumonia with no cause named.
UNSPECIFIED_TERMS: tuple[Term, ...] = (
    Term(r"pneumoni\w*|pneumonitis|cap|hap|vap|lrti|lower\s+respiratory\s+(?:tract\s+)?infection"
         r"|chest\s+infection", UNSPECIFIED),
)

TERMS: tuple[Term, ...] = (*PATHOGENS, *CLASS_TERMS, *BACKGROUND_TERMS, *NORMAL_TERMS, *UNSPECIFIED_TERMS)

# Words that turn two named causes into alternatives rather than one diagnosis.
HEDGE = re.compile(
    r"\bor\b|\bvs\.?\b|\bversus\b|/|\beither\b|\bpossibl[ey]\b|\bprobabl[ey]\b|\bmaybe\b|\bunclear\b|\buncertain\b"
    r"|\bundetermined\b|\bnot\s+excluded\b|\bdifferential\b",
    re.IGNORECASE,
)


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![\w])(?:{pattern})(?![\w])", re.IGNORECASE)


@dataclass(frozen=True)
class Mention:
    reading: Reading
    text: str  # the words matched
    start: int
    pathogen: str | None
    label_term: bool
    condition: str | None = None


def mentions(text: str, *, include_background: bool = False) -> list[Mention]:
    """Every term of the vocabulary in `text`, in order of position; overlapping matches of longer, more specific
    terms win ("aspiration pneumonia" is one bacterial mention, not also an unspecified one)."""
    found: list[Mention] = []
    for term in TERMS:
        if not term.label_term and not include_background:
            continue
        for match in _compiled(term.pattern).finditer(text or ""):
            found.append(
                Mention(term.reading, match.group(), match.start(), term.pathogen, term.label_term, term.condition)
            )
    found.sort(key=lambda m: (m.start, -len(m.text)))
    kept: list[Mention] = []
    for mention in found:
        if kept and mention.start < kept[-1].start + len(kept[-1].text):
            continue  # inside the previous, longer match
        kept.append(mention)
    return kept


def names_a_cause(text: str) -> bool:
    """True when the text mentions any label term: a class, an organism, a normal impression or a pneumonia."""
    return bool(mentions(text))


@dataclass(frozen=True)
class EtiologyReading:
    reading: Reading | None  # None: the text says nothing the vocabulary knows
    pathogen: str | None
    hedged: bool = False
    condition: str | None = None  # for an "other" reading: which non-infectious disease


def classify(text: str | None) -> EtiologyReading:
    """The etiology a label or a drafted diagnosis states.

    A named organism decides the class ("COVID-19, ARDS" -> covid-19, "Mycoplasma bacterial pneumonia" ->
    bacterial; the first-named organism where several are named); otherwise a named class (an infectious one
    before a non-infectious one: "ARDS due to bacterial pneumonia" -> bacterial), then a normal answer; background
    conditions decide only when nothing else is named ("pneumonia with pleural effusion" is unspecified).
    Pneumonia with nothing more said is `unspecified`, and so is a hedge: two different readings joined by "or",
    "vs", "/", "possibly"... ("bacterial or viral pneumonia"), never its first-named class. COVID-19 is a viral
    disease, so "COVID-19 viral pneumonia" is not a hedge.
    """
    if not text or not text.strip():
        return EtiologyReading(None, None)
    if NORMAL_ANSWER.match(text):
        return EtiologyReading("normal", None)
    found = mentions(text, include_background=True)
    if not found:
        return EtiologyReading(None, None)
    if len(_alternatives(text, found)) > 1 and HEDGE.search(text):
        return EtiologyReading(UNSPECIFIED, None, hedged=True)
    organisms = [m for m in found if m.pathogen]
    if organisms:
        return EtiologyReading(organisms[0].reading, organisms[0].pathogen)
    named = [m for m in found if m.label_term]
    causes = [m for m in named if m.reading != UNSPECIFIED]
    if causes:
        infectious = [m for m in causes if m.reading not in ("other", "normal")]
        first = (infectious or causes)[0]
        return EtiologyReading(first.reading, None, condition=first.condition)
    if named:
        return EtiologyReading(UNSPECIFIED, None)
    return EtiologyReading(found[0].reading, None, condition=found[0].condition)


_ATTACHED = re.compile(r"^[\s,-]*(?:[A-Za-z-]+\s+){0,2}$")  # "viral pneumonia", "bacterial lobar pneumonia"


def _alternatives(text: str, found: list[Mention]) -> set[str]:
    """The distinct readings a text offers; a "pneumonia" that completes a named cause is not one of its own."""
    readings: set[str] = set()
    for previous, mention in zip([None, *found], found, strict=False):
        attached = previous is not None and _ATTACHED.match(text[previous.start + len(previous.text) : mention.start])
        if mention.reading == UNSPECIFIED and attached and previous.reading != UNSPECIFIED:
            continue
        readings.add(mention.reading)
    if "covid-19" in readings:
        readings.discard("viral")
    return readings


def etiology_class(text: str | None) -> Reading | None:
    """classify(text).reading: an etiology, `unspecified`, or None when nothing is named."""
    return classify(text).reading


def pathogen(text: str | None) -> str | None:
    """Normalised organism ("streptococcus", "pneumocystis", "sars-cov-2"...), None where none is named."""
    return classify(text).pathogen


def reveals(text: str, label: str) -> list[str]:
    """The words of `text` that give away `label`: a mention of the label's etiology class (for COVID-19 also a
    generic "viral"; for "other" only the label's own condition, since naming another non-infectious disease says
    nothing about it) or its organism.
    Unspecified pneumonia and hedged labels have no class to give away; their own words still count."""
    target = classify(label)
    own_words = {m.text.lower() for m in mentions(label, include_background=True)}
    hits = []
    for mention in mentions(text, include_background=True):
        generic_viral = mention.reading == "viral" and not mention.pathogen
        same_class = target.reading in ETIOLOGIES and target.reading != "other" and (
            mention.reading == target.reading or (target.reading == "covid-19" and generic_viral)
        )
        same_organism = target.pathogen is not None and mention.pathogen == target.pathogen
        same_condition = target.condition is not None and mention.condition == target.condition  # "ARDS" names ARDS
        if same_class or same_organism or same_condition or mention.text.lower() in own_words:
            hits.append(mention.text)
    return hits
