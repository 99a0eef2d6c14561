"""Authentication to a hospital's FHIR server, as `Settings.effective_fhir_auth` says.

- `none`: no credentials (the local server).
- `bearer`: one fixed token (`MEDCONSULT_FHIR_BEARER_TOKEN`).
- `smart-backend`: SMART Backend Services (https://hl7.org/fhir/smart-app-launch/backend-services.html), the
  OAuth2 client-credentials grant where the client proves itself with a JWT signed by its private key
  (client-confidential-asymmetric). The access token is cached until shortly before it expires; a 401 from the
  FHIR server (token revoked, clocks apart) buys one new token and one retry of that request.

The private key, the client assertion and the access tokens never appear in log records, exception messages or
reprs; no request headers are logged.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from requests.auth import AuthBase

from medconsult.config import FhirJwtAlgorithm, Settings
from medconsult.fhir.client import (
    BearerToken,
    FhirAuthError,
    FhirGateway,
    FhirUnavailable,
    resilient_adapter,
    same_origin,
)

logger = logging.getLogger(__name__)

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OAUTH_URIS_EXTENSION = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
ASSERTION_LIFETIME_S = 240  # SMART: exp at most five minutes ahead; the rest absorbs the server's clock skew
DEFAULT_TOKEN_LIFETIME_S = 300.0  # SMART's recommended expires_in, for servers that leave it out
REFRESH_MARGIN_S = 30.0  # renew this long before expiry so a token does not lapse in flight


def gateway_from_settings(
    settings: Settings, base_url: str | None = None, *, timeout_s: float | None = None, retries: int = 2
) -> FhirGateway:
    """The gateway to `base_url` (default: the configured FHIR server), authenticated as configured."""
    url = (base_url or settings.effective_fhir_url).rstrip("/")
    timeout = settings.fhir_timeout_s if timeout_s is None else timeout_s
    auth = auth_from_settings(settings, url, timeout_s=timeout, retries=retries)
    return FhirGateway(url, timeout_s=timeout, retries=retries, auth=auth)


def auth_from_settings(
    settings: Settings, fhir_base_url: str, *, timeout_s: float, retries: int = 2
) -> AuthBase | None:
    """The requests auth object for the configured mode; a misconfiguration raises FhirAuthError at once."""
    mode = settings.effective_fhir_auth
    if mode == "none":
        return None
    if mode == "bearer":
        token = _required(settings.fhir_bearer_token, "MEDCONSULT_FHIR_BEARER_TOKEN", mode)
        return BearerToken(token.get_secret_value(), fhir_base_url)
    return SmartBackendAuth(
        fhir_base_url=fhir_base_url,
        client_id=_required(settings.fhir_client_id, "MEDCONSULT_FHIR_CLIENT_ID", mode),
        private_key=load_private_key(settings),
        key_id=_required(settings.fhir_key_id, "MEDCONSULT_FHIR_KEY_ID", mode),
        algorithm=settings.fhir_jwt_alg,
        scope=settings.fhir_scope,
        token_url=settings.fhir_token_url,
        timeout_s=timeout_s,
        retries=retries,
    )


def _required(value: Any, variable: str, mode: str) -> Any:
    if value is None or value == "":
        raise FhirAuthError(f"FHIR authentication '{mode}' needs {variable}")
    return value


def load_private_key(settings: Settings) -> PrivateKey:
    """The signing key from `fhir_private_key` (PEM text) or `fhir_private_key_file`."""
    if settings.fhir_private_key is not None:
        pem, origin = settings.fhir_private_key.get_secret_value(), "MEDCONSULT_FHIR_PRIVATE_KEY"
        if "\n" not in pem:  # a one-line environment variable with escaped newlines
            pem = pem.replace("\\n", "\n")
    elif settings.fhir_private_key_file is not None:
        origin = str(settings.fhir_private_key_file)
        try:
            pem = settings.fhir_private_key_file.read_text()
        except OSError as error:
            raise FhirAuthError(f"cannot read the FHIR private key file {origin}: {error.strerror}") from None
    else:
        raise FhirAuthError(
            "FHIR authentication 'smart-backend' needs MEDCONSULT_FHIR_PRIVATE_KEY or _PRIVATE_KEY_FILE"
        )
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # `from None`: the parser's own message is not needed and the key must not travel in a traceback
        raise FhirAuthError(f"{origin} is not an unencrypted PEM private key") from None
    _check_key_fits(key, settings.fhir_jwt_alg, origin)
    return key


def _check_key_fits(key: object, algorithm: FhirJwtAlgorithm, origin: str) -> None:
    if algorithm == "RS384" and isinstance(key, rsa.RSAPrivateKey):
        return
    if algorithm == "ES384" and isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp384r1":
        return
    needed = "an RSA key" if algorithm == "RS384" else "an EC key on P-384"
    raise FhirAuthError(f"{origin}: MEDCONSULT_FHIR_JWT_ALG={algorithm} needs {needed}")


@dataclass(frozen=True)
class _AccessToken:
    value: str = field(repr=False)
    renew_at: float  # time.monotonic()


class SmartBackendAuth(AuthBase):
    """SMART Backend Services client: signs client assertions, caches access tokens, renews on 401."""

    def __init__(
        self,
        *,
        fhir_base_url: str,
        client_id: str,
        private_key: PrivateKey,
        key_id: str,
        algorithm: FhirJwtAlgorithm = "RS384",
        scope: str = "system/*.rs",
        token_url: str | None = None,
        timeout_s: float = 15.0,
        retries: int = 2,
    ) -> None:
        self.fhir_base_url = fhir_base_url.rstrip("/")
        self.client_id = client_id
        self.key_id = key_id
        self.algorithm = algorithm
        self.scope = scope
        self._private_key = private_key
        self._token_url = token_url
        self._token: _AccessToken | None = None
        self._lock = threading.Lock()  # tools run in parallel: one token request, not one per thread
        # Its own session: the token and discovery requests must not go through this auth object.
        self._session = requests.Session()
        adapter = resilient_adapter(timeout_s, retries)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)

    def __repr__(self) -> str:
        return (
            f"SmartBackendAuth(client_id={self.client_id!r}, key_id={self.key_id!r}, "
            f"algorithm={self.algorithm!r}, scope={self.scope!r}, token_url={self._token_url!r})"
        )

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if not same_origin(request.url or "", self.fhir_base_url):
            host = urlsplit(request.url or "").netloc
            logger.warning("not sending the FHIR access token to %s: not the FHIR server's origin", host)
            return request
        request.headers["Authorization"] = f"Bearer {self.access_token()}"
        request.register_hook("response", self._retry_once_on_401)
        return request

    # --- access tokens ---------------------------------------------------------------------------------------
    def access_token(self) -> str:
        with self._lock:
            if self._token is None or time.monotonic() >= self._token.renew_at:
                self._token = self._request_token()
            return self._token.value

    def _forget(self, authorization: str | None) -> None:
        """Drop the cached token if it is the one just refused (another thread may have renewed it already)."""
        with self._lock:
            if self._token is not None and authorization == f"Bearer {self._token.value}":
                self._token = None

    def _retry_once_on_401(self, response: requests.Response, **send_kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        logger.info("FHIR server refused the access token (HTTP 401); fetching a new one and retrying once")
        self._forget(response.request.headers.get("Authorization"))
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {self.access_token()}"
        _ = response.content  # read it so the connection goes back to the pool
        response.close()
        # The adapter sends without running hooks again, so a second 401 is returned, not retried.
        retried = response.connection.send(retry, **send_kwargs)
        retried.history.append(response)
        retried.request = retry
        return retried

    def _request_token(self) -> _AccessToken:
        token_url = self.token_url()
        assertion = self.client_assertion(token_url)
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        try:
            response = self._session.post(token_url, data=form, headers={"Accept": "application/json"})
        except (requests.ConnectionError, requests.Timeout) as error:
            raise FhirUnavailable(
                f"FHIR token endpoint {token_url} unreachable: {type(error).__name__}"
            ) from error
        except requests.RequestException as error:
            raise FhirAuthError(f"token request to {token_url} failed: {type(error).__name__}") from error
        return self._read_token_response(response, token_url, assertion)

    def _read_token_response(
        self, response: requests.Response, token_url: str, assertion: str
    ) -> _AccessToken:
        payload = _json_object(response)
        access_token = payload.get("access_token")
        if response.status_code != 200 or not isinstance(access_token, str) or not access_token:
            raise _token_error(response, payload, token_url, assertion)
        token_type = str(payload.get("token_type", "bearer"))
        if token_type.lower() != "bearer":
            raise FhirAuthError(
                f"token endpoint {token_url} issued a {token_type[:20]!r} token, not a bearer one"
            )
        lifetime = _lifetime_s(payload.get("expires_in"))
        logger.info(
            "obtained a FHIR access token from %s (scope %r, expires in %.0f s)",
            token_url,
            payload.get("scope", self.scope),
            lifetime,
        )
        margin = min(REFRESH_MARGIN_S, lifetime / 2)
        return _AccessToken(access_token, renew_at=time.monotonic() + lifetime - margin)

    def client_assertion(self, token_url: str) -> str:
        """The signed JWT that authenticates this client to the token endpoint (a new jti every time)."""
        now = int(time.time())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
            "jti": secrets.token_urlsafe(24),
        }
        headers = {"kid": self.key_id, "typ": "JWT"}
        return jwt.encode(claims, self._private_key, algorithm=self.algorithm, headers=headers)

    # --- token endpoint discovery -----------------------------------------------------------------------------
    def token_url(self) -> str:
        if self._token_url is None:
            self._token_url = discover_token_url(self._session, self.fhir_base_url)
        return self._token_url


def discover_token_url(session: requests.Session, fhir_base_url: str) -> str:
    """`token_endpoint` of .well-known/smart-configuration, else the CapabilityStatement's oauth-uris `token`."""
    for source, find in (
        ("/.well-known/smart-configuration", _token_url_from_smart_configuration),
        ("/metadata", _token_url_from_capability),
    ):
        url = fhir_base_url + source
        token_url = find(_get_json(session, url))
        if token_url:
            logger.info("FHIR token endpoint %s (from %s)", token_url, url)
            return token_url
    raise FhirAuthError(
        f"no token endpoint in {fhir_base_url}/.well-known/smart-configuration or the CapabilityStatement;"
        " set MEDCONSULT_FHIR_TOKEN_URL"
    )


def _get_json(session: requests.Session, url: str) -> dict:
    try:
        response = session.get(url, headers={"Accept": "application/json, application/fhir+json"})
    except (requests.ConnectionError, requests.Timeout) as error:
        raise FhirUnavailable(f"FHIR server unreachable during GET {url}: {type(error).__name__}") from error
    if response.status_code != 200:
        logger.debug("GET %s: HTTP %s", url, response.status_code)
        return {}
    return _json_object(response)


def _token_url_from_smart_configuration(configuration: dict) -> str | None:
    token_url = configuration.get("token_endpoint")
    return token_url if isinstance(token_url, str) and token_url else None


def _token_url_from_capability(capability: dict) -> str | None:
    for rest in capability.get("rest") or []:
        for extension in ((rest.get("security") or {}).get("extension")) or []:
            if extension.get("url") != OAUTH_URIS_EXTENSION:
                continue
            for uri in extension.get("extension") or []:
                if uri.get("url") == "token" and uri.get("valueUri"):
                    return uri["valueUri"]
    return None


def _json_object(response: requests.Response) -> dict:
    try:
        payload = response.json()
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _lifetime_s(expires_in: object) -> float:
    try:
        lifetime = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DEFAULT_TOKEN_LIFETIME_S
    return lifetime if lifetime > 0 else DEFAULT_TOKEN_LIFETIME_S


def _token_error(response: requests.Response, payload: dict, token_url: str, assertion: str) -> FhirAuthError:
    """The server's `error` and `error_description` (RFC 6749 5.2), with the assertion scrubbed if echoed."""
    if payload.get("error"):
        detail = str(payload["error"])
        if payload.get("error_description"):
            detail += f": {payload['error_description']}"
    elif response.status_code == 200:
        detail = "the answer has no access_token"
    else:
        detail = response.text
    detail = detail.replace(assertion, "[client assertion]")[:300]
    return FhirAuthError(
        f"token endpoint {token_url} refused the request (HTTP {response.status_code}): {detail}"
    )
