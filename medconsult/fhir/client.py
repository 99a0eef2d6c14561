"""FHIR access through fhirclient, as against any hospital's FHIR R4 server.

fhirclient's requests session has no timeout and no retry; a hung or flapping server would hang the case.
The session gets both here: every request times out, and connection errors and 5xx answers are retried with
exponential backoff. Errors surface as `FhirUnavailable` (the server cannot be reached), `FhirAuthError` (the
credentials were refused) or `FhirRequestError`. Authentication is a `requests` auth object on the session
(`BearerToken` here, SMART Backend Services in `medconsult.fhir.auth`), so every request carries it: reads,
searches, their next pages and posts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NoReturn
from urllib.parse import urlsplit

import requests
from fhirclient import client as fhir_client
from fhirclient.models.bundle import Bundle
from fhirclient.models.fhirabstractbase import FHIRValidationError
from fhirclient.models.resource import Resource
from fhirclient.server import FHIRNotFoundException, FHIRPermissionDeniedException, FHIRUnauthorizedException
from requests.adapters import HTTPAdapter
from requests.auth import AuthBase
from urllib3.util.retry import Retry


class FhirUnavailable(RuntimeError):
    """The FHIR server could not be reached (down, refusing connections or timing out) or kept failing (5xx after
    the retries)."""


class FhirRequestError(RuntimeError):
    """The FHIR server answered, but not with what was asked for."""


class FhirNotFound(FhirRequestError):
    pass


class FhirAuthError(FhirRequestError):
    """The FHIR server or its token endpoint refused the credentials. Never carries a secret."""


class _TimeoutAdapter(HTTPAdapter):
    def __init__(self, timeout_s: float, **kwargs: Any) -> None:
        self._timeout_s = timeout_s
        super().__init__(**kwargs)

    def send(self, request, **kwargs):  # requests' signature
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        return super().send(request, **kwargs)


def resilient_adapter(timeout_s: float, retries: int) -> HTTPAdapter:
    """A transport adapter that times out every request and retries connection errors and 5xx answers."""
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
    return _TimeoutAdapter(timeout_s, max_retries=retry)


def same_origin(url: str, base_url: str) -> bool:
    """Whether `url` is on the FHIR server's scheme, host and port: credentials go nowhere else (a paging
    `next` link is the server's to choose)."""
    return _origin(url) == _origin(base_url)


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or {"http": 80, "https": 443}.get(scheme)


class BearerToken(AuthBase):
    """A fixed bearer token, sent to the FHIR server's origin only; its repr does not show it."""

    def __init__(self, token: str, fhir_base_url: str) -> None:
        self._token = token
        self.fhir_base_url = fhir_base_url

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if same_origin(request.url or "", self.fhir_base_url):
            request.headers["Authorization"] = f"Bearer {self._token}"
        return request

    def __repr__(self) -> str:
        return "BearerToken(***)"


class FhirGateway:
    """One fhirclient connection with timeouts, retries and optional authentication.

    Build it from Settings with `medconsult.fhir.auth.gateway_from_settings`, which picks the authentication.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 15.0,
        retries: int = 2,
        bearer_token: str | None = None,
        auth: AuthBase | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self._client = fhir_client.FHIRClient(
            settings={"app_id": "medconsult", "api_base": self.base_url + "/"}
        )
        session: requests.Session = self._client.server.session
        adapter = resilient_adapter(timeout_s, retries)
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        # requests applies the session's auth to every request and drops it on redirects to another host.
        session.auth = auth or (BearerToken(bearer_token, self.base_url) if bearer_token else None)

    def __repr__(self) -> str:
        return f"FhirGateway({self.base_url!r}, auth={self.server.session.auth!r})"

    @property
    def server(self):  # fhirclient.server.FHIRServer
        return self._client.server

    def read(self, resource_class: type[Resource], resource_id: str) -> Resource:
        try:
            return resource_class.read(resource_id, self.server)
        except FHIRNotFoundException:
            raise FhirNotFound(f"{resource_class.resource_type}/{resource_id} not found") from None
        except Exception as error:  # noqa: BLE001 - fhirclient raises plain exceptions for HTTP errors
            _raise_translated(error, f"read {resource_class.resource_type}/{resource_id}")

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
            for bundle in self._pages(resource_class.where(params), what):
                for entry in bundle.entry or []:
                    resource = entry.resource
                    if not isinstance(resource, resource_class):  # _include'd resources, OperationOutcome entries
                        continue
                    if yielded >= limit:
                        return
                    yielded += 1
                    yield resource
        except Exception as error:  # noqa: BLE001
            _raise_translated(error, what)

    def _pages(self, search: Any, what: str) -> Iterator[Bundle]:
        """The search's Bundles, following `next` links; a link back to a page already read is the server's bug
        (fhirclient would follow it for ever, or until the limit, returning the same resources again)."""
        bundle = next(search.perform_iter(self.server))  # the first page only: the rest is followed here
        seen: set[str] = set()
        while bundle is not None:
            yield bundle
            link = next((item.url for item in bundle.link or [] if item.relation == "next"), None)
            if link is None:
                return
            if link in seen or len(seen) >= MAX_PAGES:
                raise FhirRequestError(
                    f"{what}: the server's paging loops (page {len(seen) + 1} links back to {link[:200]})"
                    if link in seen else f"{what}: more than {MAX_PAGES} pages"
                )
            seen.add(link)
            bundle = Bundle.read_from(link, self.server)

    def read_json(self, reference: str) -> dict:
        """One resource by its relative reference ("Observation/123") as the server sent it."""
        try:
            return self.server.request_json(reference)
        except FHIRNotFoundException:
            raise FhirNotFound(f"{reference} not found") from None
        except Exception as error:  # noqa: BLE001
            _raise_translated(error, f"read {reference}")

    def post_json(self, path: str, body: dict) -> dict:
        try:
            response = self.server.post_json(path, body)
        except Exception as error:  # noqa: BLE001
            _raise_translated(error, f"POST {path or '/'}")
        return response.json()

    def capability(self) -> dict:
        try:
            return self.server.request_json("metadata")
        except Exception as error:  # noqa: BLE001
            _raise_translated(error, "GET metadata")


def _raise_translated(error: Exception, what: str) -> NoReturn:
    translated = _translate(error, what)
    if translated is error:  # already ours (e.g. raised by the auth object): keep its own traceback
        raise error
    raise translated from error


# A search is read page by page; past this many the server is looping or the search is far too broad.
MAX_PAGES = 200
# Answers (after the retries) that mean the server is failing, not that the request is wrong.
SERVER_FAILING_STATUSES = frozenset({500, 502, 503, 504})
# How servers answer a search on a resource type (or parameter) they do not support.
UNSUPPORTED_SEARCH_STATUSES = frozenset({400, 404, 405, 501})


def _cause(error: requests.RequestException) -> str:
    """requests reports every exhausted retry as ConnectionError; the last attempt's failure says which."""
    reason = getattr(error.args[0] if error.args else None, "reason", None)
    return f"{type(error).__name__} ({type(reason).__name__})" if reason is not None else type(error).__name__


def _translate(error: Exception, what: str) -> RuntimeError:
    if isinstance(error, FhirRequestError | FhirUnavailable):
        return error
    if isinstance(error, FHIRUnauthorizedException):
        return FhirAuthError(f"{what}: HTTP 401, the FHIR server refused the credentials")
    if isinstance(error, FHIRPermissionDeniedException):
        return FhirAuthError(f"{what}: HTTP 403, the credentials do not grant this (scope?)")
    if isinstance(error, requests.ConnectionError | requests.Timeout):
        return FhirUnavailable(f"FHIR server unreachable ({_cause(error)}) during {what}")
    status = getattr(getattr(error, "response", None), "status_code", None)
    if status in SERVER_FAILING_STATUSES:
        return FhirUnavailable(f"FHIR server failing (HTTP {status}) during {what}")
    if what.startswith("search ") and status in UNSUPPORTED_SEARCH_STATUSES:
        resource_type = what.removeprefix("search ").split("?")[0]
        return FhirRequestError(f"the FHIR server does not offer {resource_type} or this search (HTTP {status})")
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return FhirRequestError(f"{what}: HTTP {error.response.status_code} {error.response.text[:200]}")
    if isinstance(error, FHIRValidationError):
        return FhirRequestError(f"{what}: resource does not conform to FHIR R4 ({str(error)[:200]})")
    return FhirRequestError(f"{what}: {type(error).__name__}: {str(error)[:200]}")
