"""Curated, versioned treatment knowledge base: guideline regimens per condition, for a physician to validate.

Data: regimens/<condition key>.yaml, one file per condition, and regimens/_knowledge_base.yaml (version,
changelog). Every figure cites its source; entries that could not be checked against the source text carry
`verify: true`. The content supports a physician's decision and is never an order.
"""

from medconsult.knowledge.base import (
    DEFAULT_PATH,
    KnowledgeBase,
    KnowledgeError,
    SelectedRegimen,
    SettingChoice,
    knowledge_base,
    load_knowledge,
)
from medconsult.knowledge.schema import (
    Condition,
    Drug,
    Manifest,
    Regimen,
    RenalAdjustment,
    Severity,
    SeverityCriteria,
    SeverityRule,
    Source,
    json_schema,
)

__all__ = [
    "DEFAULT_PATH",
    "Condition",
    "Drug",
    "KnowledgeBase",
    "KnowledgeError",
    "Manifest",
    "Regimen",
    "RenalAdjustment",
    "SelectedRegimen",
    "SettingChoice",
    "Severity",
    "SeverityCriteria",
    "SeverityRule",
    "Source",
    "json_schema",
    "knowledge_base",
    "load_knowledge",
]
