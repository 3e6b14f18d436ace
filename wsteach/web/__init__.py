"""The browser chat page, served by the WebSocket server itself.

:func:`serve_page` is a ``process_request`` hook for
:func:`websockets.asyncio.server.serve`: a plain HTTP GET (no ``Upgrade:
websocket`` header) gets the page; a WebSocket handshake goes on as usual. The
page builds its WebSocket URL from its own address, so it works both at
``http://localhost:7890/`` and behind jupyter-server-proxy at ``…/proxy/7890/``.
"""

from __future__ import annotations

import functools
from http import HTTPStatus
from importlib import resources

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

__all__ = ["page", "serve_page"]


@functools.cache
def page() -> bytes:
    """Return the chat page's HTML."""
    return resources.files(__package__).joinpath("chat.html").read_bytes()


def serve_page(connection: ServerConnection, request: Request) -> Response | None:
    """Answer plain HTTP GET requests with the chat page; let WebSockets through."""
    if request.headers.get("Upgrade", "").lower() == "websocket":
        return None
    path = request.path.split("?", 1)[0]
    if path not in ("/", "/index.html"):
        return connection.respond(
            HTTPStatus.NOT_FOUND, "not found: the chat page is at /\n"
        )
    response = connection.respond(HTTPStatus.OK, "")
    response.body = page()
    response.headers["Content-Type"] = "text/html; charset=utf-8"
    response.headers["Content-Length"] = str(len(response.body))
    response.headers["Cache-Control"] = "no-store"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self' ws: wss:"
    )
    return response
