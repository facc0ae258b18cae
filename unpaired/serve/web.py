"""What both web apps share: the page frame, the security headers every response carries, the error pages, and
running an app on uvicorn.

The pages are plain HTML forms with no script: they work in any browser, and the Content-Security-Policy can
forbid scripts altogether.
"""

from __future__ import annotations

import html
import socket
from collections.abc import Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse

from unpaired.serve.uploads import UploadError

SECURITY_HEADERS = [
    (b"content-security-policy",
     b"default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; form-action 'self'; "
     b"frame-ancestors 'none'; base-uri 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
"""No script, no other origin, no framing, no referrer leaving the page; types as declared."""

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
.error { background: #fee; border: 1px solid #c33; padding: .6rem 1rem; }
.row { display: flex; gap: 1.5rem; flex-wrap: wrap; align-items: flex-start; }
figure { margin: 0; text-align: center; }
img.shown { width: 256px; height: auto; image-rendering: pixelated; border: 1px solid #ccc; }
button { font-size: 1.1rem; padding: .5rem 1.5rem; margin-right: .5rem; }
table { border-collapse: collapse; } td, th { border: 1px solid #ccc; padding: .3rem .6rem; }
label { display: block; margin: .5rem 0; }
"""


def escape(value: Any) -> str:
    return html.escape(str(value), quote=True)


def page(title: str, body: str, status: int = 200, error: str | None = None) -> HTMLResponse:
    """A full HTML page; ``title`` and ``error`` are escaped here, ``body`` is HTML its caller escaped."""
    shown = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>'
            f"<body><h1>{escape(title)}</h1>{shown}{body}</body></html>")
    return HTMLResponse(text, status_code=status, headers={"cache-control": "no-store"})


class SecurityHeaders:
    """ASGI middleware adding ``SECURITY_HEADERS`` to every HTTP response (error pages included)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), *SECURITY_HEADERS]}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def error_handlers(title: str, back: str = "/") -> dict[Any, Callable]:
    """Starlette exception handlers that answer a refused upload or an HTTP error with a page saying why."""
    link = f'<p><a href="{escape(back)}">Back</a></p>'

    async def refused_upload(request: Request, error: UploadError) -> HTMLResponse:
        return page(title, link, error.status, error=f"Refused: {error}")

    async def http_error(request: Request, error: HTTPException) -> HTMLResponse:
        return page(title, link, error.status_code, error=str(error.detail))

    return {UploadError: refused_upload, HTTPException: http_error}


class ServeError(ValueError):
    """The server cannot start (the address is taken, the host unknown); the message names host and port."""


def listening_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: any free port), or ``ServeError`` in one line."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise ServeError(f"--host {host}: cannot listen there ({err.strerror or err})") from err
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        sock.close()
        raise ServeError(f"{host}:{port}: cannot listen there ({err.strerror or err}); choose another --port") from err
    return sock


def run_server(app, host: str, port: int, announce: Callable[[str], None] | None = None) -> None:
    """Serve ``app`` on ``host:port`` until interrupted (uvicorn, one process, no server header); ``announce`` gets
    the base URL once the address is bound."""
    import uvicorn

    sock = listening_socket(host, port)
    config = uvicorn.Config(app, log_level="warning", server_header=False, access_log=False)
    if announce is not None:
        shown = f"[{host}]" if ":" in host else host
        announce(f"http://{shown}:{sock.getsockname()[1]}/")
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
