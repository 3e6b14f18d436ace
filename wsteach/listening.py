"""Listen on ``host:port``: the one way :func:`wsteach.start`, ``wsteach serve``,
:mod:`wsteach.measure` and the benchmarks open a server.

websockets' :func:`~websockets.asyncio.server.serve` passes the host to
asyncio, which binds one socket per address the host resolves to. Three
hosts need more care, so that one server is always one port:

- ``"localhost"`` is two interfaces, 127.0.0.1 and ::1. With port 0 each would
  get its own free port, so port 0 listens on 127.0.0.1 only. On a machine
  without IPv6 (common in containers), localhost is 127.0.0.1.
- ``"::"``, ``""`` and :obj:`None` mean every interface. They listen on one
  socket, IPv6 and, where the system allows it, IPv4 too (dual stack): asyncio
  alone would make ``"::"`` IPv6-only, and ``""`` two sockets with two ports.
- Any other host (``"0.0.0.0"``, ``"127.0.0.1"``, a LAN address) is asyncio's.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

__all__ = [
    "EVERYWHERE",
    "LOOPBACK",
    "free_port",
    "free_ports",
    "listen",
    "listening_socket",
]

EVERYWHERE = ("::", "", None)
"""Hosts that mean every interface, listened on with one dual-stack socket."""

BACKLOG = 100
"""Connections waiting to be accepted, as asyncio's default."""

LOOPBACK = "127.0.0.1"
"""Where :func:`free_port` looks by default: this machine only."""


def free_ports(count: int, host: str = LOOPBACK) -> list[int]:
    """Return ``count`` different TCP ports that nothing is bound to on ``host`` now.

    Each is found by binding port 0, as :func:`listen` does, and closing the
    socket. The ports are free when this returns, not reserved: another program
    may take one before yours binds it. Where the consumer takes a socket,
    bind port 0 and pass the socket instead (``start(port=0)`` does); this is
    for those that take a number only (a student's script, ``redis-server``).
    The sockets stay open until all are found, so the ports differ.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sockets = []
    try:
        for _ in range(count):
            sockets.append(socket.socket(family))
            sockets[-1].bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port that nothing is bound to on ``host`` now (see :func:`free_ports`)."""
    return free_ports(1, host)[0]


def listening_socket(host: str | None, port: int) -> socket.socket | None:
    """Make the socket for an "every interface" host; None lets websockets bind.

    ``::``, ``""`` and :obj:`None` listen on IPv6 and, where the system allows
    it, IPv4 in the same socket, so one port serves both.
    """
    if host not in EVERYWHERE:
        return None
    if not socket.has_dualstack_ipv6():
        return _single_stack_socket(host, port)
    return socket.create_server(
        ("::", port), family=socket.AF_INET6, dualstack_ipv6=True, backlog=BACKLOG
    )


def _single_stack_socket(host: str | None, port: int) -> socket.socket:
    """Where one socket can't serve IPv4 and IPv6: "" is IPv4, "::" IPv6 only."""
    if host != "::":
        return socket.create_server(("0.0.0.0", port), backlog=BACKLOG)
    return socket.create_server(("::", port), family=socket.AF_INET6, backlog=BACKLOG)


async def listen(
    handler: Callable[[ServerConnection], Awaitable[None]],
    host: str | None,
    port: int,
    **options: Any,
) -> tuple[Server, str | None]:
    """Serve ``handler`` on ``host:port``; return the server and the host it uses.

    The host returned differs from ``host`` when localhost became 127.0.0.1
    (port 0, or no IPv6). ``options`` go to websockets' ``serve``.

    Raises:
        OSError: If the port can't be bound (``errno.EADDRINUSE`` when it is
            taken).
    """
    sock = listening_socket(host, port)
    if sock is not None:
        try:
            return await serve(handler, sock=sock, **options), host
        except BaseException:  # A bad option, say: don't leave the port bound.
            sock.close()
            raise
    assert host is not None
    if host == "localhost" and port == 0:
        # localhost is two interfaces (127.0.0.1 and ::1); port 0 would give
        # each a different free port. Pick one interface, one port.
        host = "127.0.0.1"
    try:
        return await serve(handler, host, port, **options), host
    except OSError as exc:
        if exc.errno != errno.EADDRNOTAVAIL or host != "localhost":
            raise
    # No IPv6 on this machine (common in containers): IPv4 only.
    return await serve(handler, "127.0.0.1", port, **options), "127.0.0.1"
