"""Real clinical text the planted-instruction detector must leave alone: its false positives are measured on it.

Three sources from the shared data folder, each optional (the project runs without any of them):
- `synthea`: every free-text value of the Synthea R4 bundles a record tool can show (code texts and displays,
  reaction texts, notes, report conclusions and attachments). These bundles hold no DocumentReference and their
  DiagnosticReports are lab panels without a conclusion, so this is short text: names of conditions, drugs, tests;
- `iu_reports`: the 3,955 Indiana University chest radiograph reports (indication, comparison, findings,
  impression), read from the unmodified archive (CC BY-NC-ND: parsed at run time, never copied);
- `ieee8023_notes`: the clinical notes of the ieee8023 case reports (CC BY-NC-SA).
"""

from __future__ import annotations

import base64
import binascii
import csv
import json
import tarfile
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from medconsult.safety.planted import instruction_like_passages

_TEXT_KEYS = {"text", "display", "conclusion", "description", "div"}


class FalsePositives(BaseModel):
    source: str
    texts: int  # distinct texts scanned
    flagged: int
    examples: list[str]  # the first flagged passages, to read


# The evidence kind each resource's text becomes (the detector is stricter in descriptive fields); others: none.
_KINDS = {"Condition": "condition", "AllergyIntolerance": "allergy", "Observation": "lab", "DiagnosticReport": "report",
          "DocumentReference": "note"}

Text = tuple[str | None, str]  # (evidence kind, text)


def synthea_texts(data_dir: Path) -> Iterator[Text]:
    for path in sorted((data_dir / "fhir_synthea_r4" / "bundles").glob("*.json")):
        for entry in json.loads(path.read_text()).get("entry", []):
            resource = entry.get("resource", {})
            kind = _KINDS.get(resource.get("resourceType"))
            yield from ((kind, text) for text in _free_text(resource))


def iu_report_texts(data_dir: Path) -> Iterator[Text]:
    archive = data_dir / "reports_iu_openi" / "NLMCXR_reports.tgz"
    if not archive.is_file():
        return
    with tarfile.open(archive) as tar:
        for member in tar:
            if not member.name.endswith(".xml"):
                continue
            root = ElementTree.parse(tar.extractfile(member)).getroot()
            yield from (("report", n.text) for n in root.iter("AbstractText") if n.text and n.text.strip())


def ieee8023_note_texts(data_dir: Path) -> Iterator[Text]:
    table = data_dir / "cxr_ieee8023_ncsa" / "metadata.csv"
    if not table.is_file():
        return
    with table.open(newline="") as rows:
        for row in csv.DictReader(rows):
            yield from (("note", row[c]) for c in ("clinical_notes", "other_notes") if row.get(c, "").strip())


SOURCES: dict[str, Callable[[Path], Iterator[Text]]] = {
    "synthea": synthea_texts, "iu_reports": iu_report_texts, "ieee8023_notes": ieee8023_note_texts,
}


def false_positives(data_dir: Path, examples: int = 10) -> list[FalsePositives]:
    """Per source: how many distinct texts the detector flags, each read as the field it comes from (the goal is
    none)."""
    counts = []
    for name, read in SOURCES.items():
        texts = set(read(data_dir))
        flagged = [(text, instruction_like_passages(text, kind)) for kind, text in sorted(texts, key=str)]
        flagged = [(text, found) for text, found in flagged if found]
        counts.append(FalsePositives(source=name, texts=len(texts), flagged=len(flagged),
                                     examples=["; ".join(found) for _, found in flagged[:examples]]))
    return counts


def _free_text(node: Any) -> Iterator[str]:
    """String values under the keys that carry free text, and decoded text attachments, anywhere in a resource."""
    if isinstance(node, dict):
        if str(node.get("contentType", "")).startswith("text/") and node.get("data"):
            yield _decoded(node["data"])
        for key, value in node.items():
            if key in _TEXT_KEYS and isinstance(value, str):
                yield value
            else:
                yield from _free_text(value)
    elif isinstance(node, list):
        for item in node:
            yield from _free_text(item)


def _decoded(data: str) -> str:
    try:
        return base64.b64decode(data).decode("utf-8", errors="replace")
    except (binascii.Error, ValueError):
        return ""
