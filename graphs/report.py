"""report.md and report.html: the consult draft a physician reads, rendered from the graph state.

Record text and model output may be hostile (a note can carry `<script>`, a Markdown image of a local file, or a
line that forges a "Safety review" heading). Every value the template interpolates is therefore written as inert
text (`inert`): HTML characters as entities, Markdown link and image brackets escaped, one line, no leading block
marker. The HTML file inlines only images inside the run folder and forbids scripts with a Content-Security-Policy.
"""

from __future__ import annotations

import base64
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2
import markdown
from markupsafe import Markup

from medconsult import __version__
from medconsult.agents.deterministic.regimens import describe
from medconsult.agents.deterministic.safety_review import body_weight, patient_population
from medconsult.inert import inert
from medconsult.knowledge import SelectedRegimen, knowledge_base
from medconsult.outcome import consult_failure
from medconsult.tools.base import Stage
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool

if TYPE_CHECKING:
    from medconsult.graphs.context import ConsultContext
    from medconsult.graphs.state import ConsultState

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("medconsult", "templates"),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
    finalize=inert,  # every {{ value }} of the Markdown template
)
# Model and record text must not break the Markdown tables it sits in (inert() then escapes the rest).
_environment.filters["cell"] = lambda text: str(text).replace("|", "\\|")
# The HTML shell: its own environment, autoescaped; only the converted body is passed as markup.
_html_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("medconsult", "templates"), undefined=jinja2.StrictUndefined, autoescape=True
)


def write_report(state: ConsultState, context: ConsultContext) -> Path:
    path = context.out_dir / "report.md"
    path.write_text(render_report(state, context))
    return path


def write_html(markdown_path: Path) -> Path:
    """report.html beside report.md: one self-contained file (images inlined) a physician can open or share."""
    body = markdown.markdown(markdown_path.read_text(), extensions=["tables", "sane_lists"])
    folder = markdown_path.parent.resolve()
    body = _IMAGE_SOURCE.sub(lambda m: m.group(1) + _data_uri(folder, m.group(2)) + '"', body)
    path = markdown_path.with_suffix(".html")
    html = _html_environment.get_template("report.html.j2").render(body=Markup(body), title=markdown_path.parent.name)
    path.write_text(html)
    return path


_IMAGE_SOURCE = re.compile(r'(<img[^>]*\bsrc=")([^"]*)"')


def _data_uri(folder: Path, source: str) -> str:
    """The PNG inlined, when `source` is a PNG file inside the run folder; otherwise nothing (an empty source): a
    path elsewhere ("/etc/hostname", "../../x") or a URL is never read nor fetched."""
    picture = (folder / source).resolve()
    if "://" in source or not picture.is_relative_to(folder) or not picture.is_file():
        return ""
    data = picture.read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return ""
    return "data:image/png;base64," + base64.b64encode(data).decode()


def render_report(state: ConsultState, context: ConsultContext) -> str:
    facts = state.get("facts") or []
    records = sorted(state.get("tool_records", []), key=lambda r: r.started_at)
    population = patient_population(records, state["case"].population)
    radiology = state.get("radiology_draft")
    return _environment.get_template("report.md.j2").render(
        case=state["case"],
        version=__version__,
        model=context.model_name,
        generated=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        patient_ref=f"Patient/{state['patient_id']}" if state.get("patient_id") else None,
        gaps=state.get("gaps", []),
        differential=state.get("differential"),
        plan=state.get("plan"),
        withheld=state.get("withheld_actions") or [],
        sign_off=state.get("sign_off"),
        findings=state.get("safety_findings") or [],
        reviewed_drugs=state.get("reviewed_drugs"),
        blocked=state.get("blocked_regimens") or [],
        stopped_for=[f for f in state.get("first_draft_findings") or [] if f.severity == "block"]
        if state.get("blocked_regimens") else [],
        redrafted=bool(state.get("plan_revisions")),
        grounding=state.get("grounding"),
        regimen=_regimen(state.get("chosen_regimen"), body_weight(records).get("weight_kg")),
        codes=_diagnosis_codes(state.get("differential"), population),
        kb_version=knowledge_base().version,
        written=state.get("written_resources") or [],
        facts=facts,
        facts_by_id={f.id: f for f in facts},
        records=records,
        images=_images(records, context.out_dir),
        radiology=radiology,
        radiology_overlays=[os.path.relpath(p, context.out_dir) for p in (radiology.overlays if radiology else [])],
        scores=[(r, _score_sources(r)) for r in records if r.stage == Stage.SCORES],
        counts=_trace_counts(context.tracer.events),
        failure=consult_failure(state, context.tracer.events),
    )


def _images(records: list, out_dir: Path) -> list[dict]:
    """Each loaded image with its lung overlay when segmentation succeeded, else its plain preview."""
    overlays = {r.args["image"]: r.result for r in records if r.tool == SegmentLungsTool.tool_name() and r.ok}
    images = []
    for record in records:
        if record.tool == LoadImageTool.tool_name() and record.ok:
            segmentation = overlays.get(record.args["path"])
            picture = Path(segmentation["overlay_png"] if segmentation else record.result["preview_png"])
            images.append(
                {
                    "name": Path(record.result["path"]).name,
                    "preview": os.path.relpath(picture, out_dir),
                    "summary": record.result["summary"]
                    + (f"; {segmentation['summary']}" if segmentation else ""),
                }
            )
    return images


def _regimen(chosen: dict | None, weight_kg: float | None = None) -> dict | None:
    if not chosen:
        return None
    regimen = SelectedRegimen.model_validate(chosen)
    return {"id": regimen.id, "what": describe(regimen, weight_kg), "monitoring": regimen.monitoring,
            "de_escalation": regimen.de_escalation, "advice": regimen.advice, "verify": regimen.verify}


def _diagnosis_codes(differential, population: str = "adult") -> dict[str, str]:  # Differential | None
    """ICD-10 / SNOMED CT of each diagnosis the knowledge base recognises (the model writes no codes)."""
    codes = {}
    for diagnosis in differential.diagnoses if differential else []:
        condition = knowledge_base().match_condition(diagnosis.diagnosis, population)
        if condition is not None:
            coded = [f"ICD-10 {c.code}" for c in condition.icd10[:1]]
            coded += [f"SNOMED CT {c.code}" for c in condition.snomed_ct[:1]]
            codes[diagnosis.diagnosis] = f"{condition.name}: {', '.join(coded)}"
    return codes


def _score_sources(record) -> str:  # a ToolRecord
    """Where a calculator's thresholds come from: its own source, or each marker statement's."""
    if not record.ok or not record.result:
        return ""
    sources = [record.result.get("source")] + [s.get("source") for s in record.result.get("statements", [])]
    return "; ".join(dict.fromkeys(s for s in sources if s))


def _trace_counts(events: list[dict]) -> dict[str, int]:
    llm = [e for e in events if e["kind"] == "llm"]
    return {
        "tool": sum(e["kind"] == "tool" for e in events),
        "llm": len(llm),
        "prompt_tokens": sum(e.get("prompt_tokens") or 0 for e in llm),
        "completion_tokens": sum(e.get("completion_tokens") or 0 for e in llm),
    }
