"""fhir_observations: laboratory results or vital signs, the latest value of each LOINC code by default."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal

from fhirclient.models.observation import Observation
from pydantic import BaseModel, Field

from medconsult.fhir.values import LOINC, code_in, concept_text, fhir_date, reference
from medconsult.tools.base import ConsultCall, Evidence, MedTool, Stage, StageInputs, ToolResult
from medconsult.tools.fhir.common import PatientArgs


class ObservationArgs(PatientArgs):
    category: Literal["laboratory", "vital-signs"] = Field(
        "laboratory", description="FHIR observation category"
    )
    loinc_codes: list[str] = Field(
        default_factory=list, description="only these LOINC codes (empty: all)", max_length=20
    )
    latest_per_code: bool = Field(True, description="keep only the most recent result of each code")
    limit: int = Field(25, ge=1, le=200, description="at most this many results, most recent first")
    within_days: int | None = Field(
        None, ge=1, description="only codes measured within this many days before the review day; none: any time"
    )


class ObservationValue(BaseModel):
    loinc: str | None
    display: str | None
    value: float | str | None
    unit: str | None


class EarlierValue(BaseModel):
    value: float | str | None
    effective: str | None
    resource: str


class ObservationItem(ObservationValue):
    resource: str
    effective: str | None
    interpretation: str | None = None  # the server's flag, else H/L computed from the reference range
    reference_range: str | None = None
    components: list[ObservationValue] = Field(default_factory=list)
    measurements_of_code: int = 1  # how many results of this code the record holds
    earlier: list[EarlierValue] = Field(default_factory=list)  # previous results of the code, newest first
    trend: str | None = None  # e.g. "rising from 45 since 2020" (the unit is the value's)
    note: str | None = None  # Observation.note: a comment on the sample or the result ("haemolysed")


class ObservationsResult(ToolResult):
    category: str
    observations: list[ObservationItem]
    total_found: int
    older_codes: int = 0  # codes left out because last measured before `measured_since`
    measured_since: str | None = None

    def evidence(self) -> list[Evidence]:
        kind = "vital" if self.category == "vital-signs" else "lab"
        older = []
        if self.older_codes:
            older = [Evidence(kind=kind, text=f"{self.older_codes} other {self.category} code(s) last measured "
                                              f"before {self.measured_since}, not listed")]
        by_code: dict[str, list[ObservationItem]] = {}
        for item in self.observations:
            by_code.setdefault(item.loinc or item.display or item.resource, []).append(item)
        return older + [
            _statement(kind, items[0]) if len(items) == 1 else _history(kind, items) for items in by_code.values()
        ]


def _statement(kind: str, o: ObservationItem) -> Evidence:
    return Evidence(
        kind=kind,
        text=f"{short_name(o.display)} {_format_value(o)} on {(o.effective or 'unknown date')[:10]}"
        + (f" (ref {o.reference_range})" if o.reference_range else "")
        + (f" [{o.interpretation}]" if o.interpretation else "")
        + (f"; {o.trend}" if o.trend else "")
        + (f"; note: {o.note}" if o.note else ""),
        resource=o.resource,
        value=o.value,
        unit=o.unit,
    )


def _history(kind: str, items: list[ObservationItem]) -> Evidence:
    """Several results of one code (a history look-up) in one statement, newest first, the unit once:
    "Creatinine (mg/dL) 0.95 on 2018-09-29, 0.84 on 2017-09-23, ..."."""
    latest = items[0]
    values = ", ".join(f"{_format_value(o.model_copy(update={'unit': None}))} on {(o.effective or '?')[:10]}"
                       for o in items)
    unit = f" ({latest.unit})" if latest.unit else ""
    note = f"; note: {latest.note}" if latest.note else ""
    return Evidence(kind=kind, text=f"{short_name(latest.display)}{unit} {values}{note}", resource=latest.resource,
                    value=latest.value, unit=latest.unit)


def short_name(display: str | None) -> str:
    """A LOINC long name without its property and method: "Leukocytes [#/volume] in Blood by Automated count" ->
    "Leukocytes". Names without a bracketed property keep their system ("Oxygen saturation in Arterial blood")."""
    if not display:
        return "unnamed result"
    if " [" in display:
        return display.split(" [", 1)[0]
    return display.split(" by ", 1)[0]


def _format_value(item: ObservationValue) -> str:
    if isinstance(item, ObservationItem) and item.components:
        return ", ".join(f"{c.display} {_format_value(c)}" for c in item.components)
    if isinstance(item.value, float):
        number = f"{item.value:.3g}" if abs(item.value) < 1000 else f"{item.value:.0f}"
        return f"{number} {item.unit or ''}".strip()
    return f"{item.value if item.value is not None else 'no value'} {item.unit or ''}".strip()


class ObservationsTool(MedTool):
    name: str = "fhir_observations"
    description: str = (
        "Laboratory results or vital signs of a patient by LOINC code with UCUM units, most recent first; "
        "by default the latest result of each code."
    )
    args_schema: type[BaseModel] = ObservationArgs
    result_model = ObservationsResult
    stage = Stage.RECORD

    def consult_calls(self, inputs: StageInputs) -> list[ConsultCall]:
        """Two reads per consult: the recent laboratory results and the recent vital signs."""
        if not inputs.patient_id:
            return []
        settings = inputs.settings
        patient = {k: v for k, v in inputs.values().items() if k in ("patient_id", "as_of")}
        recent = {"within_days": settings.record_recent_days}
        labs = {"category": "laboratory", "limit": settings.lab_results_limit, **recent}
        vitals = {"category": "vital-signs", "limit": 12, **recent}
        return [ConsultCall("labs", {**patient, **labs}, "laboratory results"),
                ConsultCall("vitals", {**patient, **vitals}, "vital signs")]

    def execute(self, args: ObservationArgs) -> ObservationsResult:
        params = {"patient": args.patient_id, "category": args.category, "_sort": "-date", "_count": "200"}
        if args.as_of is not None:
            params["date"] = f"le{args.as_of.isoformat()}T23:59:59Z"
        if args.loinc_codes:
            params["code"] = ",".join(f"{LOINC}|{code}" for code in args.loinc_codes)
        found = self.context.fhir.search(Observation, params, limit=2000)
        items = [_item(o) for o in found]
        if args.latest_per_code:
            items = _latest_per_code(items)
        since, older = None, 0
        if args.within_days is not None:
            since = ((args.as_of or date.today()) - timedelta(days=args.within_days)).isoformat()
            recent = [item for item in items if (item.effective or "")[:10] >= since]
            older, items = len(items) - len(recent), recent
        items = items[: args.limit]
        summary = f"{len(items)} {args.category} result(s) of {len(found)} found"
        if items:
            summary += f", latest {items[0].effective}"
        if older:
            summary += f"; {older} code(s) last measured before {since} left out"
        return ObservationsResult(
            summary=summary, category=args.category, observations=items, total_found=len(found),
            older_codes=older, measured_since=since,
        )


EARLIER_KEPT = 4  # previous results listed per code; the count of all of them is kept too
NOTE_CHARS_KEPT = 300  # of a result's note: a comment on a sample is a line or two


def _latest_per_code(items: list[ObservationItem]) -> list[ObservationItem]:
    latest: dict[str, ObservationItem] = {}
    for item in items:  # already most recent first
        key = item.loinc or item.display or item.resource
        if key not in latest:
            latest[key] = item
            continue
        kept = latest[key]
        kept.measurements_of_code += 1
        if len(kept.earlier) < EARLIER_KEPT:
            kept.earlier.append(EarlierValue(value=item.value, effective=item.effective, resource=item.resource))
    for item in latest.values():
        item.trend = _trend(item)
    return list(latest.values())


def _trend(item: ObservationItem) -> str | None:
    """Direction from the oldest listed earlier value to the latest one; a change under 10% is "stable"."""
    numeric = [e for e in item.earlier if isinstance(e.value, float | int)]
    if not isinstance(item.value, float | int) or not numeric:
        return None
    first = numeric[-1]
    change = item.value - first.value
    scale = max(abs(first.value), abs(item.value), 1e-9)
    since = (first.effective or "an unknown year")[:4]  # the year: each digit of a date is a prompt token
    if abs(change) / scale < 0.1:
        return f"stable since {since}"
    return f"{'rising' if change > 0 else 'falling'} from {first.value:.3g} since {since}"


def _value(holder) -> tuple[float | str | None, str | None]:  # Observation or component
    if holder.valueQuantity is not None:
        quantity = holder.valueQuantity
        return quantity.value, quantity.code or quantity.unit
    if holder.valueCodeableConcept is not None:
        return concept_text(holder.valueCodeableConcept), None
    if holder.valueString is not None:
        return holder.valueString, None
    return None, None


def _flag_against_range(value: float | str | None, ranges: list) -> str | None:
    """H or L when the server sent a numeric reference range but no interpretation of its own."""
    if not isinstance(value, float | int) or len(ranges) != 1:
        return None  # several ranges (by age, sex...) are not for this code to choose between
    low = ranges[0].low.value if ranges[0].low is not None else None
    high = ranges[0].high.value if ranges[0].high is not None else None
    if high is not None and value > high:
        return "H"
    if low is not None and value < low:
        return "L"
    return None


def _item(observation: Observation) -> ObservationItem:
    value, unit = _value(observation)
    ranges = []
    for r in observation.referenceRange or []:
        low = f"{r.low.value}" if r.low else ""
        high = f"{r.high.value}" if r.high else ""
        ranges.append(r.text or f"{low}-{high} {(r.high or r.low).unit or ''}".strip())
    components = []
    for component in observation.component or []:
        c_value, c_unit = _value(component)
        components.append(
            ObservationValue(
                loinc=code_in(component.code, LOINC),
                display=concept_text(component.code),
                value=c_value,
                unit=c_unit,
            )
        )
    interpretation = (
        "; ".join(filter(None, (concept_text(i) for i in (observation.interpretation or []))))
        or _flag_against_range(value, observation.referenceRange or [])
    )
    return ObservationItem(
        resource=reference(observation),
        loinc=code_in(observation.code, LOINC),
        display=concept_text(observation.code),
        value=value,
        unit=unit,
        effective=fhir_date(observation.effectiveDateTime),
        interpretation=interpretation,
        reference_range="; ".join(ranges) or None,
        components=components,
        note=" ".join(n.text for n in observation.note or [] if n.text)[:NOTE_CHARS_KEPT] or None,
    )
