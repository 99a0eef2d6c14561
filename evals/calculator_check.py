"""Calculator check: eGFR (CKD-EPI 2021) and CURB-65 recomputed from the raw FHIR record and compared with what the
project's calculator tools returned for the same case.

The recomputation is deliberately independent of medconsult.clinical (its own codes, units, windows and formulas),
so that a slip in the project's reading of the record or in its arithmetic shows up as a disagreement instead of
being reproduced. It answers the same clinical question as the tools, so it uses the windows their descriptions
state: the latest value measured on or before the end of `as_of` (UTC), within 48 h for CURB-65 inputs and 7 days
for creatinine.

- eGFR, CKD-EPI 2021 without race (Inker LA et al., N Engl J Med 2021;385:1737-49):
  142 x min(Scr/k, 1)^a x max(Scr/k, 1)^-1.200 x 0.9938^age x 1.012 [female]; k 0.7 (F) / 0.9 (M),
  a -0.241 (F) / -0.302 (M); Scr in mg/dL, age in whole years.
- CURB-65 (Lim WS et al., Thorax 2003;58:377-82), one point each: confusion; urea > 7 mmol/L (or BUN > 19 mg/dL);
  respiratory rate >= 30 /min; systolic BP < 90 or diastolic BP <= 60 mmHg; age >= 65. Confusion counts only when
  coded (GCS < 15, or an active delirium / confusional-state Condition); every other input must be in the record,
  else the score is None.

Where the tool results come from: the trace (trace.jsonl) records only each tool's one-line summary, and
result.json none of them. A runner feeds `calculator_agreement` from the graph state's tool records
(`tool_results(outcome.state["tool_records"])` after `run_consult`), and must store them (for instance in
result.json under "calculators") to check a finished run later.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from medconsult.tools.calculators.curb65 import Curb65Tool
from medconsult.tools.calculators.egfr_ckd_epi_2021 import EgfrCkdEpi2021Tool

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
CURB65_WINDOW = timedelta(hours=48)
CREATININE_WINDOW = timedelta(days=7)

CREATININE = {"2160-0", "38483-4"}  # creatinine, mass/volume in serum or plasma / in blood
BUN = {"3094-0", "6299-2"}  # urea nitrogen, mass/volume in serum or plasma / in blood
UREA_MOLAR = {"22664-7"}  # urea, moles/volume in serum or plasma
RESPIRATORY_RATE = {"9279-1"}
SYSTOLIC = {"8480-6"}
DIASTOLIC = {"8462-4"}
GCS = {"9269-2"}
CONFUSION_SNOMED = {"2776000", "286933003", "419284004"}  # delirium, confusional state, altered mental status
UMOL_PER_MG_DL_CREATININE = 88.4  # 1 mg/dL creatinine = 88.4 umol/L
IGNORED_STATUS = {"entered-in-error", "cancelled"}

# tool name -> (the result field compared, tolerance): eGFR within 1 mL/min/1.73 m2, scores exact.
EGFR, CURB65 = EgfrCkdEpi2021Tool.tool_name(), Curb65Tool.tool_name()
CHECKS: dict[str, tuple[str, float]] = {EGFR: ("egfr", 1.0), CURB65: ("points", 0.0)}


@dataclass(frozen=True)
class Reading:
    code: str
    value: float
    unit: str | None
    when: datetime


# ---- formulas -----------------------------------------------------------------------------------------------


def ckd_epi_2021(creatinine_mg_dl: float, age: int, female: bool) -> float:
    """eGFR in mL/min/1.73 m2 by the race-free CKD-EPI 2021 creatinine equation."""
    kappa, alpha = (0.7, -0.241) if female else (0.9, -0.302)
    ratio = creatinine_mg_dl / kappa
    egfr = 142 * min(ratio, 1.0) ** alpha * max(ratio, 1.0) ** -1.200 * 0.9938**age
    return egfr * 1.012 if female else egfr


def curb65_points(
    confusion: bool,
    urea_high: bool | None,
    respiratory_rate: float | None,
    blood_pressure_low: bool | None,
    age: int | None,
) -> int | None:
    """CURB-65 when every criterion is known, else None (a partial score would hide the missing one)."""
    if urea_high is None or respiratory_rate is None or blood_pressure_low is None or age is None:
        return None
    return sum((confusion, urea_high, respiratory_rate >= 30, blood_pressure_low, age >= 65))


# ---- reading the record -------------------------------------------------------------------------------------


def reference_time(as_of: date) -> datetime:
    return datetime.combine(as_of, time(23, 59, 59), tzinfo=UTC)


def _instant(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _effective(observation: dict) -> datetime | None:
    period = observation.get("effectivePeriod") or {}
    for text in (observation.get("effectiveDateTime"), observation.get("effectiveInstant"), period.get("start"),
                 observation.get("issued")):
        if text:
            return _instant(text)
    return None


def _loinc_codes(concept: dict | None) -> set[str]:
    return {c.get("code") for c in (concept or {}).get("coding", []) if c.get("system") == LOINC}


def readings(observations: Iterable[dict], codes: set[str], at: datetime, window: timedelta) -> list[Reading]:
    """Numeric values of `codes` (on the Observation or any component) measured in the window, newest first."""
    found: list[Reading] = []
    for observation in observations:
        when = _effective(observation)
        if observation.get("status") in IGNORED_STATUS or when is None or not at - window <= when <= at:
            continue
        for holder in [observation, *observation.get("component", [])]:
            quantity = holder.get("valueQuantity") or {}
            if quantity.get("value") is None:
                continue
            value, unit = float(quantity["value"]), quantity.get("code") or quantity.get("unit")
            found += [Reading(c, value, unit, when) for c in _loinc_codes(holder.get("code")) & codes]
    return sorted(found, key=lambda r: r.when, reverse=True)


def _latest(observations: list[dict], codes: set[str], at: datetime, window: timedelta) -> Reading | None:
    found = readings(observations, codes, at, window)
    return found[0] if found else None


def creatinine_mg_dl(reading: Reading) -> float | None:
    if reading.unit in (None, "mg/dL"):
        return reading.value
    if reading.unit in ("umol/L", "µmol/L"):
        return reading.value / UMOL_PER_MG_DL_CREATININE
    return None  # an unknown unit is not guessed


def urea_high(reading: Reading | None) -> bool | None:
    """Urea > 7 mmol/L, or urea nitrogen > 19 mg/dL (the two forms of CURB-65's 'U')."""
    if reading is None:
        return None
    if reading.unit == "mmol/L":  # urea and urea nitrogen in moles are the same number of moles
        return reading.value > 7
    if reading.code in BUN and reading.unit in (None, "mg/dL"):
        return reading.value > 19
    return None


def blood_pressure_low(systolic: Reading | None, diastolic: Reading | None) -> bool | None:
    """SBP < 90 or DBP <= 60; known once either is low or both are present."""
    low = [systolic is not None and systolic.value < 90, diastolic is not None and diastolic.value <= 60]
    if any(low):
        return True
    return False if systolic is not None and diastolic is not None else None


def _age(patient: dict | None, on: date) -> int | None:
    if not patient or not patient.get("birthDate"):
        return None
    born = date.fromisoformat(patient["birthDate"][:10])
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _female(patient: dict | None) -> bool | None:
    gender = (patient or {}).get("gender")
    return {"female": True, "male": False}.get(gender)


def _active_at(condition: dict, at: datetime) -> bool:
    verification = {c.get("code") for c in (condition.get("verificationStatus") or {}).get("coding", [])}
    if verification & {"refuted", "entered-in-error"}:
        return False
    began = _instant(condition.get("onsetDateTime") or condition.get("recordedDate"))
    if began is not None and began > at:
        return False
    ended = _instant(condition.get("abatementDateTime"))
    if ended is not None:
        return ended > at
    status = {c.get("code") for c in (condition.get("clinicalStatus") or {}).get("coding", [])}
    return bool(status & {"active", "recurrence", "relapse"})


def coded_confusion(resources: dict[str, list[dict]], at: datetime) -> bool:
    gcs = _latest(resources.get("Observation", []), GCS, at, CURB65_WINDOW)
    if gcs is not None and gcs.value < 15:
        return True
    for condition in resources.get("Condition", []):
        codes = {
            c.get("code")
            for c in (condition.get("code") or {}).get("coding", [])
            if c.get("system") == SNOMED
        }
        if codes & CONFUSION_SNOMED and _active_at(condition, at):
            return True
    return False


# ---- recomputation and comparison ---------------------------------------------------------------------------


def recompute_calculators(resources: dict[str, list[dict]], as_of: date) -> dict[str, float | None]:
    """eGFR and CURB-65 of one patient's record (resources by type, FHIR JSON) as it stood at the end of `as_of`."""
    at = reference_time(as_of)
    patient = next(iter(resources.get("Patient", [])), None)
    age, female = _age(patient, as_of), _female(patient)
    egfr = recompute_egfr(resources.get("Observation", []), age, female, at)
    return {EGFR: None if egfr is None else round(egfr, 1), CURB65: recompute_curb65(resources, age, at)}


def recompute_egfr(
    observations: list[dict], age: int | None, female: bool | None, at: datetime
) -> float | None:
    creatinine = _latest(observations, CREATININE, at, CREATININE_WINDOW)
    scr = creatinine_mg_dl(creatinine) if creatinine else None
    if scr is None or scr <= 0 or age is None or age < 18 or female is None:  # the equation is for adults
        return None
    return ckd_epi_2021(scr, age, female)


def recompute_curb65(resources: dict[str, list[dict]], age: int | None, at: datetime) -> int | None:
    observations = resources.get("Observation", [])
    rr = _latest(observations, RESPIRATORY_RATE, at, CURB65_WINDOW)
    return curb65_points(
        coded_confusion(resources, at),
        urea_high(_latest(observations, BUN | UREA_MOLAR, at, CURB65_WINDOW)),
        rr.value if rr else None,
        blood_pressure_low(_latest(observations, SYSTOLIC, at, CURB65_WINDOW),
                           _latest(observations, DIASTOLIC, at, CURB65_WINDOW)),
        age,
    )


def calculator_agreement(recomputed: dict, tool_results: dict[str, dict]) -> list[dict]:
    """One row per checked calculator: both values, the difference, and `agree` (None when not comparable)."""
    rows = []
    for tool, (field, tolerance) in CHECKS.items():
        ours = recomputed.get(tool)
        result = tool_results.get(tool)
        theirs = (result or {}).get(field)
        row: dict[str, Any] = {"calculator": tool, "field": field, "recomputed": ours, "tool": theirs,
                               "tolerance": tolerance, "difference": None}
        if result is None:
            row |= {"agree": None, "note": "no result of the tool for this case"}
        elif ours is None:
            row |= {"agree": None, "note": "not recomputed: an input is missing from the record"}
        elif theirs is None:
            row |= {
                "agree": False,
                "note": "the tool computed no value although the record holds every input",
            }
        else:
            difference = float(theirs) - float(ours)
            agree = abs(difference) <= tolerance + 1e-9  # float noise only; scores have tolerance 0
            row |= {
                "difference": round(difference, 3),
                "agree": agree,
                "note": "" if agree else f"differs by {difference:+.3g} (tolerance {tolerance:g})",
            }
        rows.append(row)
    return rows


def bundle_resources(bundle: dict) -> dict[str, list[dict]]:
    """A Bundle's resources grouped by type (one patient's bundle: references need no resolving here)."""
    grouped: dict[str, list[dict]] = {}
    for entry in bundle.get("entry", []):
        resource = entry.get("resource") or {}
        if resource.get("resourceType"):
            grouped.setdefault(resource["resourceType"], []).append(resource)
    return grouped


def tool_results(records: Iterable[Any]) -> dict[str, dict]:
    """Successful results by tool name from the graph's ToolRecords (objects or their JSON dicts)."""
    results: dict[str, dict] = {}
    for record in records:
        tool, ok, result = (_field(record, key) for key in ("tool", "ok", "result"))
        if ok and result and tool in CHECKS:
            results[tool] = result
    return results


def _field(record: Any, key: str) -> Any:
    return record.get(key) if isinstance(record, dict) else getattr(record, key, None)
