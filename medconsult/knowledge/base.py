"""Loading, validation and retrieval over the treatment knowledge base.

`load_knowledge()` reads regimens/_knowledge_base.yaml (the manifest) and one <key>.yaml per condition, validates
each against medconsult.knowledge.schema and then checks what no single file can: unique regimen ids and match
terms, inherited severity rules that exist, and one set of renal bands per drug. Any problem raises
`KnowledgeError` naming the file and the field.

Retrieval never decides for the physician: with unknown severity it returns every setting's regimens and says so.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import ValidationError

from medconsult.knowledge.schema import (
    SETTINGS_BY_ACUITY,
    Condition,
    Drug,
    Manifest,
    Population,
    Regimen,
    RenalAdjustment,
    Setting,
    Severity,
    SeverityRule,
)

ModelT = TypeVar("ModelT", Manifest, Condition)

DEFAULT_PATH = Path(__file__).parent / "regimens"
MANIFEST_FILE = "_knowledge_base.yaml"
POPULATIONS: tuple[Population, ...] = ("adult", "paediatric")


class KnowledgeError(ValueError):
    """A data file is missing, unreadable or invalid; the message names the file and the field."""


# ---- loading ------------------------------------------------------------------------------------------------


def load_knowledge(path: str | Path | None = None) -> KnowledgeBase:
    """Validate every file under `path` (default: the packaged regimens folder) and index them."""
    folder = Path(path) if path is not None else DEFAULT_PATH
    manifest = _parse(folder / MANIFEST_FILE, Manifest)
    files = sorted(f for f in folder.glob("*.yaml") if not f.name.startswith("_"))
    conditions: list[Condition] = []
    problems: list[str] = []
    for file in files:  # report every broken file at once, not just the first
        try:
            conditions.append(_load_condition(file))
        except KnowledgeError as error:
            problems.append(str(error))
    if problems:
        raise KnowledgeError("\n".join(problems))
    return KnowledgeBase(manifest, conditions)


@lru_cache(maxsize=1)
def knowledge_base() -> KnowledgeBase:
    """The packaged knowledge base, read and validated once per process: every reader shares this copy."""
    return load_knowledge()


def _load_condition(file: Path) -> Condition:
    condition = _parse(file, Condition)
    if condition.key != file.stem:
        raise KnowledgeError(
            f"{file.name}: key: {condition.key!r} does not match the file name {file.stem!r}"
        )
    return condition


def _parse(file: Path, model: type[ModelT]) -> ModelT:
    raw = _read_yaml(file)
    try:
        return model.model_validate(raw)
    except ValidationError as error:
        problems = "\n".join(f"  {_location(raw, e['loc'])}: {e['msg']}" for e in error.errors())
        raise KnowledgeError(f"{file.name}: {error.error_count()} invalid field(s)\n{problems}") from None


def _read_yaml(file: Path) -> dict[str, Any]:
    if not file.is_file():
        raise KnowledgeError(f"{file.name}: file not found in {file.parent}")
    try:
        raw = yaml.safe_load(file.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise KnowledgeError(f"{file.name}: not valid YAML: {error}") from None
    if not isinstance(raw, dict):
        raise KnowledgeError(f"{file.name}: the top level must be a mapping of fields")
    return raw


def _location(raw: Any, loc: Sequence[int | str]) -> str:
    """'regimens[2] (cap.ward.fluoroquinolone).components[0]...': list items are named by their id or key."""
    text, node = "", raw
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
        node = _child(node, part)
        label = (node.get("id") or node.get("key")) if isinstance(node, dict) else None
        if isinstance(part, int) and isinstance(label, str):
            text += f" ({label})"
    return text or "(file)"


def _child(node: Any, part: int | str) -> Any:
    if isinstance(node, list) and isinstance(part, int) and part < len(node):
        return node[part]
    if isinstance(node, dict):
        return node.get(part)
    return None


# ---- retrieval results --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SettingChoice:
    settings: tuple[Setting, ...]
    determined: bool  # False: severity unknown, every setting is offered
    reasons: tuple[str, ...]


class SelectedRegimen(Regimen):
    """A regimen as retrieved for one patient: the data plus why it was selected."""

    severity_determined: bool  # False: severity was unknown and regimens of every setting were returned
    selection_reason: str


def normalise_term(text: str) -> str:
    """Case, apostrophes, hyphens and spacing do not matter: "Legionnaires' Disease" == 'legionnaires disease'."""
    lowered = re.sub(r"['\u2019]", "", text.casefold())
    return re.sub(r"[\s\-\u2013\u2014_/,]+", " ", lowered).strip(" .")


def normalise_code(text: str) -> str:
    """'http://snomed.info/sct|233604007' or 'SNOMED:233604007' -> '233604007'; 'j18.9' -> 'J189'."""
    return re.split(r"[|:]", text)[-1].strip().upper().replace(".", "")


# ---- the knowledge base -------------------------------------------------------------------------------------


class KnowledgeBase:
    def __init__(self, manifest: Manifest, conditions: Sequence[Condition]) -> None:
        self.manifest = manifest
        self.conditions: dict[str, Condition] = {c.key: c for c in conditions}
        problems = _cross_file_problems(manifest, conditions)
        if problems:
            raise KnowledgeError("knowledge base is inconsistent:\n" + "\n".join(f"  {p}" for p in problems))
        self._terms = _index_terms(conditions)
        self._codes = _index_codes(conditions)
        self._renal = _index_renal(conditions)

    @property
    def version(self) -> str:
        return self.manifest.version

    def differential_name(self, key: str) -> str:
        """How a differential names the condition: by its cause where its name does not say it."""
        condition = self.condition(key)
        return condition.differential_name or condition.name

    def condition(self, key: str) -> Condition:
        if key not in self.conditions:
            raise KeyError(f"no condition {key!r}; known: {', '.join(sorted(self.conditions))}")
        return self.conditions[key]

    def regimen(self, regimen_id: str) -> Regimen:
        for condition in self.conditions.values():
            for regimen in condition.regimens:
                if regimen.id == regimen_id:
                    return regimen
        raise KeyError(f"no regimen {regimen_id!r}")

    def match_condition(self, text_or_code: str, population: Population = "adult") -> Condition | None:
        """By key, name, synonym, SNOMED CT or ICD-10 code, among the conditions of `population`; case, hyphens
        and code dots do not matter."""
        codes, terms = self._codes[population], self._terms[population]
        key = codes.get(normalise_code(text_or_code)) or terms.get(normalise_term(text_or_code))
        return self.conditions[key] if key else None

    def severity_rules(self, condition_key: str) -> list[SeverityRule]:
        condition = self.condition(condition_key)
        return (
            self.condition(condition.severity_rules_from).severity_rules
            if condition.severity_rules_from
            else condition.severity_rules
        )

    def settings_for(self, condition_key: str, severity: Severity | None) -> SettingChoice:
        """Settings of care the known severity points to; the most acute rule that fires decides."""
        if severity is None:
            return _undetermined("no severity given")
        fired = [rule for rule in self.severity_rules(condition_key) if rule.when.evaluate(severity) is True]
        if not fired:
            return _undetermined("no severity rule could be applied to what is known")
        top = max(_acuity(rule.settings) for rule in fired)
        deciding = [rule for rule in fired if _acuity(rule.settings) == top]
        settings = _ordered(s for rule in deciding for s in rule.settings)
        reasons = [_reason(rule) for rule in deciding]
        if len(settings) > 1 and "icu" in settings and self._icu_ruled_out(condition_key, severity):
            settings = tuple(s for s in settings if s != "icu")
            reasons.append("intensive-care criteria known not to be met -> icu removed")
        return SettingChoice(settings, True, tuple(reasons))

    def regimens_for(self, condition_key: str, severity: Severity | None = None) -> list[SelectedRegimen]:
        """Regimens for the settings the severity points to, less those whose own criteria are contradicted.

        Unknown severity (or no regimen left for the chosen settings) returns every regimen of the condition,
        each with severity_determined=False and the reason.
        """
        condition = self.condition(condition_key)
        choice = self.settings_for(condition_key, severity)
        if choice.determined:
            chosen = [r for r in condition.regimens if _fits(r, choice.settings, severity)]
            if chosen:
                reason = "; ".join(choice.reasons)
                return [_selected(r, True, reason) for r in chosen]
            choice = _undetermined(f"no regimen for {', '.join(choice.settings)} in {condition_key}")
        reason = f"severity undetermined ({'; '.join(choice.reasons)}): regimens for every setting"
        return [_selected(r, False, reason) for r in condition.regimens]

    def renal_adjustment(self, drug: str, egfr: float) -> RenalAdjustment | None:
        """The band containing `egfr` (mL/min; compared with the band's own measure, see `measure`).

        None: no band applies (usual dose) or the drug is not in the knowledge base (see `drug_names`).
        """
        bands = self._renal.get(normalise_term(drug), [])
        return next((band for band in bands if band.applies_to(egfr)), None)

    def drug_names(self) -> list[str]:
        """Every generic name used by any regimen, sorted."""
        return sorted({drug.name for drug in self._drugs()})

    def _drugs(self) -> Iterable[Drug]:
        for condition in self.conditions.values():
            for regimen in condition.regimens:
                yield from regimen.drugs()

    def _icu_ruled_out(self, condition_key: str, severity: Severity) -> bool:
        """A rule that points to intensive care alone, known not to hold, removes 'icu' from a wider choice."""
        icu_rules = [r for r in self.severity_rules(condition_key) if tuple(r.settings) == ("icu",)]
        return any(rule.when.evaluate(severity) is False for rule in icu_rules)


def _acuity(settings: Iterable[Setting]) -> int:
    return max(SETTINGS_BY_ACUITY.index(s) for s in settings)


def _ordered(settings: Iterable[Setting]) -> tuple[Setting, ...]:
    wanted = set(settings)
    return tuple(s for s in SETTINGS_BY_ACUITY if s in wanted)


def _undetermined(why: str) -> SettingChoice:
    return SettingChoice(SETTINGS_BY_ACUITY, False, (why,))


def _reason(rule: SeverityRule) -> str:
    return f"{rule.when.text} -> {' or '.join(rule.settings)} ({rule.sources[0].short()})"


def _fits(regimen: Regimen, settings: Sequence[Setting], severity: Severity | None) -> bool:
    in_setting = any(s in settings for s in regimen.settings)
    contradicted = severity is not None and regimen.severity.evaluate(severity) is False
    return in_setting and not contradicted


def _selected(regimen: Regimen, determined: bool, reason: str) -> SelectedRegimen:
    return SelectedRegimen.model_validate(
        {**regimen.model_dump(), "severity_determined": determined, "selection_reason": reason}
    )


# ---- cross-file checks and indexes --------------------------------------------------------------------------


def _cross_file_problems(manifest: Manifest, conditions: Sequence[Condition]) -> list[str]:
    return [
        *_manifest_problems(manifest, conditions),
        *_duplicate_regimen_ids(conditions),
        *_inheritance_problems(conditions),
        *_term_clashes(conditions),
        *_renal_conflicts(conditions),
    ]


def _manifest_problems(manifest: Manifest, conditions: Sequence[Condition]) -> list[str]:
    listed, present = set(manifest.conditions), {c.key for c in conditions}
    return [f"{MANIFEST_FILE}: conditions: {k!r} has no {k}.yaml" for k in sorted(listed - present)] + [
        f"{k}.yaml: not listed in {MANIFEST_FILE} conditions" for k in sorted(present - listed)
    ]


def _duplicate_regimen_ids(conditions: Sequence[Condition]) -> list[str]:
    seen: dict[str, str] = {}
    problems = []
    for condition in conditions:
        for regimen in condition.regimens:
            if regimen.id in seen:
                problems.append(
                    f"{condition.key}.yaml: regimen id {regimen.id!r} also in {seen[regimen.id]}.yaml"
                )
            seen.setdefault(regimen.id, condition.key)
    return problems


def _inheritance_problems(conditions: Sequence[Condition]) -> list[str]:
    by_key = {c.key: c for c in conditions}
    problems = []
    for condition in conditions:
        parent = by_key.get(condition.severity_rules_from or "")
        if condition.severity_rules_from and (parent is None or not parent.severity_rules):
            problems.append(
                f"{condition.key}.yaml: severity_rules_from: {condition.severity_rules_from!r} "
                "is not a condition with its own severity_rules"
            )
    return problems


def _match_entries(condition: Condition) -> tuple[list[str], list[str]]:
    named = [condition.key, condition.name, *condition.synonyms]
    if condition.differential_name:
        named.append(condition.differential_name)
    terms = [normalise_term(t) for t in named]
    codes = [normalise_code(c.code) for c in (*condition.snomed_ct, *condition.icd10)]
    return terms, codes


def _term_clashes(conditions: Sequence[Condition]) -> list[str]:
    """A term or code names one condition per population (a child's "pneumonia" is another entry's)."""
    owner: dict[tuple[str, str], str] = {}
    problems = []
    for condition in conditions:
        terms, codes = _match_entries(condition)
        for entry in {*terms, *codes}:
            key = (condition.population, entry)
            if owner.setdefault(key, condition.key) != condition.key:
                problems.append(f"{condition.key}.yaml: {entry!r} also matches {owner[key]}")
    return problems


def _renal_conflicts(conditions: Sequence[Condition]) -> list[str]:
    """The same drug must carry the same renal bands wherever it has any, so a lookup by name is unambiguous."""
    first: dict[str, tuple[str, list[RenalAdjustment]]] = {}
    problems = []
    for condition in conditions:
        for regimen in condition.regimens:
            for drug in regimen.drugs():
                if not drug.renal:
                    continue
                seen_in, bands = first.setdefault(drug.name, (regimen.id, drug.renal))
                if bands != drug.renal:
                    problems.append(f"{regimen.id}: {drug.name} renal bands differ from those in {seen_in}")
    return problems


def _index_terms(conditions: Sequence[Condition]) -> dict[str, dict[str, str]]:
    return {p: {t: c.key for c in conditions if c.population == p for t in _match_entries(c)[0]} for p in POPULATIONS}


def _index_codes(conditions: Sequence[Condition]) -> dict[str, dict[str, str]]:
    return {p: {t: c.key for c in conditions if c.population == p for t in _match_entries(c)[1]} for p in POPULATIONS}


def _index_renal(conditions: Sequence[Condition]) -> dict[str, list[RenalAdjustment]]:
    index: dict[str, list[RenalAdjustment]] = {}
    for condition in conditions:
        for regimen in condition.regimens:
            for drug in regimen.drugs():
                for name in drug.names():
                    if drug.renal:
                        index.setdefault(normalise_term(name), drug.renal)
    return index
