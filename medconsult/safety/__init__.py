"""Deterministic medication safety review of a drafted treatment plan (allergy, cross-reactivity, interactions,
renal dosing, pregnancy, duplicate therapy), each finding citing its source."""

from medconsult.safety.drugs import parse_drugs
from medconsult.safety.models import PlannedDrug, RecordItem, SafetyContext, SafetyFinding
from medconsult.safety.review import review_plan

__all__ = ["PlannedDrug", "RecordItem", "SafetyContext", "SafetyFinding", "parse_drugs", "review_plan"]
