"""What the reasoning steps produce.

The static models below are what the graph state stores and the report renders. The model is asked to fill a
per-case variant (`differential_request`, `plan_request`) in which every citation is an enum of this case's facts
(labelled ids such as "F3 Pneumonia"), so a schema-constrained model cannot cite evidence that no tool returned.
The requests' length limits are tighter than the stored models' (which also read earlier runs): they bound the
reply, and on two CPU cores every generated token costs about 0.1 s.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, Field, create_model

Likelihood = Literal["high", "moderate", "low"]
Stance = Literal["supports", "opposes"]
ActionCategory = Literal[
    "diagnostic test",
    "antimicrobial",
    "other medication",
    "supportive care",
    "monitoring",
    "referral",
    "follow-up",
]
Priority = Literal["immediate", "today", "routine"]


class CitedFact(BaseModel):
    fact: str = Field(..., description="id of a fact from the record block, e.g. F3")
    stance: Stance


TEST_DESCRIPTION = "the test that would best confirm or exclude it"


class RankedDiagnosis(BaseModel):
    diagnosis: str = Field(..., max_length=80)
    likelihood: Likelihood
    evidence: list[CitedFact] = Field(..., min_length=1, max_length=5)  # requests allow 3 supporting, 2 opposing
    reasoning: str = Field(..., max_length=240)
    discriminating_test: str = Field(..., max_length=100, description=TEST_DESCRIPTION)


class Differential(BaseModel):
    """Ranked differential diagnosis, most likely first, each diagnosis tied to the facts behind it."""

    summary: str = Field(..., max_length=300, description="one-paragraph synthesis of the case")
    diagnoses: list[RankedDiagnosis] = Field(..., min_length=1, max_length=4)


class PlanAction(BaseModel):
    action: str = Field(..., max_length=140)
    category: ActionCategory
    priority: Priority
    rationale: str = Field(..., max_length=200)
    evidence: list[str] = Field(default_factory=list, max_length=3, description="ids of supporting facts")


NO_REGIMEN = "none of these"


class TreatmentPlan(BaseModel):
    """Prioritised management plan for the leading diagnosis, for a physician to validate."""

    working_diagnosis: str = Field(..., max_length=80)
    regimen: str = Field(NO_REGIMEN, description="id of the chosen regimen from the list given, or 'none of these'")
    regimen_reason: str = Field("", max_length=240, description="why this regimen suits this patient's data")
    off_knowledge_base: list[str] = Field(
        default_factory=list, max_length=2, description="treatment outside the listed regimens (flagged)"
    )
    actions: list[PlanAction] = Field(..., min_length=1, max_length=6)
    cautions: list[str] = Field(
        default_factory=list, max_length=3, description="patient-specific safety points"
    )


def _fact_enum(labels: list[str]) -> object:
    if not labels:
        raise ValueError("a reasoning step needs at least one fact to cite")
    return Literal[tuple(labels)]


def differential_request(labels: list[str]) -> type[BaseModel]:
    """What the model fills for a `Differential`: citations restricted to this case's facts (their citation labels),
    listed as `supporting` and `opposing` instead of one object per citation with its stance, which costs about
    twice the generated tokens. `differential_from_request` turns the answer into the stored form."""
    label = _fact_enum(labels)
    ranked = create_model(
        "RankedDiagnosis",
        diagnosis=(str, Field(..., max_length=80)),
        likelihood=(Likelihood, ...),
        supporting=(list[label], Field(..., min_length=1, max_length=3)),
        opposing=(list[label], Field(..., max_length=2)),
        reasoning=(str, Field(..., max_length=160)),
        discriminating_test=(str, Field(..., max_length=80, description=TEST_DESCRIPTION)),
    )
    return create_model(  # the diagnoses first: they are what the clinician waits for on screen
        "Differential", __doc__=Differential.__doc__,
        diagnoses=(list[ranked], Field(..., min_length=1, max_length=3)),
        summary=(str, Field(..., max_length=200, description="two-sentence synthesis of the case")),
    )


def differential_from_request(answer: dict, fact_id: Callable[[str], str]) -> dict:
    """An answer to `differential_request` (as a dict) in the shape of `Differential`, labels mapped to fact ids.
    Small models repeat a citation, or list one fact both for and against: each fact is kept once, as the first
    stance given (supporting)."""
    diagnoses = []
    for item in answer["diagnoses"]:
        supporting = list(dict.fromkeys(fact_id(label) for label in item["supporting"]))  # repeats cited once
        opposing = [f for f in dict.fromkeys(fact_id(label) for label in item["opposing"]) if f not in supporting]
        evidence = [{"fact": f, "stance": "supports"} for f in supporting]
        evidence += [{"fact": f, "stance": "opposes"} for f in opposing]
        rest = {k: v for k, v in item.items() if k not in ("supporting", "opposing")}
        diagnoses.append({**rest, "evidence": evidence})
    return {"summary": answer["summary"], "diagnoses": diagnoses}


def plan_request(labels: list[str], regimen_ids: list[str] = ()) -> type[BaseModel]:
    """`TreatmentPlan` with evidence restricted to this case's facts and the regimen to the ids offered."""
    label = _fact_enum(labels)
    action = create_model(
        "PlanAction", __base__=PlanAction,
        action=(str, Field(..., max_length=120)),
        rationale=(str, Field(..., max_length=140)),
        evidence=(list[label], Field(default_factory=list, max_length=3)),
    )
    regimen = Literal[(*regimen_ids, NO_REGIMEN)]
    return create_model(
        "TreatmentPlan", __base__=TreatmentPlan, __doc__=TreatmentPlan.__doc__,
        regimen=(regimen, Field(..., description=TreatmentPlan.model_fields["regimen"].description)),
        regimen_reason=(str, Field("", max_length=160, description="why this regimen suits this patient's data")),
        off_knowledge_base=(list[Annotated[str, Field(max_length=100)]], Field(default_factory=list, max_length=2)),
        actions=(list[action], Field(..., min_length=1, max_length=5)),
        cautions=(list[Annotated[str, Field(max_length=120)]], Field(default_factory=list, max_length=3)),
    )


# --- The radiology draft ----------------------------------------------------------------------------------------
DraftSection = Literal["findings", "comparison", "impression"]


class DraftStatement(BaseModel):
    text: str = Field(..., max_length=600)  # the model's are shorter (radiology_request); a tool's may be longer
    facts: list[str] = Field(default_factory=list, description="ids of the measurement facts it rests on")
    source: Literal["model", "measurement"] = "model"  # "measurement": the tool's own sentence, put in by the check
    recited: bool = False  # the check replaced the model's citations with the facts that state its numbers


class WithheldStatement(BaseModel):
    section: DraftSection
    text: str
    reason: str


class RadiologyDraft(BaseModel):
    """A preliminary radiology report of the case's radiograph, each statement tied to the measurements behind it."""

    findings: list[DraftStatement] = Field(default_factory=list)
    comparison: list[DraftStatement] = Field(default_factory=list)  # empty: no earlier exam was compared
    impression: list[DraftStatement] = Field(default_factory=list)
    withheld: list[WithheldStatement] = Field(default_factory=list)  # what the check took out, and why
    compared_with: list[str] = Field(default_factory=list)  # the prior exams, e.g. "2020-03-02 (ImagingStudy/...)"
    overlays: list[str] = Field(default_factory=list)  # comparison images (prior | current)
    drafted_by: Literal["model", "measurements only"] = "model"
    note: str | None = None  # why the model's draft is missing, when it is

    def sections(self) -> list[tuple[DraftSection, list[DraftStatement]]]:
        return [("findings", self.findings), ("comparison", self.comparison), ("impression", self.impression)]


def radiology_request(labels: list[str], with_comparison: bool) -> type[BaseModel]:
    """What the model fills: statements citing only this case's imaging facts; a comparison only when one exists."""
    label = _fact_enum(labels)
    statement = create_model(
        "Statement",
        text=(str, Field(..., max_length=280)),
        cites=(list[label], Field(..., min_length=1, max_length=3)),
    )
    sections: dict = {"findings": (list[statement], Field(..., min_length=1, max_length=3))}
    if with_comparison:
        sections["comparison"] = (list[statement], Field(..., min_length=1, max_length=2))
    sections["impression"] = (list[statement], Field(..., min_length=1, max_length=2))
    return create_model("RadiologyDraft", __doc__=RadiologyDraft.__doc__, **sections)
