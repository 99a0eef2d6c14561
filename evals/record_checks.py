"""Exact checks of record facts in what the agent wrote: numbers with their unit, named items, claims not to make.

A case's `label.checks` lists the expected answers, for instance

    {name: "latest serum creatinine", kind: number, expected: 1.3, unit: "mg/dL", tolerance: 0.05, near: [creatinine]}
    {name: "active medication", kind: text, expected: lisinopril, any_of: [Zestril, Prinivil]}
    {name: "no penicillin allergy", kind: absent, expected: "penicillin allergy", any_of: ["allergic to penicillin"]}

and `score_checks` decides each one from the text the model wrote (evals/measure.py `model_text`: its summary,
reasoning, differential and plan, never the tables the report template fills from the tool results),
deterministically:

- number: some number in the text lies within `tolerance` (absolute) of `expected` and is followed by the unit,
  with only blanks or Markdown (`**`, `|`) in between; numbers are read whole, so 11.3 or 1.35 are not 1.3, and
  1.30 is. The upper end of a range (the 1.3 of "0.7-1.3 mg/dL") is not a reported value. With `near`, one of
  those words must stand on the same line (labels and values share a row in tables and bullets).
- text: `expected` or one of `any_of` occurs, case-insensitively, on word boundaries (a plural s/es allowed).
- absent: none of those terms occurs affirmatively; an occurrence after a negation in its clause ("no", "not",
  "denies", "without"...) or followed by "none"/"not" is not a claim.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

CheckKind = Literal["number", "text", "absent"]


class Check(BaseModel):
    """One expected answer of a case (`label.checks` in the case file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(..., min_length=1)
    kind: CheckKind
    expected: float | str
    unit: str | None = Field(None, description="number: the UCUM unit the value must be written with")
    tolerance: float = Field(0.0, ge=0, description="number: absolute tolerance")
    any_of: list[str] = Field(default_factory=list, description="text/absent: synonyms, brand names")
    near: list[str] = Field(default_factory=list, description="number: one of these words on the same line")
    source: str | None = Field(
        None,
        description="where the answer comes from in the record (observation:<LOINC>, medication:<RxNorm>, "
        "allergy:<SNOMED>, no-allergy, allergy-absent:<term>, medication-absent:<term>, egfr-ckd-epi-2021); "
        "the suite's data test re-derives the answer from it",
    )

    @model_validator(mode="after")
    def _consistent(self) -> Check:
        if self.kind == "number":
            if isinstance(self.expected, str) or not self.unit:
                raise ValueError(f"{self.name}: a number check needs a numeric expected value and a unit")
        elif not isinstance(self.expected, str) or not self.expected.strip():
            raise ValueError(f"{self.name}: a {self.kind} check needs the expected term as text")
        return self

    def terms(self) -> list[str]:
        return [str(self.expected), *self.any_of]


class CheckResult(BaseModel):
    name: str
    kind: CheckKind
    expected: float | str
    passed: bool
    detail: str


# A whole number token: not part of an identifier (F21, 2160-0 is kept apart by the dash) or of a longer number.
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?(?!\.?\d)")
# "0.7-1.3": the 1.3 closes a range; a date's day before a dash ("09-29 - 1.3") opens none.
_RANGE_END = re.compile(r"(?<![\d-])\d+(?:\.\d+)?\s*[-–]\s*$")
_BETWEEN = re.compile(r"[\s*_`|]*")  # Markdown that may stand between a value and its unit
_NEGATION = re.compile(
    r"\b(?:no|not|none|denie[sd]|without|negative|never|nkda|absent|free of)\b", re.IGNORECASE
)
_NEGATED_AFTER = re.compile(r"^[\s*:\-–]*(?:none|no|not|absent|negative|denied)\b", re.IGNORECASE)
_CLAUSE_BREAK = re.compile(r"[.;!?\n|,()]|\b(?:but|except|however)\b", re.IGNORECASE)
_EPSILON = 1e-9  # 1.35 - 1.3 is 0.05000000000000004 in floating point


def score_checks(checks: Sequence[Mapping[str, Any] | Check], answer_text: str) -> list[CheckResult]:
    """Decide every check from the report text; invalid check definitions raise pydantic's ValidationError."""
    return [_score(c if isinstance(c, Check) else Check.model_validate(c), answer_text or "") for c in checks]


def _score(check: Check, text: str) -> CheckResult:
    if check.kind == "number":
        passed, detail = _number(check, text)
    elif check.kind == "text":
        passed, detail = _text(check, _plain(text))
    else:
        passed, detail = _absent(check, _plain(text))
    return CheckResult(
        name=check.name, kind=check.kind, expected=check.expected, passed=passed, detail=detail
    )


def _number(check: Check, text: str) -> tuple[bool, str]:
    unit = re.compile(_unit_pattern(check.unit or ""), re.IGNORECASE)
    expected = float(check.expected)
    seen: list[str] = []
    for match in _NUMBER.finditer(text):
        if _RANGE_END.search(text[max(0, match.start() - 30) : match.start()]):
            continue
        if not unit.match(text, _BETWEEN.match(text, match.end()).end()):
            continue
        if check.near and not _on_line(check.near, text, match.start()):
            continue
        seen.append(match.group())
        if abs(float(match.group()) - expected) <= check.tolerance + _EPSILON:
            return True, f"found {match.group()} {check.unit}"
    wanted = f"{expected:g}" + (f" ± {check.tolerance:g}" if check.tolerance else "") + f" {check.unit}"
    found = f"; found {', '.join(seen)} {check.unit}" if seen else f"; no value in {check.unit}"
    return False, f"expected {wanted}" + found + (f" near {'/'.join(check.near)}" if check.near else "")


def _text(check: Check, text: str) -> tuple[bool, str]:
    match = next((m for term in check.terms() for m in _term(term).finditer(text)), None)
    if match:
        return True, f"found {match.group()!r}"
    return False, f"none of {', '.join(check.terms())} in the text"


def _absent(check: Check, text: str) -> tuple[bool, str]:
    for term in check.terms():
        for match in _term(term).finditer(text):
            if not _negated(text, match.start(), match.end()):
                return False, f"claimed: {_excerpt(text, match.start(), match.end())!r}"
    return True, f"no affirmative mention of {', '.join(check.terms())}"


def _term(term: str) -> re.Pattern[str]:
    words = r"[\s-]+".join(re.escape(w) for w in term.split())
    return re.compile(rf"(?<![A-Za-z0-9]){words}(?:e?s)?(?![A-Za-z0-9])", re.IGNORECASE)


def _unit_pattern(unit: str) -> str:
    """A regex for a UCUM unit, verbatim or as reports write it: any case, blanks around "/", m2 as m², µ as u."""
    text = unit.replace("{1.73_m2}", "1.73 m2").replace("_", " ").replace("{", "").replace("}", "")
    parts: list[str] = []
    for index, char in enumerate(text):
        if char == " ":
            parts.append(r"\s*")
        elif char == "/":
            parts.append(r"\s*(?:/|per\s)\s*")
        elif char in "uµμ":
            parts.append("[uµμ]")
        elif char in "23" and index > 0 and text[index - 1] == "m":
            parts.append(f"(?:{char}|{'²' if char == '2' else '³'}|\\^{char})")
        else:
            parts.append(re.escape(char))
    return f"(?:{re.escape(unit)}|{''.join(parts)})" + r"(?![A-Za-z0-9/²³^])"


def _on_line(words: list[str], text: str, position: int) -> bool:
    start = text.rfind("\n", 0, position) + 1
    end = text.find("\n", position)
    line = _plain(text[start : end if end >= 0 else len(text)])
    return any(_term(word).search(line) for word in words)


def _negated(text: str, start: int, end: int) -> bool:
    before = _CLAUSE_BREAK.split(text[max(0, start - 80) : start])[-1]
    return bool(_NEGATION.search(before) or _NEGATED_AFTER.match(text[end : end + 20]))


def _plain(text: str) -> str:
    """Emphasis and code marks removed, so "**Allergies:** none" reads as "Allergies: none"."""
    return re.sub(r"[*`]", "", text)


def _excerpt(text: str, start: int, end: int) -> str:
    return " ".join(text[max(0, start - 40) : end + 40].split())
