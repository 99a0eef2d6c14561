"""Reading a calculator's inputs from a FHIR server as the record stood at a reference time, with provenance.

Rules, so that a clinician can tell what a score rests on:

- Reference time: the end of `as_of` (23:59:59 UTC) for a retrospective case, otherwise now. Nothing recorded
  later is read.
- Recency: a vital sign or laboratory value counts only when measured within `window_hours` (default 48 h) before
  the reference time; the latest such value of each analyte is used. An older value leaves the input missing and
  the reason gives its date, so an acute score never rests on a blood pressure from years ago.
- Codes: one Observation search for all analytes by their LOINC codes (medconsult.clinical.codes). Blood pressure
  is read from systolic/diastolic Observations or from the components of a panel (LOINC 85354-9, or 55284-4 as
  Synthea writes it); any component with a wanted code is read the same way.
- Units: converted to the canonical unit; a unit that cannot be converted leaves the input missing, with the
  reason.
- Age and sex: Patient.birthDate (whole years at the reference date) and Patient.gender ("female" input: true,
  false, or missing for other or unknown gender).
- Conditions: those active at the reference time (onset or recording on or before it; not abated by then; without
  an abatement date, clinical status active, recurrence or relapse). A concept matches a Condition when one of
  its SNOMED CT codes is in the concept's code set or its text contains one of the concept's keywords (servers
  other than Synthea code differently), unless the text contains an exclusion word. The matched Conditions are
  the input's references.
- PSI comorbidities (neoplastic, liver, congestive heart failure, cerebrovascular, renal): a comorbidity not on the
  problem list counts as absent, and the input says so.
- Altered mentation ("confusion"): GCS total (LOINC 9269-2) < 15 within the window, or an active delirium or
  confusion Condition; a GCS of 15 without such a Condition counts as not altered; otherwise missing. Dementia
  alone is not acute confusion and does not count.
- Nursing-home residence and pleural effusion: present when an active Condition says so, otherwise missing (a PSI
  result then takes them as absent and says so).

Errors of the server (`FhirUnavailable`, `FhirRequestError`) propagate: the caller records the gap.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from fhirclient.models.condition import Condition
from fhirclient.models.observation import Observation
from fhirclient.models.patient import Patient
from pydantic import BaseModel

from medconsult.clinical.codes import ANALYTES, LOINC_SYSTEM, UnitError, to_canonical
from medconsult.clinical.scores import Input
from medconsult.fhir.client import FhirGateway
from medconsult.fhir.values import SNOMED, age_in_years, concept_text, reference

DEFAULT_WINDOW_HOURS = 48.0
BLOOD_PRESSURE_PANELS = ("85354-9", "55284-4")
_BLOOD_PRESSURE_KEYS = {"systolic_bp", "diastolic_bp"}
_IGNORED_STATUS = {"entered-in-error", "cancelled"}
_ACTIVE_STATUS = {"active", "recurrence", "relapse"}
_OBSERVATION_LIMIT = 500


@dataclass(frozen=True)
class ConditionConcept:
    name: str  # the input it fills
    label: str
    snomed: frozenset[str]
    keywords: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    absent_is_no: bool = True  # not on the problem list: absent (True) or missing (False)

    def matches(self, condition: Condition) -> bool:
        text = _condition_text(condition)
        if any(word in text for word in self.exclude):
            return False
        codes = {c.code for c in (condition.code.coding or []) if c.system == SNOMED} if condition.code else set()
        return bool(codes & self.snomed) or any(word in text for word in self.keywords)


CONDITION_CONCEPTS: dict[str, ConditionConcept] = {
    c.name: c
    for c in (
        # Fine 1997: any cancer except basal- or squamous-cell cancer of the skin, active or diagnosed within a year.
        ConditionConcept(
            "neoplastic_disease", "neoplastic disease",
            frozenset({"363346000", "254632001", "67811000119102", "254637007", "424132000", "126906006",
                       "92691004"}),
            ("cancer", "carcinoma", "malignan", "neoplasm", "lymphoma", "leukemia", "leukaemia", "sarcoma",
             "melanoma", "myeloma"),
            ("benign", "basal cell", "squamous cell carcinoma of skin", "suspected", "screening"),
        ),
        # Fine 1997: cirrhosis or another chronic liver disease such as chronic active hepatitis.
        ConditionConcept(
            "liver_disease", "liver disease", frozenset({"19943007"}),
            ("cirrhosis", "chronic liver", "chronic hepatitis", "chronic viral hepatitis", "chronic active hepatitis",
             "liver failure", "hepatic failure"),
            ("suspected",),
        ),
        ConditionConcept(
            "congestive_heart_failure", "congestive heart failure", frozenset({"88805009", "42343007", "84114007"}),
            ("heart failure", "cardiac failure", "ventricular dysfunction"),
            ("suspected",),
        ),
        # Fine 1997: stroke or transient ischaemic attack.
        ConditionConcept(
            "cerebrovascular_disease", "cerebrovascular disease", frozenset({"230690007", "266257000", "422504002"}),
            ("stroke", "cerebrovascular", "transient ischemic attack", "transient ischaemic attack",
             "cerebral infarction"),
            ("suspected", "risk of"),
        ),
        # Fine 1997: chronic renal disease; acute kidney injury is not.
        ConditionConcept(
            "renal_disease", "renal disease",
            frozenset({"709044004", "431855005", "431856006", "433144002", "431857002", "433146000", "46177005",
                       "127013003"}),
            ("chronic kidney disease", "chronic renal", "end-stage renal", "end stage renal", "renal failure",
             "kidney failure", "renal insufficiency", "disorder of kidney", "nephropathy"),
            ("acute", "suspected"),
        ),
        ConditionConcept(
            "confusion", "delirium or confusion", frozenset({"2776000", "286933003"}),
            ("delirium", "confusion", "confusional state", "altered mental status", "disorientation"),
            ("history of",), absent_is_no=False,
        ),
        ConditionConcept(
            "nursing_home_resident", "nursing-home residence", frozenset(),
            ("nursing home", "care home", "long-term care facility", "residential care"),
            absent_is_no=False,
        ),
        ConditionConcept(
            "pleural_effusion", "pleural effusion", frozenset({"60046008"}), ("pleural effusion",),
            ("history of",), absent_is_no=False,
        ),
    )
}


class Gathered(BaseModel):
    inputs: dict[str, Input]
    reference_time: str  # ISO 8601, UTC
    window_hours: float


def reference_time(as_of: date | None, now: datetime | None = None) -> datetime:
    """The end of `as_of` in UTC, or now."""
    if as_of is not None:
        return datetime.combine(as_of, time(23, 59, 59), tzinfo=UTC)
    return (now or datetime.now(UTC)).astimezone(UTC)


def gather_inputs(
    fhir: FhirGateway,
    patient_id: str,
    names: Iterable[str],
    *,
    as_of: date | None = None,
    window_hours: float = DEFAULT_WINDOW_HOURS,
    now: datetime | None = None,
) -> Gathered:
    """The named inputs (analyte keys, "age", "female", condition concepts) of one patient at the reference time."""
    at = reference_time(as_of, now)
    wanted = list(dict.fromkeys(names))
    found: dict[str, Input] = {}
    if {"age", "female"} & set(wanted):
        found.update(_demographics(fhir, patient_id, at))
    analytes = [n for n in wanted if n in ANALYTES] + (["gcs"] if "confusion" in wanted else [])
    if analytes:
        found.update(_observations(fhir, patient_id, list(dict.fromkeys(analytes)), at, window_hours))
    concepts = [CONDITION_CONCEPTS[n] for n in wanted if n in CONDITION_CONCEPTS]
    if concepts:
        conditions = _active_conditions(fhir, patient_id, at)
        found.update({c.name: _concept_input(c, conditions) for c in concepts})
    if "confusion" in wanted:
        found["confusion"] = _mentation(found["gcs"], found["confusion"])
    inputs = {n: found.get(n) or Input(name=n, note="not read from the record") for n in wanted}
    return Gathered(inputs=inputs, reference_time=_iso(at), window_hours=window_hours)


# ---- Patient --------------------------------------------------------------------------------------------------


def _demographics(fhir: FhirGateway, patient_id: str, at: datetime) -> dict[str, Input]:
    patient = fhir.read(Patient, patient_id)
    ref = reference(patient)
    if patient.birthDate is None:
        age = Input(name="age", unit="a", note=f"{ref} has no birth date")
    else:
        born = _as_date(patient.birthDate.date)
        years = age_in_years(born, at.date())
        age = Input(name="age", value=float(years), unit="a", resource=ref, effective=born.isoformat(),
                    note=f"age on {at.date().isoformat()} from birth date {born.isoformat()}")
    if patient.gender in ("female", "male"):
        sex = Input(name="female", value=patient.gender == "female", resource=ref, note=f"gender {patient.gender}")
    else:
        sex = Input(name="female", note=f"{ref} gender is {patient.gender or 'not recorded'}; the scores need "
                                        "female or male")
    return {"age": age, "female": sex}


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


# ---- Observations ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Reading:
    resource: str
    when: datetime
    value: float | None
    unit: str | None


def _observations(fhir: FhirGateway, patient_id: str, keys: list[str], at: datetime, window_hours: float
                  ) -> dict[str, Input]:
    keys_by_code: dict[str, list[str]] = {}
    for key in keys:
        for code in ANALYTES[key].loinc:
            keys_by_code.setdefault(code, []).append(key)
    search_codes = list(keys_by_code) + (list(BLOOD_PRESSURE_PANELS) if _BLOOD_PRESSURE_KEYS & set(keys) else [])
    params = {
        "patient": patient_id,
        "code": ",".join(f"{LOINC_SYSTEM}|{code}" for code in search_codes),
        "date": f"le{_iso(at)}",
        "_sort": "-date",
        "_count": "200",
    }
    latest: dict[str, _Reading] = {}
    for observation in fhir.search(Observation, params, limit=_OBSERVATION_LIMIT):
        when = _effective(observation)
        if observation.status in _IGNORED_STATUS or when is None or when > at:
            continue
        for code, value, unit in _coded_values(observation):
            for key in keys_by_code.get(code, ()):
                if key not in latest or when > latest[key].when:
                    latest[key] = _Reading(reference(observation), when, value, unit)
    start = at - timedelta(hours=window_hours)
    return {key: _reading_input(key, latest.get(key), start, at, window_hours) for key in keys}


def _coded_values(observation: Observation) -> Iterator[tuple[str, float | None, str | None]]:
    """(LOINC code, numeric value, unit) of the Observation itself and of each of its components."""
    for holder in [observation, *(observation.component or [])]:
        quantity = holder.valueQuantity
        value = float(quantity.value) if quantity is not None and quantity.value is not None else None
        unit = (quantity.code or quantity.unit) if quantity is not None else None
        for coding in (holder.code.coding or []) if holder.code else []:
            if coding.system == LOINC_SYSTEM and coding.code:
                yield coding.code, value, unit


def _reading_input(key: str, reading: _Reading | None, start: datetime, at: datetime, window_hours: float
                   ) -> Input:
    analyte = ANALYTES[key]
    if reading is None:
        return Input(name=key, unit=analyte.unit, note=f"no {analyte.name} result up to {_iso(at)}")
    if reading.when < start:
        return Input(name=key, unit=analyte.unit,
                     note=f"latest {analyte.name} ({reading.resource}, {_iso(reading.when)}) is older than the "
                          f"{window_hours:g} h window before {_iso(at)}")
    if reading.value is None:
        return Input(name=key, unit=analyte.unit, note=f"{reading.resource} has no numeric value")
    try:
        value = to_canonical(analyte, reading.value, reading.unit)
    except UnitError as error:
        return Input(name=key, unit=analyte.unit, note=f"{reading.resource}: {error}")
    converted = reading.unit not in (None, analyte.unit)
    return Input(
        name=key,
        value=value,
        unit=analyte.unit,
        resource=reading.resource,
        effective=_iso(reading.when),
        note=f"converted from {reading.value:g} {reading.unit}" if converted else None,
    )


def _effective(observation: Observation) -> datetime | None:
    for stamp in (observation.effectiveDateTime, observation.effectiveInstant,
                  observation.effectivePeriod.start if observation.effectivePeriod else None, observation.issued):
        if stamp is not None and stamp.datetime is not None:
            return _utc(stamp.datetime)
    return None


# ---- Conditions -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ActiveCondition:
    resource: str
    onset: str | None
    text: str
    snomed: str | None
    condition: Condition


def _active_conditions(fhir: FhirGateway, patient_id: str, at: datetime) -> list[_ActiveCondition]:
    active = []
    for condition in fhir.search(Condition, {"patient": patient_id, "_count": "100"}, limit=2000):
        if _active_at(condition, at):
            codes = [c.code for c in (condition.code.coding or []) if c.system == SNOMED] if condition.code else []
            active.append(_ActiveCondition(reference(condition), _stamp(condition.onsetDateTime or
                                           condition.recordedDate), concept_text(condition.code) or "?",
                                           codes[0] if codes else None, condition))
    return active


def _active_at(condition: Condition, at: datetime) -> bool:
    verification = _status_code(condition.verificationStatus)
    if verification in ("refuted", "entered-in-error"):
        return False
    began = _moment(condition.onsetDateTime) or _moment(condition.recordedDate)
    if began is not None and began > at:
        return False
    ended = _moment(condition.abatementDateTime)
    if ended is not None:
        return ended > at  # abated later: still active then
    return _status_code(condition.clinicalStatus) in _ACTIVE_STATUS


def _concept_input(concept: ConditionConcept, conditions: list[_ActiveCondition]) -> Input:
    matched = [c for c in conditions if concept.matches(c.condition)]
    if matched:
        first = matched[0]
        names = "; ".join(f"{c.text}" + (f" (SNOMED {c.snomed})" if c.snomed else "") for c in matched)
        return Input(name=concept.name, value=True, resource=first.resource, effective=first.onset,
                     supporting=[c.resource for c in matched], note=f"active Condition: {names}")
    if concept.absent_is_no:
        return Input(name=concept.name, value=False,
                     note=f"no active Condition of {concept.label} on the problem list (counted as absent)")
    return Input(name=concept.name, note=f"{concept.label} not recorded as an active Condition")


def _mentation(gcs: Input, recorded: Input) -> Input:
    """GCS < 15 or a delirium/confusion Condition: altered; GCS 15 alone: not altered; neither: missing."""
    if not gcs.missing and float(gcs.value) < 15:
        return Input(name="confusion", value=True, resource=gcs.resource, effective=gcs.effective,
                     supporting=recorded.references(), note=f"GCS {gcs.value:g} < 15")
    if recorded.value is True:
        return recorded
    if not gcs.missing:
        return Input(name="confusion", value=False, resource=gcs.resource, effective=gcs.effective,
                     note=f"GCS {gcs.value:g}, no delirium or confusion recorded")
    return Input(name="confusion", note=f"no GCS ({gcs.note}) and no delirium or confusion recorded")


def _condition_text(condition: Condition) -> str:
    code = condition.code
    if code is None:
        return ""
    parts = [code.text or ""] + [c.display or "" for c in (code.coding or [])]
    return " ".join(parts).lower()


def _status_code(concept) -> str | None:  # fhirclient CodeableConcept
    if concept is None:
        return None
    return next((c.code for c in (concept.coding or []) if c.code), None)


# ---- time -----------------------------------------------------------------------------------------------------


def _moment(stamp) -> datetime | None:  # fhirclient FHIRDateTime
    return _utc(stamp.datetime) if stamp is not None and stamp.datetime is not None else None


def _stamp(stamp) -> str | None:
    return stamp.isostring if stamp is not None else None


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
