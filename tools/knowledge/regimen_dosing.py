"""regimen_dosing: a knowledge-base regimen's drugs and doses and, for a kidney function, each drug's dose band.

A follow-up question such as "dose for eGFR 25?" is answered from this, with the band and its source as citable
facts, rather than from the model's memory. The eGFR may be the record's or the physician's hypothetical.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from medconsult.knowledge import knowledge_base
from medconsult.tools.base import Evidence, MedTool, ToolResult

MEASURES = {"crcl": "CrCl", "egfr": "eGFR"}  # the label's own measure of kidney function for a band


class RegimenDosingArgs(BaseModel):
    regimen_id: str = Field(..., max_length=120, description="knowledge-base regimen id")
    egfr: float | None = Field(None, ge=1, le=250, description="kidney function to dose for, mL/min")


class DrugDose(BaseModel):
    drug: str
    usual: str  # the regimen's dose, route and frequency
    at_egfr: str | None = None  # the band's dose ("avoid" included) at `egfr`; None: the usual dose applies
    band: str | None = None  # the band, e.g. "eGFR (10, 30] mL/min"
    source: str | None = None


class RegimenDosingResult(ToolResult):
    regimen_id: str
    regimen: str
    egfr: float | None
    drugs: list[DrugDose]
    source: str

    def evidence(self) -> list[Evidence]:
        lines = [Evidence(kind="knowledge", text=f"knowledge base regimen {self.regimen_id}: {self.regimen}",
                          resource=f"knowledge:{self.regimen_id}")]
        for drug in self.drugs if self.egfr is not None else []:
            at = (
                f"{drug.at_egfr} ({drug.band}; {drug.source})" if drug.at_egfr else f"usual dose {drug.usual}"
            )
            lines.append(Evidence(kind="knowledge", text=f"knowledge base: {drug.drug} at eGFR {self.egfr:g} "
                                  f"mL/min: {at}", resource=f"knowledge:{self.regimen_id}"))
        return lines


class RegimenDosingTool(MedTool):
    name: str = "regimen_dosing"
    description: str = (
        "A knowledge-base regimen's drugs with doses and, given a kidney function (mL/min), each drug's renal dose "
        "band and its source."
    )
    args_schema: type[BaseModel] = RegimenDosingArgs
    result_model = RegimenDosingResult

    def execute(self, args: RegimenDosingArgs) -> RegimenDosingResult:
        knowledge = knowledge_base()
        regimen = knowledge.regimen(args.regimen_id)  # KeyError names an unknown id
        drugs = []
        for drug in regimen.drugs():
            usual = f"{drug.name} {drug.per_kg.text() if drug.per_kg else drug.dose} {drug.route} {drug.frequency}"
            band = knowledge.renal_adjustment(drug.name, args.egfr) if args.egfr is not None else None
            at_egfr = None
            if band is not None:
                at_egfr = "avoid" if band.avoid else (band.dose or "see note")
                at_egfr += f"; {band.note}" if band.note else ""
            drugs.append(DrugDose(
                drug=drug.name, usual=usual.strip(), at_egfr=at_egfr,
                band=f"{MEASURES.get(band.measure, band.measure)} {band.interval} mL/min" if band else None,
                source=band.source.short() if band else None,
            ))
        sources = "; ".join(dict.fromkeys(s.short() for s in regimen.sources))
        summary = f"{regimen.id}: {len(drugs)} drug(s)" + (
            f" dosed for eGFR {args.egfr:g} mL/min" if args.egfr else ""
        )
        return RegimenDosingResult(summary=summary, regimen_id=regimen.id, regimen=regimen.summary, egfr=args.egfr,
                                   drugs=drugs, source=sources)
