"""Infection markers read against published thresholds: a bacterial or viral pattern, conservatively.

Procalcitonin and CRP are the primary markers: each has a published cut-off tied to an antibiotic decision. The
white-cell count supports a bacterial reading only when it agrees with them. Lymphopenia and the
neutrophil-to-lymphocyte ratio are reported for context but do not vote: low lymphocytes occur in viral infection
and equally predict bacteraemia (de Jager 2010). Statements name no particular pathogen: the text reaches the
model, which must not be nudged towards a diagnosis by the calculator's wording.

The overall pattern is "insufficient data" without procalcitonin and CRP, "indeterminate" when markers point both
ways or only to the grey zone, and otherwise the direction they share. Values are in the canonical units of
medconsult.clinical.codes: procalcitonin ng/mL (= ug/L), CRP mg/L, cell counts x10^3/uL (= x10^9/L).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from medconsult.clinical.scores import Input, Inputs, MissingInput, format_value

MARKER_INPUTS = ("procalcitonin", "crp", "leukocytes", "neutrophils", "lymphocytes")

Direction = Literal["bacterial", "viral", "none"]
Weight = Literal["primary", "supportive", "context"]
Pattern = Literal["favours bacterial", "favours viral", "indeterminate", "insufficient data"]

PROCALCITONIN_SOURCE = (
    "Schuetz P et al. JAMA 2009;302:1059-66 (ProHOSP algorithm for lower respiratory tract infection); "
    "FDA 2017 clearance of procalcitonin testing to guide antibiotics in LRTI (JAMA 2017;317:1308)"
)
CRP_SOURCE = (
    "NICE CG191 (2014, updated 2019), recommendation for lower respiratory tract infection in primary care "
    "without a clinical diagnosis of pneumonia"
)
WHITE_CELL_SOURCE = "Bone RC et al. Chest 1992;101:1644-55 (SIRS white-cell criterion: > 12 or < 4 x10^3/uL)"
LYMPHOPENIA_SOURCE = (
    "de Jager CP et al. Crit Care 2010;14:R192 (lymphocytopenia < 1.0 x10^9/L, predicts bacteraemia)"
)
NLR_SOURCE = (
    "de Jager CP et al. Crit Care 2010;14:R192 (neutrophil-lymphocyte count ratio higher with bacteraemia, "
    "mean 20.9 vs 13.2; no cut-off applied here)"
)


class MarkerStatement(BaseModel):
    marker: str  # input name
    finding: str  # e.g. "procalcitonin 0.08 ng/mL < 0.1"
    meaning: str
    direction: Direction
    weight: Weight
    source: str
    resources: list[str]


class MarkerResult(BaseModel):
    pattern: Pattern
    rationale: str
    statements: list[MarkerStatement]
    neutrophil_lymphocyte_ratio: float | None
    inputs: list[Input]
    missing: list[MissingInput]


def _value_text(item: Input) -> str:
    return format_value(float(item.value), item.unit)


def _procalcitonin(item: Input) -> MarkerStatement:
    value = float(item.value)
    if value < 0.1:
        rule, meaning, direction = "< 0.1", "antibiotics strongly discouraged (bacterial infection unlikely)", "viral"
    elif value < 0.25:
        rule, meaning, direction = "0.1 to < 0.25", "antibiotics discouraged (bacterial infection unlikely)", "viral"
    elif value < 0.5:
        rule, meaning, direction = "0.25 to < 0.5", "antibiotics encouraged (bacterial infection likely)", "bacterial"
    else:
        rule, meaning, direction = ">= 0.5", "antibiotics strongly encouraged (bacterial infection likely)", "bacterial"
    return MarkerStatement(marker="procalcitonin", finding=f"procalcitonin {_value_text(item)}: {rule} ng/mL",
                           meaning=meaning, direction=direction, weight="primary", source=PROCALCITONIN_SOURCE,
                           resources=item.references())


def _crp(item: Input) -> MarkerStatement:
    value = float(item.value)
    if value < 20:
        rule, meaning, direction = "< 20", "do not routinely offer antibiotics", "viral"
    elif value <= 100:
        rule, meaning, direction = "20 to 100", "consider a delayed antibiotic prescription (grey zone)", "none"
    else:
        rule, meaning, direction = "> 100", "offer antibiotics", "bacterial"
    return MarkerStatement(marker="crp", finding=f"CRP {_value_text(item)}: {rule} mg/L", meaning=meaning,
                           direction=direction, weight="primary", source=CRP_SOURCE, resources=item.references())


def _leukocytes(item: Input) -> MarkerStatement | None:
    value = float(item.value)
    if value > 12:
        finding, meaning, direction = "> 12", "leukocytosis, supports a bacterial cause", "bacterial"
    elif value < 4:
        finding, meaning, direction = "< 4", "leukopenia, not specific for either cause", "none"
    else:
        return None
    weight: Weight = "supportive" if direction == "bacterial" else "context"
    return MarkerStatement(marker="leukocytes", finding=f"white cells {_value_text(item)}: {finding} x10^3/uL",
                           meaning=meaning, direction=direction, weight=weight, source=WHITE_CELL_SOURCE,
                           resources=item.references())


def _lymphocytes(item: Input) -> MarkerStatement | None:
    if float(item.value) >= 1.0:
        return None
    return MarkerStatement(
        marker="lymphocytes", finding=f"lymphocytes {_value_text(item)}: < 1.0 x10^3/uL",
        meaning="lymphopenia: seen in viral infection and in bacteraemia; does not discriminate",
        direction="none", weight="context", source=LYMPHOPENIA_SOURCE, resources=item.references(),
    )


def _nlr(neutrophils: Input, lymphocytes: Input) -> tuple[float | None, MarkerStatement | None]:
    if float(lymphocytes.value) <= 0:
        return None, None
    ratio = float(neutrophils.value) / float(lymphocytes.value)
    statement = MarkerStatement(
        marker="neutrophil_lymphocyte_ratio", finding=f"neutrophil-to-lymphocyte ratio {ratio:.1f}",
        meaning="higher ratios accompany bacteraemia; reported for context only", direction="none",
        weight="context", source=NLR_SOURCE, resources=neutrophils.references() + lymphocytes.references(),
    )
    return round(ratio, 2), statement


def _pattern(statements: list[MarkerStatement], have_primary: bool) -> tuple[Pattern, str]:
    if not have_primary:
        return "insufficient data", "neither procalcitonin nor CRP is available; a blood count alone cannot tell"
    primary = {s.direction for s in statements if s.weight == "primary"} - {"none"}
    supportive = {s.direction for s in statements if s.weight == "supportive"}
    if primary == {"bacterial", "viral"}:
        return "indeterminate", "procalcitonin and CRP point in opposite directions"
    if primary == {"bacterial"}:
        return "favours bacterial", "every primary marker past its threshold points to a bacterial cause"
    if primary == {"viral"}:
        if "bacterial" in supportive:
            return "indeterminate", "low primary markers conflict with a leukocytosis"
        return "favours viral", "primary markers below their antibiotic thresholds (viral or non-bacterial cause)"
    return "indeterminate", "CRP in the 20-100 mg/L grey zone and no procalcitonin"


def interpret_markers(inputs: Inputs) -> MarkerResult:
    """Statements for whichever of procalcitonin, CRP, white cells, neutrophils and lymphocytes are present."""
    present = {key: inputs[key] for key in MARKER_INPUTS if key in inputs and not inputs[key].missing}
    statements: list[MarkerStatement | None] = []
    if "procalcitonin" in present:
        statements.append(_procalcitonin(present["procalcitonin"]))
    if "crp" in present:
        statements.append(_crp(present["crp"]))
    if "leukocytes" in present:
        statements.append(_leukocytes(present["leukocytes"]))
    if "lymphocytes" in present:
        statements.append(_lymphocytes(present["lymphocytes"]))
    ratio = None
    if "neutrophils" in present and "lymphocytes" in present:
        ratio, nlr_statement = _nlr(present["neutrophils"], present["lymphocytes"])
        statements.append(nlr_statement)
    kept = [s for s in statements if s is not None]
    pattern, rationale = _pattern(kept, have_primary=bool({"procalcitonin", "crp"} & present.keys()))
    missing = [
        MissingInput(name=key, reason=(inputs[key].note if key in inputs and inputs[key].note else "not available"))
        for key in MARKER_INPUTS if key not in present
    ]
    return MarkerResult(pattern=pattern, rationale=rationale, statements=kept, neutrophil_lymphocyte_ratio=ratio,
                        inputs=list(present.values()), missing=missing)
