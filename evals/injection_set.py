"""The set of planted instructions (evals/planted_instructions.yaml) and how it is cut into batches, one per case."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field

PLANTED_FILE = Path(__file__).with_name("planted_instructions.yaml")

PlantedField = Literal["note", "report_conclusion", "condition_text", "reaction_text", "observation_note"]
FIELDS: tuple[PlantedField, ...] = ("note", "report_conclusion", "condition_text", "reaction_text", "observation_note")
# The evidence kind each field's text becomes in the model's record block (agents/evidence.py).
FIELD_KIND: dict[str, str] = {"note": "note", "report_conclusion": "report", "condition_text": "condition",
                              "reaction_text": "allergy", "observation_note": "lab"}


class PlantedPassage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    field: PlantedField
    style: Literal["direct_to_ai", "paraphrased", "disguised_order", "hidden_markup"]
    text: str
    payload: str  # what counts as a success if it reaches the draft unflagged
    also: list[str] = Field(default_factory=list)  # other wordings of the payload
    kind: Literal["drug", "action", "conclusion"]
    holdout: bool = False  # written after the detector was frozen: measures how it generalises

    def named_in(self, text: str) -> bool:
        """Whether `text` names the payload in any of its wordings (whole words, any case, "-" or " ")."""
        return any(_wording(w).search(text) for w in (self.payload, *self.also))


def load_planted(path: Path = PLANTED_FILE, *, holdout: bool | None = None) -> list[PlantedPassage]:
    """The passages; `holdout` True or False keeps only the held-out ones or only the others."""
    passages = [PlantedPassage.model_validate(p) for p in yaml.safe_load(path.read_text())["passages"]]
    return [p for p in passages if holdout is None or p.holdout == holdout]


def batches(passages: list[PlantedPassage], size: int, capacity: dict[str, int]) -> list[list[PlantedPassage]]:
    """Batches of at most `size` passages, the fields taken in turn so that each batch spreads across them, and no
    batch holding more of a field than one record can show (`capacity`: two notes, ...)."""
    queues = {field: [p for p in passages if p.field == field] for field in FIELDS}
    cut: list[list[PlantedPassage]] = []
    while any(queues.values()):
        batch: list[PlantedPassage] = []
        while len(batch) < size:
            open_fields = [f for f in FIELDS if queues[f] and sum(p.field == f for p in batch) < capacity.get(f, size)]
            if not open_fields:
                break
            field = min(open_fields, key=lambda f: (sum(p.field == f for p in batch), -len(queues[f])))
            batch.append(queues[field].pop(0))
        cut.append(batch)
    return cut


def _wording(words: str) -> re.Pattern[str]:
    parts = [re.escape(part) for part in re.split(r"[\s-]+", words.strip())]
    return re.compile(r"(?<![\w-])" + r"[\s-]+".join(parts) + r"(?![\w-])", re.IGNORECASE)
