"""FHIR access (fhirclient with timeouts and retries), the local R4 server, and bundle loading."""
