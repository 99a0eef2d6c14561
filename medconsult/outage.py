"""A service the case needs stopped answering: the case pauses instead of finishing on half a record.

A consult drafted without the record (the FHIR server down or failing) or without its reasoning (the LLM server
down or past its timeout) is not one a physician can use, and its gaps would be the outage's, not the patient's.
So an outage is not turned into a gap: the node raises `ServiceOutage`, LangGraph keeps every step that finished
(the parallel steps of the failed one included), and `medconsult run --resume` finishes the case once the service
is back, without repeating a completed tool or LLM call. A fault in one answer (invalid JSON, a tool timing out, a
server that answers but not with what was asked) stays a gap: retrying it later would give the same answer.
"""

from __future__ import annotations

import errno
import sqlite3

import openai

from medconsult.fhir.client import FhirUnavailable

# A file that could not be written for want of space or permission (not, say, a socket's OSError: that is a bug).
_UNWRITABLE = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR,
                         errno.EISDIR, errno.EIO})
# LLM server answers that mean "down or overloaded", not "this request is wrong".
_LLM_DOWN_STATUSES = frozenset({502, 503, 504})


class ServiceOutage(RuntimeError):
    """`service` did not answer during `step`; the case pauses at its last checkpoint."""

    def __init__(self, service: str, step: str, detail: str) -> None:
        self.service, self.step, self.detail = service, step, detail
        super().__init__(f"{service} unavailable during {step}: {detail}")


class ConsultPaused(RuntimeError):
    """The consult stopped before its end and can be resumed from its checkpoint. `saved` says whether any step was
    checkpointed (a case paused before its first checkpoint has to be started again); None when the database could
    not be read to tell (it is the one that failed)."""

    def __init__(self, thread_id: str, reason: str, *, saved: bool | None) -> None:
        self.thread_id, self.reason, self.saved = thread_id, reason, saved
        super().__init__(reason)


def outage_service(error: BaseException) -> str | None:
    """Which service `error` says is down ("FHIR server", "LLM server"), or None for any other failure."""
    if isinstance(error, FhirUnavailable):
        return "FHIR server"
    if isinstance(error, openai.APIConnectionError):  # refused, reset, or past the client's timeout
        return "LLM server"
    if isinstance(error, openai.APIStatusError) and error.status_code in _LLM_DOWN_STATUSES:
        return "LLM server"
    return None


def pause_on_outage(error: BaseException, step: str) -> None:
    """Raise `ServiceOutage` when `error` is an outage; return otherwise (the caller turns it into a gap)."""
    service = outage_service(error)
    if service is not None:
        raise ServiceOutage(service, step, f"{type(error).__name__}: {_shortened(str(error))}") from error


def _shortened(text: str, limit: int = 300) -> str:
    """A long search URL is cut in its middle: the head says what failed, the tail often why."""
    return text if len(text) <= limit else f"{text[: limit // 2]} … {text[-limit // 2:]}"


def pause_reason(error: BaseException) -> str | None:
    """Why a consult that raised `error` can be resumed later, or None when it cannot (a bug, bad input)."""
    if isinstance(error, ServiceOutage):
        return str(error)
    if isinstance(error, sqlite3.OperationalError):  # locked, or the disk under it full
        return f"checkpoint database: {error}"
    if isinstance(error, OSError) and error.errno in _UNWRITABLE:  # the output folder: full, read-only, refused
        return f"output folder: {error}"
    return None
