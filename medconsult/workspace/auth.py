"""Sign-in, sessions and CSRF for the workspace.

- Passwords: argon2id hashes (pwdlib); an unknown user costs the same hash check as a wrong password.
- Session: a signed (not encrypted) cookie holding only the user's name, HttpOnly, SameSite=Strict, 12 hours.
- CSRF: every form carries a token derived from the server's secret and the user (before sign-in: a random nonce
  kept in its own short-lived cookie); a POST without the right token, or from another origin, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from pwdlib import PasswordHash
from starlette.requests import Request

SESSION_COOKIE = "medconsult_session"
LOGIN_COOKIE = "medconsult_login"  # the nonce the sign-in form's CSRF token is bound to
SESSION_MAX_AGE_S = 12 * 3600
NAME_PATTERN = r"^[A-Za-z0-9._@-]{1,64}$"
MIN_PASSWORD_LENGTH = 12

_hasher = PasswordHash.recommended()  # argon2id
_DUMMY_HASH = _hasher.hash("not a password of any user")


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password: str, stored_hash: str | None) -> bool:
    """True when the password matches; the same argon2 work whether or not the user exists."""
    valid = _hasher.verify(password, stored_hash or _DUMMY_HASH)
    return valid and stored_hash is not None


def load_secret(configured: str | None, folder: Path) -> str:
    """The signing secret: the configured one, else one generated once and kept (mode 0600) in the folder."""
    if configured:
        return configured
    path = folder / "secret.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


class Sessions:
    def __init__(self, secret: str, secure_cookies: bool = False):
        self._secret = secret.encode()
        self._serializer = URLSafeTimedSerializer(secret, salt="medconsult-session")
        self.secure_cookies = secure_cookies

    def cookie_for(self, user: str) -> str:
        return self._serializer.dumps({"user": user})

    def user(self, request: Request) -> str | None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if not cookie:
            return None
        try:
            return self._serializer.loads(cookie, max_age=SESSION_MAX_AGE_S).get("user")
        except (BadSignature, AttributeError):
            return None

    def csrf_token(self, binding: str) -> str:
        """The token forms carry for a user ("user:NAME") or a sign-in nonce ("login:NONCE")."""
        return hmac.new(self._secret, f"csrf|{binding}".encode(), hashlib.sha256).hexdigest()[:40]

    def csrf_valid(self, binding: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(binding), token)

    def cookie_options(self, max_age: int) -> dict:
        return {"max_age": max_age, "httponly": True, "samesite": "strict", "secure": self.secure_cookies,
                "path": "/"}


def same_origin(request: Request) -> bool:
    """A browser's POST names its origin; one from another site is refused even with a valid session."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None  # no header: a non-browser client (the token still applies)
    host = request.headers.get("host", "")
    return origin.split("://", 1)[-1] == host
