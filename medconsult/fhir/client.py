"""FHIR access through fhirclient, as against any hospital's FHIR R4 server.

fhirclient's requests session has no timeout and no retry; a hung or flapping server would hang the case.
The session gets both here: every request times out, and connection errors and 5xx answers are retried with
exponential backoff. Errors surface as `FhirUnavailable` (the server cannot be reached) or `FhirRequestError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import requests
from fhirclient import client as fhir_client
from fhirclient.models.fhirabstractbase import FHIRValidationError
from fhirclient.models.resource import Resource
from fhirclient.server import FHIRNotFoundException
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry


class FhirUnavailable(RuntimeError):
    """The FHIR server could not be reached (down, refusing connections or timing out)."""


class FhirRequestError(RuntimeError):
    """The FHIR server answered, but not with what was asked for."""


class FhirNotFound(FhirRequestError):
    pass


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout_s: float, **kwargs: Any) -> None:
        self._timeout_s = timeout_s
        super().__init__(**kwargs)

    def send(self, request, **kwargs):  # noqa: ANN001 - requests' signature
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().send(request, **kwargs)


class FhirGateway:
    """One fhirclient connection with timeouts, retries and optional bearer authentication."""

    def __init__(
        self, base_url: str, *, timeout_s: float = 15.0, retries: int = 2, bearer_token: str | None = None
    ):
        self.base_url = base_url.rstrip("/")
        self._client = fhir_client.FHIRClient(
            settings={"app_id": "medconsult", "api_base": self.base_url + "/"}
        )
        session: requests.Session = self._client.server.session
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.5,
            status_forcelist=(500, 502, 503, 504),
            # A transaction POST is not idempotent: only reads are retried after the request was sent;
            # connection failures (nothing sent) are retried for every method.
            allowed_methods=frozenset({"GET"}),
            raise_on_status=False,
        )
        adapter = _TimeoutAdapter(timeout_s, max_retries=retry)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        if bearer_token:
            session.headers["Authorization"] = f"Bearer {bearer_token}"

    @property
    def server(self):  # noqa: ANN201 - fhirclient.server.FHIRServer
        return self._client.server

    def read(self, resource_class: type[Resource], resource_id: str) -> Resource:
        try:
            return resource_class.read(resource_id, self.server)
        except FHIRNotFoundException:
            raise FhirNotFound(f"{resource_class.resource_type}/{resource_id} not found") from None
        except Exception as error:  # noqa: BLE001 - fhirclient raises plain exceptions for HTTP errors
            raise _translate(error, f"read {resource_class.resource_type}/{resource_id}") from error

    def search(
        self, resource_class: type[Resource], params: dict[str, str], limit: int = 1000
    ) -> list[Resource]:
        """All matches, following the server's `next` links, up to `limit` resources."""
        return list(self._iter_search(resource_class, params, limit))

    def _iter_search(
        self, resource_class: type[Resource], params: dict[str, str], limit: int
    ) -> Iterator[Resource]:
        what = f"search {resource_class.resource_type}?{'&'.join(f'{k}={v}' for k, v in params.items())}"
        yielded = 0
        try:
            for resource in resource_class.where(params).perform_resources_iter(self.server):
                if not isinstance(resource, resource_class):  # _include'd resources, OperationOutcome entries
                    continue
                if yielded >= limit:
                    return
                yielded += 1
                yield resource
        except Exception as error:  # noqa: BLE001
            raise _translate(error, what) from error

    def post_json(self, path: str, body: dict) -> dict:
        try:
            response = self.server.post_json(path, body)
        except Exception as error:  # noqa: BLE001
            raise _translate(error, f"POST {path or '/'}") from error
        return response.json()

    def capability(self) -> dict:
        try:
            return self.server.request_json("metadata")
        except Exception as error:  # noqa: BLE001
            raise _translate(error, "GET metadata") from error


def _translate(error: Exception, what: str) -> RuntimeError:
    if isinstance(error, FhirRequestError | FhirUnavailable):
        return error
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return FhirUnavailable(f"FHIR server unreachable during {what}: {type(error).__name__}")
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return FhirRequestError(f"{what}: HTTP {error.response.status_code} {error.response.text[:200]}")
    if isinstance(error, FHIRValidationError):
        return FhirRequestError(f"{what}: resource does not conform to FHIR R4 ({str(error)[:200]})")
    return FhirRequestError(f"{what}: {type(error).__name__}: {str(error)[:200]}")
