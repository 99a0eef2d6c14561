"""Regimens the plan may choose from: the knowledge base's entries for the leading diagnoses at this severity.

The model does not write a regimen: it picks one id from an enum built here, so every drug, dose and duration in
the plan comes from a curated entry with its source. Severity comes from the calculator results (CURB-65, CRB-65,
PSI) when they are complete; otherwise the knowledge base returns every setting's regimens, marked undetermined.
"""

from __future__ import annotations

from collections.abc import Callable

from medconsult.agents.schemas import Differential
from medconsult.knowledge import SelectedRegimen, Severity, knowledge_base
from medconsult.records import ToolRecord
from medconsult.safety import PlannedDrug
from medconsult.tools.calculators.crb65 import Crb65Tool
from medconsult.tools.calculators.curb65 import Curb65Tool
from medconsult.tools.calculators.psi_port import PsiPortTool
from medconsult.tools.runner import latest_result

LEADING_DIAGNOSES = 2
MAX_OPTIONS = 8  # regimens offered to the model at once; a long enum costs a small model dearly
PSI_CLASSES = {"class I": 1, "class II": 2, "class III": 3, "class IV": 4, "class V": 5}


def candidate_regimens(
    differential: Differential,
    records: list[ToolRecord],
    excluded: set[str] = frozenset(),
    acceptable: Callable[[SelectedRegimen], bool] | None = None,
    population: str = "adult",
) -> list[SelectedRegimen]:
    """Knowledge-base regimens for the leading diagnoses at the scored severity, first-line first; `acceptable`
    screens them before the list is cut to its size (a redraft offers only what the safety review would pass).
    Only the conditions of the patient's population are searched: a child is never offered an adult's doses."""
    kb, severity = knowledge_base(), severity_from_scores(records)
    ranked: list[tuple[int, SelectedRegimen]] = []
    for rank, diagnosis in enumerate(differential.diagnoses[:LEADING_DIAGNOSES]):
        condition = kb.match_condition(diagnosis.diagnosis, population)
        if condition is not None:
            ranked += [(rank, r) for r in kb.regimens_for(condition.key, severity)
                       if r.id not in excluded and (acceptable is None or acceptable(r))]
    # The leading diagnosis's regimens first (a child's viral infection: no antibiotic before the runner-up's
    # amoxicillin), its first-line or supportive ones before alternatives; stable, so the KB's order otherwise.
    ordered = sorted(ranked, key=lambda pair: (pair[0], pair[1].line not in ("first-line", "supportive")))
    return _unique([r for _, r in ordered])[:MAX_OPTIONS]


def severity_from_scores(records: list[ToolRecord]) -> Severity:
    """Only complete scores count: a range would pick a setting the missing inputs might contradict."""
    known: dict[str, int] = {}
    for tool, key in ((Curb65Tool, "curb65"), (Crb65Tool, "crb65")):
        result = latest_result(records, tool)
        if result and result.get("complete"):
            known[key] = result["points"]
    psi = latest_result(records, PsiPortTool)
    if psi and psi.get("complete") and psi.get("interpretation"):
        known["psi_class"] = PSI_CLASSES.get(psi["interpretation"]["risk_group"])
    return Severity(**{k: v for k, v in known.items() if v is not None})


def regimen_drugs(regimen: SelectedRegimen) -> list[PlannedDrug]:
    """Every option of every component; options of one component are alternatives, so each gets its own id."""
    return [
        PlannedDrug(name=drug.name, dose=drug.dose, route=drug.route, frequency=drug.frequency,
                    regimen_id=f"{regimen.id}#{c}.{o}", per_kg=drug.per_kg.model_dump() if drug.per_kg else None)
        for c, component in enumerate(regimen.components)
        for o, drug in enumerate(component.options)
    ]


def describe(regimen: SelectedRegimen, weight_kg: float | None = None) -> str:
    """One line per regimen for the prompt and the report: drugs with doses, duration, source. A dose by weight is
    worked out for a known weight; without one the line says so and gives the dose per kg."""
    sources = "; ".join(dict.fromkeys(s.short() for s in regimen.sources))
    if not regimen.components:
        return f"{regimen.summary}; {regimen.duration} [{sources}]"
    parts = [" or ".join(_dose_text(d, weight_kg) for d in component.options) for component in regimen.components]
    return f"{' + '.join(parts)}; {regimen.duration} [{sources}]"


def _dose_text(drug, weight_kg: float | None) -> str:  # knowledge.schema.Drug
    if drug.per_kg is None:
        return f"{drug.name} {drug.dose} {drug.route} {drug.frequency}".strip()
    if weight_kg is None:
        return f"{drug.name} {drug.per_kg.text()} {drug.route} {drug.frequency} (weight not recorded: dose by weight)"
    return (f"{drug.name} {drug.per_kg.dose_mg(weight_kg):g} mg {drug.route} {drug.frequency} "
            f"({drug.per_kg.text()}, for {weight_kg:g} kg)")


def drug_names(regimen: SelectedRegimen) -> str:
    """The regimen for the prompt: drugs and routes only ("amoxicillin-clavulanic acid or cefpodoxime (oral) +
    azithromycin (oral)"). Doses, duration and sources come from the knowledge base into the report; in the prompt
    they would cost hundreds of tokens on every plan call."""
    if not regimen.components:
        return f"no drug: {regimen.summary}"
    parts = []
    for component in regimen.components:
        names = " or ".join(dict.fromkeys(d.name for d in component.options))
        routes = "/".join(dict.fromkeys(d.route for d in component.options if d.route))
        parts.append(f"{names} ({routes})" if routes else names)
    return " + ".join(parts)


def _unique(regimens: list[SelectedRegimen]) -> list[SelectedRegimen]:
    seen: set[str] = set()
    return [r for r in regimens if not (r.id in seen or seen.add(r.id))]
