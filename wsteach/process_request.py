"""``process_request`` hooks, chained in one documented order.

websockets' :func:`~websockets.asyncio.server.serve` takes one
``process_request`` hook, which sees each HTTP request before the handshake
and may answer it instead. The kit has three:

1. yours, ``start(..., process_request=...)``;
2. the chat page (``web=True``, :func:`wsteach.web.serve_page`), which answers
   plain HTTP GETs;
3. the client cap (:attr:`wsteach.Limits.max_clients`,
   :func:`wsteach.limits.client_cap`), which refuses WebSocket handshakes past
   the cap.

They always run in that order, through :func:`chain`: the first hook that
returns a response answers the request. The cap looks at WebSocket handshakes
only, so a plain GET gets the page however full the room is, whichever way
the hooks were combined.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

__all__ = ["ProcessRequest", "chain", "wants_websocket"]

ProcessRequest = Callable[
    [ServerConnection, Request], Response | Awaitable[Response | None] | None
]
"""A ``process_request`` hook: sync or async, returning a response or None."""


def chain(*hooks: ProcessRequest | None) -> ProcessRequest | None:
    """Make one ``process_request`` hook that runs ``hooks`` in order.

    The first hook that returns a response (sync or awaited) answers; the
    others don't run. :obj:`None` entries are skipped. With one hook left, it
    is returned as it is; with none, :obj:`None` (no hook at all).
    """
    given = [hook for hook in hooks if hook is not None]
    if not given:
        return None
    if len(given) == 1:
        return given[0]

    async def chained(
        connection: ServerConnection, request: Request
    ) -> Response | None:
        for hook in given:
            response = hook(connection, request)
            if inspect.isawaitable(response):
                response = await response
            if response is not None:
                return response
        return None

    return chained


def wants_websocket(request: Request) -> bool:
    """Tell whether a request asks for a WebSocket, in any ``Upgrade`` header.

    Never raises: repeated or malformed headers are websockets' to judge (it
    answers them with a clean 4xx), so any ``websocket`` token counts.
    """
    return any(
        token.strip().lower() == "websocket"
        for value in request.headers.get_all("Upgrade")
        for token in value.split(",")
    )
