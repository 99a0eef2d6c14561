"""A Hannover patient with several radiographs, end to end against the real FHIR and llama.cpp servers: the earlier
film is found through the record's ImagingStudy and the import's DICOM archive, the two are compared, and the
radiology draft (Findings, Comparison, Impression) passes the grounding check, cites both exams and is written back
in the preliminary DiagnosticReport."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from fhirclient.models.diagnosticreport import DiagnosticReport

from conftest import DATA_DIR, REPO
from medconsult.fhir.client import FhirGateway

pytestmark = pytest.mark.integration

CURRENT_DAY, PRIOR_DAY = "2020-03-13", "2020-03-10"  # hospital days 11 and 8 of the case's patient


def _medconsult(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(Path(sys.executable).parent / "medconsult"), *args], env={**os.environ, **env},
                          cwd=cwd, capture_output=True, text=True, timeout=900)


def _section(report: str, start: str, end: str) -> str:
    return report.split(start, 1)[1].split(end, 1)[0]


def test_follow_up_film_is_compared_with_the_last_one_and_drafted(fhir_server, llm_server, tmp_path: Path):
    base_url, model = llm_server
    archive = tmp_path / "cases"
    env = {"MEDCONSULT_FHIR_BASE_URL": fhir_server.local_fhir_url, "MEDCONSULT_LLM_BASE_URL": base_url,
           "MEDCONSULT_LLM_MODEL": model, "MEDCONSULT_STATE_DIR": str(tmp_path / "state"),
           "MEDCONSULT_DATA_DIR": str(DATA_DIR), "MEDCONSULT_IMAGE_ARCHIVE": json.dumps([str(archive)]),
           "MEDCONSULT_FHIR_WRITE_BACK": "true"}
    imported = _medconsult(["cases", "import", "hannover", "--source", str(DATA_DIR / "cxr_hannover_covid"),
                            "--out", str(archive)], env, tmp_path)
    assert imported.returncode == 0, imported.stderr[-3000:]
    out = tmp_path / "followup"
    result = _medconsult(["run", "--case", str(REPO / "cases" / "hannover-followup.yaml"), "--out", str(out),
                          "--auto-approve"], env, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    report = (out / "report.md").read_text()
    draft = _section(report, "## Radiology draft", "## Differential diagnosis")
    findings = _section(draft, "**Findings**", "**Comparison**")
    comparison = _section(draft, "**Comparison**", "**Impression**")
    impression = draft.split("**Impression**", 1)[1].split("![", 1)[0]
    for section in (findings, comparison, impression):
        assert re.search(r"^- .+ \[F\d+", section, re.MULTILINE), draft
    assert f"(with the film of {PRIOR_DAY} (ImagingStudy/" in comparison
    assert CURRENT_DAY in comparison and PRIOR_DAY in comparison  # both exams, by date
    # Every number and date of the draft passed the grounding check: none is among the unsupported statements.
    unsupported = report.split("## Statements not supported", 1)[1].split("\n## ", 1)[0] if (
        "## Statements not supported" in report) else ""
    assert "radiology_draft" not in unsupported
    overlay = re.search(r"!\[prior and current film[^\]]*\]\((comparison/comparison-[0-9a-f]+\.png)\)", draft)
    assert overlay and (out / overlay.group(1)).is_file()

    trace = [json.loads(line) for line in (out / "trace.jsonl").read_text().splitlines()]
    compared = [t for t in trace if t["kind"] == "tool" and t["name"] == "compare_radiographs"]
    assert len(compared) == 1 and compared[0]["error"] is None
    assert any(t["kind"] == "llm" and t["name"] == "radiology_draft" for t in trace)
    catalogue = report.split("## Patient record used")[1]
    assert re.search(rf"\| comparison \| Comparison of the current film of {CURRENT_DAY} with the prior film of "
                     rf"{PRIOR_DAY}, 3 days earlier: change score [+-]?[\d.]+ points", catalogue)

    written = re.search(r"Written to the FHIR server \(preliminary / draft\): `(DiagnosticReport/[0-9a-f-]+)`", report)
    assert written, report[:2000]
    resource = FhirGateway(fhir_server.local_fhir_url).read(DiagnosticReport, written.group(1).split("/")[1])
    assert resource.status == "preliminary" and resource.conclusion.startswith("Radiograph (preliminary): ")
    assert [ref.reference.split("/")[0] for ref in resource.imagingStudy] == ["ImagingStudy"]
    assert "## Radiology draft" in base64.b64decode(resource.presentedForm[0].data).decode()
