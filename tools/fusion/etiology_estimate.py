"""etiology_estimate: calibrated probabilities of normal / bacterial / viral / COVID-19 / fungal / other for a chest
radiograph and, when a patient is given, the record's history, age, vitals and labs; or an abstention.

A paediatric estimate comes only from the paediatric classifier and an adult one only from the adult head of the
shared latent space; the result names the model, the modalities it used and the model card's validated figures, so
the differential can weigh it rightly."""

from __future__ import annotations

from pydantic import BaseModel

from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fusion.common import FusionArgs, RecordRead, case_view, service

CLASS_NAMES = {"covid-19": "COVID-19"}


class EtiologyEstimateResult(ToolResult):
    population: str | None
    probabilities: dict[str, float | None]  # every class; None: the model has no output for it
    modalities: list[str]
    abstained: bool
    reason: str | None = None
    model: str
    validation: str
    nearest_similarity: float | None = None
    record: RecordRead
    image: str | None = None

    def evidence(self) -> list[Evidence]:
        source = self.image or (self.record.references[0] if self.record.references else None)
        if self.abstained:
            text = f"Etiology estimate abstained ({self.reason})"
        else:
            ranked = sorted(((p, c) for c, p in self.probabilities.items() if p is not None), reverse=True)
            shown = ", ".join(f"{CLASS_NAMES.get(c, c)} {p:.2f}" for p, c in ranked)
            text = (
                f"Etiology estimate ({self.population} model, from {' + '.join(self.modalities)}): {shown}. "
                f"Validated accuracy: {self.validation}"
            )
        return [Evidence(kind="estimate", text=text, resource=source)]


class EtiologyEstimateTool(MedTool):
    name: str = "etiology_estimate"
    description: str = (
        "Calibrated probabilities of normal / bacterial / viral / COVID-19 / fungal / other for a chest radiograph "
        "and the patient's record (history, age, vitals, labs), with the model's validated accuracy; abstains when "
        "the evidence is insufficient or the case is unlike its training data."
    )
    args_schema: type[BaseModel] = FusionArgs
    result_model = EtiologyEstimateResult
    stage = Stage.IMAGE
    missing = "etiology estimate"
    timeout_s: float | None = 120.0  # the first call loads two encoders

    def execute(self, args: FusionArgs) -> EtiologyEstimateResult:
        from medconsult.fusion.service import (
            ESTIMATE_CLASSES,  # torch and the library load with the first call
        )

        view, record = case_view(self.context, args)
        estimate = service(self.context).estimate(view)
        if estimate.abstained:
            summary = f"abstained: {estimate.reason}"
        else:
            best = max((p, c) for c, p in estimate.probabilities.items() if p is not None)
            summary = f"{estimate.population}: most likely {CLASS_NAMES.get(best[1], best[1])} ({best[0]:.2f})"
        return EtiologyEstimateResult(
            summary=summary, population=estimate.population,
            probabilities={c: estimate.probabilities.get(c) for c in ESTIMATE_CLASSES},
            modalities=estimate.modalities, abstained=estimate.abstained, reason=estimate.reason,
            model=estimate.model, validation=estimate.validation, nearest_similarity=estimate.nearest_similarity,
            record=record, image=str(view.image) if view.image else None,
        )
