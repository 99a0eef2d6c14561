"""Importers that turn public data sets into FHIR records and case files."""
