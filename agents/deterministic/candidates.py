"""Candidate diagnoses for a chest radiograph consult: the knowledge base's conditions for the patient's population,
named by cause, with what the perception tools suggest for each.

Without a list a small model ranks "Pneumonia" (no cause: nothing to treat by) or the record's old problems. The
list names each condition at the level a plan needs (bacterial, viral, COVID-19, fungal; no acute disease when a
tool suggests it) and puts first the causes the etiology estimate and the similar cases point to, each with its
figure, so the model sees the tools' suggestions without being told to follow them: it still ranks by the evidence
and may add a diagnosis.
Deterministic, from tool results only: no record text enters the list (record text is shown as quoted data).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from medconsult.clinical.etiology import classify
from medconsult.knowledge import KnowledgeBase
from medconsult.records import ToolRecord
from medconsult.tools.fusion.etiology_estimate import EtiologyEstimateTool
from medconsult.tools.fusion.similar_cases import SimilarCasesTool
from medconsult.tools.runner import latest_result

# The condition listed first within its etiology class (the tools' figures stand beside it), per population; the
# class's other conditions follow in the knowledge base's order. A condition's class is read from its differential
# name with the vocabulary the scorer and the note masker use.
LEADS: dict[str, dict[str, str]] = {
    "adult": {"bacterial": "cap", "covid-19": "covid19", "viral": "influenza", "fungal": "pcp"},
    "paediatric": {"bacterial": "paediatric_cap", "viral": "paediatric_viral_lrti"},
}
NORMAL = "Normal chest radiograph, no acute disease"  # the "normal" class: no knowledge-base condition
CLASS_ORDER = ("bacterial", "viral", "covid-19", "fungal", "normal")  # when no tool speaks: a fixed order


@dataclass(frozen=True)
class Candidate:
    name: str
    etiology: str  # an etiology class (medconsult.clinical.etiology.ETIOLOGIES)
    support: tuple[str, ...] = ()  # what suggests it, e.g. "etiology estimate 0.62", "similar cases 3 of 5"
    condition: str | None = None  # knowledge-base key; None for the normal candidate

    def line(self) -> str:
        return f"{self.name} ({'; '.join(self.support)})" if self.support else self.name


def candidate_diagnoses(kb: KnowledgeBase, records: list[ToolRecord], population: str) -> list[Candidate]:
    """Every condition of the population, and "normal" when a tool suggests it; the classes the tools suggest
    first (strongest first)."""
    leads = LEADS.get(population, {})
    support, strength = _tool_support(records, population)
    by_class: dict[str, list[str | None]] = {c: [] for c in CLASS_ORDER}
    # "Normal" only where a tool points to it: offered unprompted, the small model put it first for 5 of 24 sick
    # adults (ieee8023-dev24), citing nothing that showed a normal film. It may still add it from the facts.
    if "normal" in support:
        by_class["normal"].append(None)
    for key, condition in kb.conditions.items():
        etiology = classify(kb.differential_name(key)).reading
        if condition.population == population and etiology in by_class:
            by_class[etiology].append(key)
    candidates = []
    for etiology in sorted(CLASS_ORDER, key=lambda c: (-strength.get(c, 0.0), CLASS_ORDER.index(c))):
        keys = sorted(by_class[etiology], key=lambda k: k != leads.get(etiology))  # the lead first, else KB order
        for position, key in enumerate(keys):
            candidates.append(Candidate(
                name=NORMAL if key is None else kb.differential_name(key), etiology=etiology,
                support=tuple(support.get(etiology, ())) if position == 0 else (), condition=key,
            ))
    return candidates


def _tool_support(records: list[ToolRecord], population: str) -> tuple[dict[str, list[str]], dict[str, float]]:
    """Per etiology class: the tools' figures as text, and a strength to order by: the mean, over the tools that
    spoke, of the estimate's probability and the similar cases' share (0 where a tool gave the class nothing).
    Only the similar cases of the candidates' population vote: a patient of unknown age is searched among
    everyone, and five healthy children near an adult's film say nothing about the adult (ieee8023-65-1)."""
    support: dict[str, list[str]] = {}
    spoke: list[dict[str, float]] = []
    estimate = latest_result(records, EtiologyEstimateTool)
    if estimate and not estimate.get("abstained"):
        probabilities = {c: p for c, p in (estimate.get("probabilities") or {}).items() if p is not None}
        spoke.append(probabilities)
        for etiology, probability in probabilities.items():
            if probability >= 0.05:
                support.setdefault(etiology, []).append(f"etiology estimate {probability:.2f}")
    similar = latest_result(records, SimilarCasesTool)
    labels = [c["label"] for c in (similar or {}).get("cases", []) if c.get("population") == population]
    if labels:
        vote = Counter(labels)
        spoke.append({c: n / len(labels) for c, n in vote.items()})
        for etiology, count in vote.most_common():
            support.setdefault(etiology, []).append(f"similar cases {count} of {len(labels)}")
    classes = {c for figures in spoke for c in figures}
    return support, {c: sum(f.get(c, 0.0) for f in spoke) / len(spoke) for c in classes}

