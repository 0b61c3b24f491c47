"""What every request passes before the app sees it: the host check and the login throttle.

Host check: refuse requests addressed to another host name than the app's (DNS rebinding,
cross-site posts).

Without a login, the app trusts whoever can reach it. A web page on `evil.example` whose name
is made to resolve to 127.0.0.1 can reach it from the analyst's own browser, with `Host:
evil.example` (DNS rebinding), and any page can post to it with its own `Origin`. So every
request must name an allowed host, and a request that says where it comes from must come from
one: loopback names by default, plus the name the app was told to serve on (`--host`). Serving
on every interface (0.0.0.0 or ::) allows any host name; use a login (`--auth`) there.

Login throttle: Gradio's login form takes about 600 guesses a second; a client (by address) gets
LOGIN_ATTEMPTS tries per LOGIN_WINDOW_S seconds, then 429 until the window has passed.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from urllib.parse import urlsplit

from starlette.middleware import Middleware
from starlette.responses import PlainTextResponse

LOOPBACK = ("127.0.0.1", "localhost", "::1")
LOGIN_ATTEMPTS, LOGIN_WINDOW_S = 10, 60.0
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


class LoginThrottle:
    """ASGI middleware: at most `attempts` login posts per client address in any `window_s` seconds."""

    def __init__(self, app, attempts: int = LOGIN_ATTEMPTS, window_s: float = LOGIN_WINDOW_S):
        self.app, self.attempts, self.window_s = app, attempts, window_s
        self.recent: dict[str, deque] = defaultdict(deque)
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"].rstrip("/").endswith("/login"):
            client = (scope.get("client") or ("?", 0))[0]
            now = time.monotonic()
            with self.lock:
                recent = self.recent[client]
                while recent and now - recent[0] > self.window_s:
                    recent.popleft()
                wait = self.window_s - (now - recent[0]) if len(recent) >= self.attempts else 0.0
                if not wait:
                    recent.append(now)
            if wait:
                response = PlainTextResponse(f"too many login attempts; try again in {wait:.0f} s", status_code=429,
                                             headers={"Retry-After": str(int(wait) + 1)})
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


def request_guards(host: str) -> list[Middleware]:
    """The middleware for `Blocks.launch(app_kwargs={"middleware": [...]})`."""
    return [Middleware(HostGuard, allowed=allowed_hosts(host)), Middleware(LoginThrottle)]
