"""Refuse requests addressed to another host name than the app's (DNS rebinding, cross-site posts).

Without a login, the app trusts whoever can reach it. A web page on `evil.example` whose name
is made to resolve to 127.0.0.1 can reach it from the analyst's own browser, with `Host:
evil.example` (DNS rebinding), and any page can post to it with its own `Origin`. So every
request must name an allowed host, and a request that says where it comes from must come from
one: loopback names by default, plus the name the app was told to serve on (`--host`). Serving
on every interface (0.0.0.0 or ::) allows any host name; use a login (`--auth`) there.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

LOOPBACK = ("127.0.0.1", "localhost", "::1")
EVERY_INTERFACE = ("0.0.0.0", "::", "")


def allowed_hosts(host: str, more: tuple[str, ...] = ()) -> set[str] | None:
    """The host names accepted when serving on `host` (None: any)."""
    if host in EVERY_INTERFACE:
        return None
    return {*LOOPBACK, host.strip("[]").lower(), *(m.lower() for m in more)}


def _hostname(value: str) -> str:
    """`name:port`, `[::1]:port` or a URL -> the bare host name, lower case."""
    return (urlsplit(value if "//" in value else f"//{value}").hostname or "").lower()


class HostGuard:
    """ASGI middleware: 403 for a request whose Host or Origin names a host not allowed."""

    def __init__(self, app, allowed: set[str] | None):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope, receive, send):
        if self.allowed is not None and scope["type"] in ("http", "websocket"):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            host, origin = _hostname(headers.get("host", "")), headers.get("origin")
            bad = host if host not in self.allowed else (
                _hostname(origin) if origin and origin != "null" and _hostname(origin) not in self.allowed else None)
            if bad is not None:
                if scope["type"] == "websocket":
                    await send({"type": "websocket.close", "code": 1008})
                    return
                message = (f"this app answers only to {', '.join(sorted(self.allowed))}, not {bad!r}; to serve it "
                           "under another name, start it with --host NAME")
                await PlainTextResponse(message, status_code=403)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def host_guard(host: str) -> Middleware:
    """The middleware for `Blocks.launch(app_kwargs={"middleware": [...]})`."""
    return Middleware(HostGuard, allowed=allowed_hosts(host))
