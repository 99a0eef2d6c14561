"""Which failures pause a case (a service down, the checkpoint database, a file that cannot be written) and which
become gaps (everything else: a bad answer is not an outage)."""

from __future__ import annotations

import errno
import sqlite3

import httpx
import openai
import pytest

from medconsult.fhir.client import FhirRequestError, FhirUnavailable
from medconsult.outage import ServiceOutage, outage_service, pause_on_outage, pause_reason

REQUEST = httpx.Request("POST", "http://127.0.0.1:9/v1/chat/completions")


def _status(code: int) -> openai.APIStatusError:
    return openai.APIStatusError("answer", response=httpx.Response(code, request=REQUEST), body=None)


@pytest.mark.parametrize(("error", "service"), [
    (FhirUnavailable("FHIR server failing (HTTP 503) during search Condition?patient=p1"), "FHIR server"),
    (openai.APIConnectionError(request=REQUEST), "LLM server"),
    (openai.APITimeoutError(request=REQUEST), "LLM server"),
    (_status(503), "LLM server"),
    (_status(400), None),  # the request was wrong: retrying later gives the same answer
    (FhirRequestError("search Condition?patient=p1: the server's paging loops"), None),
    (ValueError("expected value at line 1 column 1"), None),
])
def test_only_a_service_that_does_not_answer_is_an_outage(error: Exception, service: str | None):
    assert outage_service(error) == service


def test_an_outage_is_raised_with_the_step_and_a_long_url_cut_in_its_middle():
    url = "search Observation?" + "code=http://loinc.org|1234-5," * 40 + " ... HTTP 500"
    with pytest.raises(ServiceOutage) as raised:
        pause_on_outage(FhirUnavailable(url), "qsofa")
    assert str(raised.value).startswith("FHIR server unavailable during qsofa: FhirUnavailable: search Observation?")
    assert str(raised.value).endswith("HTTP 500") and " … " in str(raised.value)
    pause_on_outage(ValueError("not JSON"), "differential")  # not an outage: returns, the caller writes a gap


@pytest.mark.parametrize(("error", "paused"), [
    (sqlite3.OperationalError("database is locked"), "checkpoint database: database is locked"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/report.md"), "output folder: [Errno 28]"),
    (PermissionError(errno.EACCES, "Permission denied", "/out/report.md"), "output folder: [Errno 13]"),
    (ConnectionResetError(errno.ECONNRESET, "reset by peer"), None),  # an OSError, but not a file: a bug to see
    (KeyError("differential"), None),
])
def test_a_database_or_a_file_that_refuses_a_write_pauses_and_other_errors_do_not(error, paused):
    reason = pause_reason(error)
    if paused is None:
        assert reason is None
    else:
        assert reason.startswith(paused)
