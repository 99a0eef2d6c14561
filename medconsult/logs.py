"""Logging that never writes patient data: the libraries that log identifiers are held back whatever the root level."""

from __future__ import annotations

import logging

# Libraries that log request URLs, SQL parameters or payloads at INFO or DEBUG: FHIR queries carry identifiers, the
# checkpointer's writes carry the whole record. Held at WARNING whatever the root level, so that turning logging up
# to debug a server never writes patient data.
DATA_LOGGERS = ("aiosqlite", "httpx", "httpcore", "fhirclient", "openai", "chromadb", "langsmith",
                "multipart", "python_multipart", "PIL")
# urllib3 warns of each retry with the request's URL (a FHIR search names the patient): errors only.
URL_WARNING_LOGGERS = ("urllib3",)


def quiet_data_loggers() -> None:
    for name in DATA_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in URL_WARNING_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
