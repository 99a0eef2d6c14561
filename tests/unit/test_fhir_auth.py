"""FHIR authentication against a real in-process server: SMART Backend Services token endpoint + FHIR API.

The server verifies every client assertion with the client's public key (alg, kid, aud, iss, sub, exp, jti
replay) and only answers FHIR requests carrying a live token it issued, so these tests go through real HTTP.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from fhirclient.models.patient import Patient

from medconsult.config import Settings
from medconsult.fhir.auth import CLIENT_ASSERTION_TYPE, OAUTH_URIS_EXTENSION, gateway_from_settings
from medconsult.fhir.client import FhirAuthError, FhirGateway, FhirUnavailable
from medconsult.tools.base import ToolContext

CLIENT_ID = "medconsult-test-client"
KEY_ID = "test-key-1"
STATIC_TOKEN = "static-" + secrets.token_urlsafe(16)


# --- the server ------------------------------------------------------------------------------------------------
@dataclass
class ServerState:
    public_key: object
    algorithm: str
    base_url: str = ""
    token_lifetime_s: int = 300
    smart_configuration: bool = True  # False: discovery must fall back to the CapabilityStatement
    oauth_uris_in_capability: bool = True
    refuse_every_token: bool = False
    next_link_base: str | None = None  # where page 2 of a search lives (default: this server)
    live_tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch seconds)
    every_token: list[str] = field(default_factory=list)
    assertions: list[str] = field(default_factory=list)
    seen_jti: set[str] = field(default_factory=set)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    # (Host header, path, Authorization header, status) of every request to a protected FHIR URL
    fhir_requests: list[tuple[str, str, str | None, int]] = field(default_factory=list)

    @property
    def fhir_url(self) -> str:
        return self.base_url + "/fhir"

    @property
    def token_url(self) -> str:
        return self.base_url + "/auth/token"

    def unauthorized_count(self) -> int:
        return sum(1 for *_, status in self.fhir_requests if status == 401)


def _patient(number: int) -> dict:
    return {"resourceType": "Patient", "id": str(number), "name": [{"family": f"Test{number}"}]}


def _search_page(state: ServerState, page: int) -> dict:
    links = [{"relation": "self", "url": f"{state.fhir_url}/Patient?_page={page}"}]
    if page == 1:
        next_base = state.next_link_base or state.base_url
        links.append({"relation": "next", "url": f"{next_base}/fhir/Patient?family=Test&_page=2"})
    numbers = (1, 2) if page == 1 else (3,)
    entries = [{"fullUrl": f"{state.fhir_url}/Patient/{n}", "resource": _patient(n)} for n in numbers]
    return {"resourceType": "Bundle", "type": "searchset", "total": 3, "link": links, "entry": entries}


def _capability(state: ServerState) -> dict:
    security: dict = {}
    if state.oauth_uris_in_capability:
        uris = [{"url": "token", "valueUri": state.token_url}]
        security = {"extension": [{"url": OAUTH_URIS_EXTENSION, "extension": uris}]}
    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "fhirVersion": "4.0.1",
        "rest": [{"mode": "server", "security": security}],
    }


def _issue_token(state: ServerState, form: dict[str, str]) -> tuple[int, dict]:
    """RFC 6749 client credentials with a SMART client assertion, checked the way a hospital server would."""
    state.token_forms.append(form)

    def refuse(description: str) -> tuple[int, dict]:
        return 401, {"error": "invalid_client", "error_description": description}

    if form.get("grant_type") != "client_credentials":
        return 400, {"error": "unsupported_grant_type"}
    if form.get("client_assertion_type") != CLIENT_ASSERTION_TYPE:
        return refuse("client_assertion_type must be jwt-bearer")
    assertion = form.get("client_assertion", "")
    state.assertions.append(assertion)
    header = jwt.get_unverified_header(assertion)
    if (header.get("alg"), header.get("kid"), header.get("typ")) != (state.algorithm, KEY_ID, "JWT"):
        return refuse(f"unexpected assertion header {header}")
    try:
        claims = jwt.decode(
            assertion,
            state.public_key,
            algorithms=[state.algorithm],
            audience=state.token_url,
            issuer=CLIENT_ID,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.InvalidTokenError as error:
        return refuse(f"client assertion rejected: {error}")
    if claims["sub"] != CLIENT_ID:
        return refuse("sub must be the client_id")
    if claims["exp"] > time.time() + 300:
        return refuse("exp is more than five minutes ahead")
    if claims["jti"] in state.seen_jti:
        return refuse("jti already used")
    state.seen_jti.add(claims["jti"])
    token = secrets.token_urlsafe(24)
    state.live_tokens[token] = time.time() + state.token_lifetime_s
    state.every_token.append(token)
    body = {"access_token": token, "token_type": "bearer", "expires_in": state.token_lifetime_s}
    return 200, body | {"scope": form.get("scope", "")}


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, *args: object) -> None:  # the test output stays quiet
        pass

    def do_GET(self) -> None:  # http.server's name
        state = self.server.state
        url = urlsplit(self.path)
        if url.path == "/fhir/.well-known/smart-configuration" and state.smart_configuration:
            capabilities = ["client-confidential-asymmetric"]
            return self._send(200, {"token_endpoint": state.token_url, "capabilities": capabilities})
        if url.path == "/fhir/metadata":
            return self._send(200, _capability(state))
        if not self._authorized(url.path):
            return None
        if url.path == "/fhir/Patient/1":
            return self._send(200, _patient(1))
        if url.path == "/fhir/Patient":
            return self._send(200, _search_page(state, int(parse_qs(url.query).get("_page", ["1"])[0])))
        return self._send(404, {"resourceType": "OperationOutcome"})

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        if self.path == "/auth/token":
            form = {key: values[0] for key, values in parse_qs(body).items()}
            return self._send(*_issue_token(self.server.state, form))
        if self.path == "/fhir/" and self._authorized(self.path):
            bundle = json.loads(body)
            return self._send(
                200, {"resourceType": "Bundle", "type": "transaction-response", "id": bundle["id"]}
            )
        return None

    def _authorized(self, path: str) -> bool:
        state = self.server.state
        authorization = self.headers.get("Authorization")
        token = (authorization or "").removeprefix("Bearer ")
        live = token == STATIC_TOKEN or state.live_tokens.get(token, 0) > time.time()
        ok = live and not state.refuse_every_token
        state.fhir_requests.append((self.headers.get("Host", ""), path, authorization, 200 if ok else 401))
        if not ok:
            self._send(401, {"resourceType": "OperationOutcome", "issue": [{"code": "login"}]})
        return ok

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, state: ServerState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.state = state
        state.base_url = f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def serve() -> Iterator:
    """Start a server for the given public key; stopped after the test."""
    servers: list[_Server] = []

    def start(public_key: object, algorithm: str = "RS384", **options: object) -> ServerState:
        server = _Server(ServerState(public_key, algorithm, **options))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server.state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


# --- keys and settings -----------------------------------------------------------------------------------------
def _pem(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def _smart_settings(state: ServerState, key: object, **overrides: object) -> Settings:
    values: dict = {
        "fhir_base_url": state.fhir_url,
        "fhir_auth": "smart-backend",
        "fhir_client_id": CLIENT_ID,
        "fhir_private_key": _pem(key),  # type: ignore[arg-type]
        "fhir_key_id": KEY_ID,
        "fhir_jwt_alg": state.algorithm,
        "fhir_timeout_s": 5,
    }
    return Settings(**(values | overrides))


def _use(gateway: FhirGateway) -> None:
    """A read, a two-page search, a capability request and a transaction POST."""
    assert gateway.read(Patient, "1").name[0].family == "Test1"
    assert [p.id for p in gateway.search(Patient, {"family": "Test"})] == ["1", "2", "3"]
    assert gateway.capability()["fhirVersion"] == "4.0.1"
    bundle = {"resourceType": "Bundle", "id": "tx-1", "type": "transaction", "entry": []}
    assert gateway.post_json("", bundle)["type"] == "transaction-response"


def _assert_no_secret(text: str, state: ServerState, key: object) -> None:
    pem = _pem(key)
    secrets_seen = [*state.every_token, *state.assertions, STATIC_TOKEN, pem]
    secrets_seen += [line for line in pem.splitlines() if not line.startswith("-----")]
    leaked = [secret for secret in secrets_seen if secret and secret in text]
    assert not leaked, f"{len(leaked)} secret(s) in the text"


# --- SMART Backend Services ------------------------------------------------------------------------------------
def test_reads_searches_and_posts_share_one_token(serve, rsa_key):
    state = serve(rsa_key.public_key())
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    _use(gateway)
    _use(gateway)
    assert len(state.token_forms) == 1
    assert state.token_forms[0]["scope"] == "system/*.rs"
    authorizations = [auth for _, _, auth, _ in state.fhir_requests]
    assert authorizations == [f"Bearer {state.every_token[0]}"] * 8
    assert {path for _, path, _, _ in state.fhir_requests} == {"/fhir/Patient/1", "/fhir/Patient", "/fhir/"}


def test_revoked_token_is_renewed_once_and_the_request_succeeds(serve, rsa_key):
    state = serve(rsa_key.public_key())
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    gateway.read(Patient, "1")
    state.live_tokens.clear()  # the server revokes every token
    assert [p.id for p in gateway.search(Patient, {"family": "Test"})] == ["1", "2", "3"]
    assert len(state.token_forms) == 2 and state.unauthorized_count() == 1
    gateway.read(Patient, "1")
    assert len(state.token_forms) == 2


def test_token_is_renewed_before_it_expires(serve, rsa_key):
    state = serve(rsa_key.public_key(), token_lifetime_s=2)  # renewed after half its life
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    gateway.read(Patient, "1")
    time.sleep(1.1)
    gateway.read(Patient, "1")
    assert len(state.token_forms) == 2 and state.unauthorized_count() == 0


def test_a_token_the_server_keeps_refusing_fails_after_one_renewal(serve, rsa_key):
    state = serve(rsa_key.public_key(), refuse_every_token=True)
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    with pytest.raises(FhirAuthError, match="HTTP 401"):
        gateway.read(Patient, "1")
    assert len(state.token_forms) == 2 and state.unauthorized_count() == 2


def test_a_rejected_assertion_shows_the_servers_error(serve, rsa_key):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    state = serve(other_key.public_key())  # the server knows another key for this client
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    with pytest.raises(FhirAuthError) as raised:
        gateway.read(Patient, "1")
    message = str(raised.value)
    assert "invalid_client" in message and "Signature verification failed" in message
    assert state.token_url in message and "HTTP 401" in message
    assert state.fhir_requests == []  # nothing went to the FHIR server without a token


def test_es384_keys_sign_assertions(serve, ec_key):
    state = serve(ec_key.public_key(), algorithm="ES384")
    _use(gateway_from_settings(_smart_settings(state, ec_key)))
    assert len(state.token_forms) == 1 and jwt.get_unverified_header(state.assertions[0])["alg"] == "ES384"


def test_every_assertion_is_fresh_and_short_lived(serve, rsa_key):
    state = serve(rsa_key.public_key())
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    for _ in range(3):
        gateway.read(Patient, "1")
        state.live_tokens.clear()
    claims = [jwt.decode(a, options={"verify_signature": False}) for a in state.assertions]
    assert len({c["jti"] for c in claims}) == len(claims) == 3
    assert all(c["iss"] == c["sub"] == CLIENT_ID and c["aud"] == state.token_url for c in claims)
    assert all(0 < c["exp"] - c["iat"] <= 300 for c in claims)


def test_token_endpoint_from_the_capability_statement(serve, rsa_key):
    state = serve(rsa_key.public_key(), smart_configuration=False)
    gateway_from_settings(_smart_settings(state, rsa_key)).read(Patient, "1")
    assert len(state.token_forms) == 1


def test_configured_token_url_needs_no_discovery(serve, rsa_key):
    state = serve(rsa_key.public_key(), smart_configuration=False, oauth_uris_in_capability=False)
    with pytest.raises(FhirAuthError, match="MEDCONSULT_FHIR_TOKEN_URL"):
        gateway_from_settings(_smart_settings(state, rsa_key)).read(Patient, "1")
    gateway = gateway_from_settings(_smart_settings(state, rsa_key, fhir_token_url=state.token_url))
    gateway.read(Patient, "1")
    assert len(state.token_forms) == 1


def test_the_token_goes_to_the_fhir_servers_origin_only(serve, rsa_key):
    state = serve(rsa_key.public_key())
    state.next_link_base = state.base_url.replace("127.0.0.1", "localhost")  # same process, another origin
    gateway = gateway_from_settings(_smart_settings(state, rsa_key))
    with pytest.raises(FhirAuthError, match="HTTP 401"):
        gateway.search(Patient, {"family": "Test"})
    to_other_origin = [auth for host, _, auth, _ in state.fhir_requests if host.startswith("localhost")]
    assert to_other_origin == [None]


def test_unreachable_token_endpoint_is_reported_as_unavailable(serve, rsa_key):
    state = serve(rsa_key.public_key())
    settings = _smart_settings(state, rsa_key, fhir_token_url="http://127.0.0.1:9/token")
    with pytest.raises(FhirUnavailable, match="token endpoint"):
        gateway_from_settings(settings, retries=0).read(Patient, "1")


def test_configuration_from_the_environment_and_a_key_file(serve, rsa_key, monkeypatch, tmp_path: Path):
    state = serve(rsa_key.public_key())
    key_file = tmp_path / "client.pem"
    key_file.write_text(_pem(rsa_key))
    for name, value in {
        "FHIR_BASE_URL": state.fhir_url,
        "FHIR_AUTH": "smart-backend",
        "FHIR_CLIENT_ID": CLIENT_ID,
        "FHIR_PRIVATE_KEY_FILE": str(key_file),
        "FHIR_KEY_ID": KEY_ID,
        "FHIR_SCOPE": "system/*.read",
    }.items():
        monkeypatch.setenv(f"MEDCONSULT_{name}", value)
    context = ToolContext(settings=Settings())
    assert context.fhir.read(Patient, "1").id == "1"
    assert state.token_forms[0]["scope"] == "system/*.read"


def test_misconfigurations_are_named(rsa_key, ec_key, tmp_path: Path):
    base = {"fhir_base_url": "https://fhir.example/r4", "fhir_auth": "smart-backend", "fhir_key_id": KEY_ID}
    with pytest.raises(FhirAuthError, match="MEDCONSULT_FHIR_CLIENT_ID"):
        gateway_from_settings(Settings(**base, fhir_private_key=_pem(rsa_key)))
    with pytest.raises(FhirAuthError, match="PRIVATE_KEY"):
        gateway_from_settings(Settings(**base, fhir_client_id=CLIENT_ID))
    with pytest.raises(FhirAuthError, match="RS384 needs an RSA key"):
        gateway_from_settings(Settings(**base, fhir_client_id=CLIENT_ID, fhir_private_key=_pem(ec_key)))
    with pytest.raises(FhirAuthError, match="not an unencrypted PEM private key"):
        gateway_from_settings(
            Settings(**base, fhir_client_id=CLIENT_ID, fhir_private_key="-----BEGIN nonsense")
        )
    with pytest.raises(FhirAuthError, match="cannot read"):
        gateway_from_settings(
            Settings(**base, fhir_client_id=CLIENT_ID, fhir_private_key_file=tmp_path / "no")
        )


# --- plain bearer ----------------------------------------------------------------------------------------------
def test_bearer_token_mode_still_works(serve, rsa_key):
    state = serve(rsa_key.public_key())
    settings = Settings(fhir_base_url=state.fhir_url, fhir_bearer_token=STATIC_TOKEN)
    assert settings.effective_fhir_auth == "bearer"
    _use(gateway_from_settings(settings))
    assert state.token_forms == [] and state.unauthorized_count() == 0
    wrong = Settings(fhir_base_url=state.fhir_url, fhir_bearer_token="not-the-token")
    with pytest.raises(FhirAuthError, match="HTTP 401"):
        gateway_from_settings(wrong).read(Patient, "1")


def test_authentication_mode_defaults():
    assert Settings().effective_fhir_auth == "none"
    assert Settings(fhir_bearer_token="x").effective_fhir_auth == "bearer"
    assert Settings(fhir_auth="none", fhir_bearer_token="x").effective_fhir_auth == "none"
    assert gateway_from_settings(Settings()).server.session.auth is None


# --- secrets ---------------------------------------------------------------------------------------------------
def test_no_secret_reaches_logs_reprs_or_errors(serve, rsa_key, caplog):
    caplog.set_level(logging.DEBUG)
    state = serve(rsa_key.public_key(), token_lifetime_s=1)
    settings = _smart_settings(state, rsa_key)
    gateway = gateway_from_settings(settings)
    _use(gateway)
    state.live_tokens.clear()
    gateway.read(Patient, "1")
    time.sleep(0.6)
    gateway.read(Patient, "1")
    errors: list[str] = []
    state.refuse_every_token = True
    with pytest.raises(FhirAuthError) as refused:
        gateway.read(Patient, "1")
    errors.append(str(refused.value))
    state.public_key = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    with pytest.raises(FhirAuthError) as rejected:
        gateway_from_settings(settings).read(Patient, "1")
    errors.append(str(rejected.value))
    state.refuse_every_token = False
    bearer = Settings(fhir_base_url=state.fhir_url, fhir_bearer_token=STATIC_TOKEN)
    bearer_gateway = gateway_from_settings(bearer)
    bearer_gateway.read(Patient, "1")

    assert len(state.every_token) >= 3 and len(state.assertions) >= 4
    texts = [caplog.text, repr(settings), str(settings), repr(gateway), repr(gateway.server.session.auth)]
    texts += [repr(bearer), repr(bearer_gateway), *errors]
    for text in texts:
        _assert_no_secret(text, state, rsa_key)
    assert "obtained a FHIR access token" in caplog.text  # the log does say what happened
