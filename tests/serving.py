"""Helpers of the web tests: tiny runs to serve, an app on a real uvicorn server in a thread, and plain HTTP
requests (standard library only, so the requests are exactly what is written here)."""

from __future__ import annotations

import contextlib
import http.client
import secrets
import socket
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

from conftest import make_image_folders

STUDY_METHODS = ("unit", "cyclegan", "munit")
"""Runs of the web tests: two one-style methods and one with a style space (random styles, references)."""


def train_tiny_runs(root: Path, methods: tuple[str, ...] = STUDY_METHODS) -> dict[str, Path]:
    """A 2-step run of each method on 16 px shapes, in ``root/run_<method>``; ``root/data`` holds the data."""
    from test_every_method import tiny_config

    from unpaired.training.trainer import Trainer

    data = make_image_folders(root / "data")
    runs = {}
    for method in methods:
        Trainer(tiny_config(method, data, 2), root / f"run_{method}").fit()
        runs[method] = root / f"run_{method}"
    return runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def live_server(app) -> Iterator[str]:
    """Serve the ASGI ``app`` with uvicorn on 127.0.0.1 in a thread; yields its base URL (no trailing slash)."""
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(app, log_level="warning", server_header=False, access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def request(url: str, method: str = "GET", body: bytes | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One HTTP request, redirects not followed: (status, headers in lower case, body)."""
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)
    try:
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def post_form(url: str, fields: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return request(url, "POST", urllib.parse.urlencode(fields).encode(),
                   {"content-type": "application/x-www-form-urlencoded"})


def post_multipart(url: str, fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[int, dict, bytes]:
    """POST multipart/form-data: text ``fields`` and ``files`` as name -> (file name, content)."""
    boundary = secrets.token_hex(12)
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts += [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
              f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n"
              for name, (filename, content) in files.items()]
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return request(url, "POST", body, {"content-type": f"multipart/form-data; boundary={boundary}"})
