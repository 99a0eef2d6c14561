"""Deterministic medication safety review of a drafted treatment plan against the patient's record.

`review_plan` runs every rule family of `rules` over the planned drugs and returns findings a physician reads next to
the plan: "block" means the plan must be revised, "warn" is shown prominently. The review never calls a model.
"""

from __future__ import annotations

from medconsult.safety import rules
from medconsult.safety.models import PlannedDrug, SafetyContext, SafetyFinding


def review_plan(drugs: list[PlannedDrug], context: SafetyContext) -> list[SafetyFinding]:
    """All findings for the plan, blocks first; an empty list means every rule ran and found nothing."""
    planned, unknown = rules.resolve_plan(drugs)
    current = rules.resolve_record(context.medications)
    findings = [
        *rules.record_gap_findings(context),
        *rules.unknown_drug_findings(unknown),
        *rules.allergy_findings(planned, context),
        *rules.cross_reactivity_findings(planned, context),
        *rules.interaction_findings(planned, current),
        *rules.qtc_findings(planned, context),
        *rules.renal_findings(planned, context),
        *rules.pregnancy_findings(planned, context),
        *rules.duplicate_findings(planned, current),
        *rules.weight_dose_findings(planned, context),
    ]
    return rules.ordered(findings)

