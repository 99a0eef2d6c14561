"""medconsult: agentic multimodal clinical reasoning over a chest radiograph and the patient's FHIR record."""

__version__ = "0.1.0"
