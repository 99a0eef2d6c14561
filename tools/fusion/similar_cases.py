"""similar_cases: the k reference cases nearest to this case in the shared latent space (never the same patient),
with similarity, label, population and short findings, and the label vote among them."""

from __future__ import annotations

from pydantic import BaseModel, Field

from medconsult.tools.base import Evidence, MedTool, Stage, ToolResult
from medconsult.tools.fusion.common import FusionArgs, RecordRead, case_view, service


class SimilarCasesArgs(FusionArgs):
    k: int = Field(5, ge=1, le=20, description="how many similar cases")


class SimilarCase(BaseModel):
    case_id: str
    similarity: float
    label: str
    population: str
    source: str
    finding: str


class SimilarCasesResult(ToolResult):
    cases: list[SimilarCase]
    vote: dict[str, int]
    population: str | None
    modalities: list[str]
    excluded_same_image: int = 0
    library: str
    record: RecordRead
    image: str | None = None

    def evidence(self) -> list[Evidence]:
        if not self.cases:
            return [Evidence(kind="estimate", text="No similar reference case found", resource=self.library)]
        votes = ", ".join(f"{label} {n}" for label, n in self.vote.items())
        low, high = self.cases[-1].similarity, self.cases[0].similarity
        text = (
            f"{len(self.cases)} most similar reference cases ({self.population or 'any'} population, from "
            f"{' + '.join(self.modalities)}; similarity {low:.2f}-{high:.2f}): {votes}"
        )
        return [Evidence(kind="estimate", text=text, resource=self.library)]


class SimilarCasesTool(MedTool):
    name: str = "similar_cases"
    description: str = (
        "The most similar labelled reference cases to a chest radiograph and the patient's record, by the shared "
        "latent space, never the same patient: similarity, label, population, findings, and the label vote."
    )
    args_schema: type[BaseModel] = SimilarCasesArgs
    result_model = SimilarCasesResult
    stage = Stage.IMAGE
    missing = "similar cases"
    timeout_s: float | None = 120.0

    def execute(self, args: SimilarCasesArgs) -> SimilarCasesResult:
        view, record = case_view(self.context, args)
        fusion = service(self.context)
        found = fusion.similar(view, args.k)
        top = ", ".join(f"{label} {n}" for label, n in found.vote.items()) or "none"
        return SimilarCasesResult(
            summary=f"{len(found.neighbours)} similar case(s): {top}",
            cases=[SimilarCase(case_id=n.case_id, similarity=n.similarity, label=n.label, population=n.population,
                               source=n.source, finding=n.finding) for n in found.neighbours],
            vote=found.vote, population=found.population, modalities=found.modalities,
            excluded_same_image=found.excluded_same_image, library=found.library, record=record,
            image=str(view.image) if view.image else None,
        )
