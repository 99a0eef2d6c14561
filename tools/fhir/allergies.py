"""fhir_allergies: allergies and intolerances, with criticality and reactions."""

from __future__ import annotations

from fhirclient.models.allergyintolerance import AllergyIntolerance
from pydantic import BaseModel, Field

from medconsult.fhir.values import concept_text, fhir_date, on_or_before, reference
from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fhir.common import PatientArgs

DESCRIPTION_CHARS_KEPT = 300  # of a reaction's description ("hives within minutes of the first dose")


class AllergyItem(BaseModel):
    resource: str
    substance: str | None
    category: list[str]
    criticality: str | None
    clinical_status: str | None
    reactions: list[str]
    recorded: str | None = None
    descriptions: list[str] = Field(default_factory=list)  # reaction.description: the reaction told in words


class AllergiesResult(ToolResult):
    allergies: list[AllergyItem]

    def evidence(self) -> list[Evidence]:
        if not self.allergies:
            return [Evidence(kind="allergy", text="no allergy recorded on the FHIR server")]
        return [
            Evidence(
                kind="allergy",
                text=f"allergy to {a.substance} (criticality {a.criticality or 'unknown'}"
                + (f"; reactions: {', '.join(a.reactions)}" if a.reactions else "")
                + (f"; described: {' '.join(a.descriptions)}" if a.descriptions else "")
                + ")",
                resource=a.resource,
            )
            for a in self.allergies
        ]


class AllergiesTool(MedTool):
    name: str = "fhir_allergies"
    description: str = (
        "Allergies and intolerances of a patient: substance, category, criticality and reactions. "
        "An empty list means none are recorded on the server, not that the patient has none."
    )
    args_schema: type[BaseModel] = PatientArgs
    result_model = AllergiesResult
    stage = Stage.RECORD
    missing = "allergies"

    def execute(self, args: PatientArgs) -> AllergiesResult:
        found = self.context.fhir.search(AllergyIntolerance, {"patient": args.patient_id, "_count": "100"})
        items = [
            _item(a)
            for a in found
            if on_or_before(fhir_date(a.recordedDate) or fhir_date(a.onsetDateTime), args.as_of)
        ]
        summary = f"{len(items)} allergy record(s)"
        if items:
            summary += ": " + "; ".join(
                f"{i.substance} ({i.criticality or 'criticality unknown'})" for i in items
            )
        else:
            summary += " (none recorded)"
        return AllergiesResult(summary=summary, allergies=items)


def _item(allergy: AllergyIntolerance) -> AllergyItem:
    reactions = [
        concept_text(m) for r in (allergy.reaction or []) for m in (r.manifestation or []) if concept_text(m)
    ]
    return AllergyItem(
        resource=reference(allergy),
        substance=concept_text(allergy.code),
        category=list(allergy.category or []),
        criticality=allergy.criticality,
        clinical_status=concept_text(allergy.clinicalStatus),
        reactions=reactions,
        recorded=fhir_date(allergy.recordedDate),
        descriptions=[r.description[:DESCRIPTION_CHARS_KEPT] for r in allergy.reaction or [] if r.description],
    )
