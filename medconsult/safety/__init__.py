"""Deterministic medication safety review of a drafted plan."""
