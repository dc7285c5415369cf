"""The Guard: an ASGI middleware in front of Gradio's routes, for what Gradio does not limit.

- Failed logins: after LOGIN_FAILURES wrong passwords from one address within LOGIN_WINDOW,
  that address's logins are refused (429) until the window has passed, so a password cannot be
  guessed at the speed of the network. Gradio has no limit of its own.
- Login lifetime: Gradio's login tokens never expire (they live as long as the server); the
  Guard forgets a token LOGIN_LIFETIME after its login, and the visitor logs in again.
- Routes Gradio answers without a login even with --auth (the heartbeat, /cancel, /reset,
  /stream/*, the run history and profiling routes): refused (401) unless the request carries a
  valid login, when the app has --auth. /startup-events stays open: launch() itself calls it,
  without a login, and after that first call it does nothing.
- Upload quota: one address may upload at most upload_quota bytes an hour (Gradio's
  max_file_size limits only each file), so a visitor cannot fill the server's disk.

The client's address is uvicorn's (a reverse proxy on this machine is replaced by the
X-Forwarded-For it sends). What is counted is kept in memory, per server process.
"""

from __future__ import annotations

import json
import logging
import time
from collections import defaultdict, deque
from http.cookies import CookieError, SimpleCookie

from impasto.gradio_app.cli import UPLOAD_QUOTA_MB

log = logging.getLogger(__name__)

API = "/gradio_api"
LOGIN_PATHS = ("/login", "/login/")
LOGIN_FAILURES = 5  # wrong passwords from one address ...
LOGIN_WINDOW = 300.0  # ... within this many seconds lock its logins for the rest of the window
LOGIN_LIFETIME = 12 * 3600.0  # seconds a login lasts
# Gradio routes that need no login even when the app has one; the Guard asks for it.
NEEDS_LOGIN = tuple(
    API + route
    for route in (
        "/heartbeat/",
        "/cancel",
        "/reset",
        "/stream/",
        "/run-history/",
        "/profiling/",
    )
)
UPLOAD_PATHS = (API + "/upload", API + "/upload/")
UPLOAD_QUOTA = UPLOAD_QUOTA_MB * 1024**2  # bytes one address may upload per hour
UPLOAD_WINDOW = 3600.0


class Guard:
    """Pure ASGI (not BaseHTTPMiddleware, which would buffer Gradio's event streams)."""

    def __init__(self, app, upload_quota: int = UPLOAD_QUOTA):
        self.app = app
        self.upload_quota = upload_quota
        self.failures: defaultdict[str, deque[float]] = defaultdict(deque)
        self.uploads: defaultdict[str, deque[tuple[float, int]]] = defaultdict(deque)
        self.logins: dict[str, float] = {}  # token -> when it was given

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        gradio = scope.get("app")  # Gradio's App (Starlette sets it): its auth and tokens
        path, method = scope["path"], scope["method"]
        client = (scope.get("client") or ("", 0))[0]
        refusal = None
        if getattr(gradio, "auth", None) is not None:
            if method == "POST" and path in LOGIN_PATHS:
                return await self._login(client, gradio, scope, receive, send)
            logged_in = self._logged_in(gradio, scope)
            if path.startswith(NEEDS_LOGIN) and not logged_in:
                refusal = 401, "Not authenticated"
        if refusal is None and method == "POST" and path in UPLOAD_PATHS:
            refusal = self._count_upload(client, scope)
        if refusal is not None:
            return await _answer(send, *refusal)
        return await self.app(scope, receive, send)

    def _logged_in(self, gradio, scope) -> bool:
        """Whether the request carries a login token Gradio knows; one past LOGIN_LIFETIME is
        taken out of Gradio's tokens first."""
        now = time.monotonic()
        for token, given in list(self.logins.items()):
            if now - given > LOGIN_LIFETIME:
                gradio.tokens.pop(token, None)
                del self.logins[token]
        cookies = _cookies(scope)
        names = (f"access-token-{gradio.cookie_id}", f"access-token-unsecure-{gradio.cookie_id}")
        return any(cookies.get(name) in gradio.tokens for name in names)

    async def _login(self, client: str, gradio, scope, receive, send):
        now = time.monotonic()
        failed = self.failures[client]
        while failed and now - failed[0] > LOGIN_WINDOW:
            failed.popleft()
        if len(failed) >= LOGIN_FAILURES:
            wait = int(LOGIN_WINDOW - (now - failed[0])) + 1
            log.warning("refused a login from %s: %d failed logins", client, len(failed))
            return await _answer(send, 429, f"Too many failed logins; try again in {wait} s.")

        async def watch(message):
            if message["type"] == "http.response.start":
                if message["status"] == 200:
                    failed.clear()
                    for name, value in message.get("headers", []):
                        if name.lower() == b"set-cookie":
                            self._note_login(value.decode("latin-1"), gradio.cookie_id, now)
                elif message["status"] < 500:
                    failed.append(now)
            await send(message)

        await self.app(scope, receive, watch)

    def _note_login(self, header: str, cookie_id: str, now: float) -> None:
        cookie = SimpleCookie()
        try:
            cookie.load(header)
        except CookieError:
            return
        for name, morsel in cookie.items():
            if name.startswith("access-token") and name.endswith(cookie_id):
                self.logins[morsel.value] = now

    def _count_upload(self, client: str, scope) -> tuple[int, str] | None:
        """A refusal when the upload would take the address over its quota, else None (and the
        upload is counted). Counted by Content-Length, which browsers and gradio_client send;
        a body without it is refused, as it could not be counted."""
        headers = dict(scope.get("headers") or [])
        try:
            size = int(headers[b"content-length"])
        except (KeyError, ValueError):
            return 411, "Uploads need a Content-Length."
        now = time.monotonic()
        done = self.uploads[client]
        while done and now - done[0][0] > UPLOAD_WINDOW:
            done.popleft()
        used = sum(n for _, n in done)
        if used + size > self.upload_quota:
            log.warning("refused an upload from %s: over the hourly quota", client)
            return 413, (
                f"Upload quota reached ({self.upload_quota // 1024**2} MB an hour); "
                "try again later."
            )
        done.append((now, size))
        return None


def _cookies(scope) -> dict[str, str]:
    for name, value in scope.get("headers") or []:
        if name == b"cookie":
            cookie = SimpleCookie()
            try:
                cookie.load(value.decode("latin-1"))
            except CookieError:
                return {}
            return {key: morsel.value for key, morsel in cookie.items()}
    return {}


async def _answer(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
