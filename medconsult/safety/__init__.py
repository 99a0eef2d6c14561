"""Deterministic medication safety review of a drafted treatment plan (allergy, cross-reactivity, interactions,
renal dosing, pregnancy, duplicate therapy), each finding citing its source."""

from medconsult.safety.review import (
    PlannedDrug,
    RecordItem,
    SafetyContext,
    SafetyFinding,
    parse_drugs,
    review_plan,
)

__all__ = ["PlannedDrug", "RecordItem", "SafetyContext", "SafetyFinding", "parse_drugs", "review_plan"]
