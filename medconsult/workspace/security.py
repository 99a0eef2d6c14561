"""Security headers on every response, and the rule that only a loopback address may serve without sign-in set up.

Pure ASGI (not BaseHTTPMiddleware), so the server-sent event streams pass through unbuffered.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from medconsult.process import is_loopback

# No inline script or style anywhere: the page's one script and stylesheet are files under /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    b"content-security-policy": CONTENT_SECURITY_POLICY.encode(),
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"same-origin",  # no-referrer would make the browser send "Origin: null" on our forms
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
    b"cache-control": b"no-store",  # patient data stays out of shared and browser caches
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in HEADERS.items() if name not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, with_headers)


def check_binding(host: str, users: int, secret_configured: bool) -> None:
    """Serving beyond this machine needs at least one user and a configured signing secret (not the generated
    file); raises ValueError saying what is missing."""
    if is_loopback(host):
        return
    missing = [
        *(["no user can sign in (medconsult workspace add-user NAME)"] if users == 0 else []),
        *(["no signing secret is configured (MEDCONSULT_WORKSPACE_SECRET)"] if not secret_configured else []),
    ]
    if missing:
        raise ValueError(f"refusing to serve on {host}, a non-loopback address: " + "; ".join(missing))
