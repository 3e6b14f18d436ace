"""Named WebSocket clients for notebooks and tests.

A :class:`Client` reads in the background from the moment it connects, so
nothing the server sends is missed while a cell does something else: every
message lands in :attr:`Client.received`, in order, and :meth:`Client.recv`
hands them out one by one.

The client's name travels in the ``X-Wsteach-Name`` request header, so a
server's trace can label the connection "alice" instead of "client 1"
(:mod:`wsteach.names` encodes it, and decodes it on the server).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import urllib.parse
from collections.abc import Iterable
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Data

from .internals import close_exc
from .names import NAME_HEADER, encode_name
from .pending import Pending
from .timeouts import TIMEOUT_FACTOR

__all__ = ["Client", "connect", "crowd"]

DEFAULT_TIMEOUT = 5.0 * TIMEOUT_FACTOR


class Client:
    """A connected client that keeps everything it receives.

    Attributes:
        connection: The websockets :class:`ClientConnection` underneath.
        name: The name given to :func:`connect`, or ``"client"``.
        url: The server's address.
        received: Every message received so far, in order.
    """

    def __init__(
        self, connection: ClientConnection, name: str | None, url: str
    ) -> None:
        self.connection = connection
        self.name = name or "client"
        self.url = url
        self.received: list[Data] = []
        self._next = 0  # Index in received of the message recv() returns next.
        self._changed = asyncio.Event()
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                self.received.append(message)
                self._changed.set()
        except ConnectionClosed:
            pass  # The close code and reason stay on the connection.
        finally:
            self._changed.set()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<Client {self.name!r} · {state} · {len(self.received)} received>"

    async def send(self, message: Data) -> None:
        """Send a text (``str``) or binary (``bytes``) message."""
        await self.connection.send(message)

    async def recv(self, timeout: float | None = None) -> Data:
        """Return the next message not returned yet, waiting if none has come.

        Args:
            timeout: Seconds to wait; defaults to 5 (times ``WSTEACH_TIMEOUT_FACTOR``).

        Raises:
            TimeoutError: If nothing arrives in time; the message says who
                waited, how long, and what to check.
            ConnectionClosed: If the connection closed and every message
                received before that has been returned already.
        """
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._next >= len(self.received):
            if self._reader.done():
                raise self._closed_error()
            self._changed.clear()
            try:
                async with asyncio.timeout_at(deadline):
                    await self._changed.wait()
            except TimeoutError:
                raise TimeoutError(self._timeout_message(timeout)) from None
        message = self.received[self._next]
        self._next += 1
        return message

    def _timeout_message(self, timeout: float) -> str:
        got = len(self.received)
        so_far = "nothing" if got == 0 else f"{got} message{'s' if got > 1 else ''}"
        return (
            f"{self.name} waited {timeout:g} s for a message from {self.url} "
            f"and none came ({so_far} received in all)\n"
            "check that the server is still running and that its handler replies "
            "to this client with await websocket.send(...)"
        )

    def _closed_error(self) -> ConnectionClosed:
        error = close_exc(self.connection)
        error.add_note(
            f"{self.name} was waiting for a message, but the connection is closed "
            f"and all {len(self.received)} messages received were read already"
        )
        return error

    @property
    def closed(self) -> bool:
        """Whether the connection is closed."""
        return self._reader.done()

    @property
    def close_code(self) -> int | None:
        """The close code, once the connection is closed."""
        return self.connection.close_code

    @property
    def close_reason(self) -> str | None:
        """The close reason, once the connection is closed."""
        return self.connection.close_reason

    async def wait_closed(self, timeout: float | None = None) -> None:
        """Wait until the server closes the connection."""
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        try:
            async with asyncio.timeout(timeout):
                await asyncio.shield(self._reader)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} waited {timeout:g} s for the server to close the "
                "connection, and it is still open"
            ) from None

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop reading."""
        await self.connection.close(code, reason)
        await self._reader

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


# errno values that mean "this address can't be used from here" (no IPv6 on
# this machine, for example), rather than anything about the server.
_UNUSABLE_ADDRESS = {
    errno.EADDRNOTAVAIL,
    errno.EAFNOSUPPORT,
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
}


def nothing_listening(errnos: Iterable[int | None]) -> bool:
    """Tell from the errno of each address tried whether nothing listens there.

    True when at least one address refused the connection (``ECONNREFUSED``:
    the host is up, no program listens on the port) and every other address
    was unusable from this machine. An unreachable network or host alone, a
    timeout, or an unknown error is something else: not a missing server.
    """
    errnos = list(errnos)
    return errno.ECONNREFUSED in errnos and all(
        code == errno.ECONNREFUSED or code in _UNUSABLE_ADDRESS for code in errnos
    )


async def _errnos(exc: OSError, url: str) -> list[int | None]:
    """Return the errno of each address a failed connection tried.

    With two addresses (``localhost`` is ``::1`` and ``127.0.0.1``), Python
    3.11 raises one plain ``OSError("Multiple exceptions: ...")`` without an
    errno; then each address is tried again, alone, to learn its errno.
    """
    if exc.errno is not None:
        return [exc.errno]
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    loop = asyncio.get_running_loop()
    try:
        addresses = await loop.getaddrinfo(
            parts.hostname, port, type=socket.SOCK_STREAM
        )
    except OSError:
        return [None]
    codes: list[int | None] = []
    for family, _, proto, _, address in addresses:
        try:
            async with asyncio.timeout(1):
                _, writer = await asyncio.open_connection(
                    address[0], address[1], family=family, proto=proto
                )
        except OSError as error:
            codes.append(error.errno)
        except TimeoutError:  # pragma: no cover - needs a host that never answers
            codes.append(errno.ETIMEDOUT)
        else:  # Listening now: a server that just started.
            writer.close()
            codes.append(0)
    return codes


async def _open(url: str, name: str | None, options: dict[str, Any]) -> Client:
    if name is not None:
        headers = dict(options.pop("additional_headers", None) or {})
        headers[NAME_HEADER] = encode_name(name)
        options["additional_headers"] = headers
    try:
        connection = await ws_connect(url, **options)
    except OSError as exc:
        if isinstance(exc, socket.gaierror | TimeoutError) or not nothing_listening(
            await _errnos(exc, url)
        ):
            raise
        raise ConnectionRefusedError(
            errno.ECONNREFUSED,
            f"nothing is listening at {url}: is the server running? "
            "run the cell that starts it, and check the port",
        ) from None
    return Client(connection, name, url)


class connect(Pending[Client]):
    """Connect a :class:`Client` to ``url``.

    Use it with ``await`` (close it yourself, or let the server's stop close it)
    or with ``async with`` (closed when the block ends)::

        alice = await wsteach.connect(server.url, name="alice")
        async with wsteach.connect(server.url, name="bob") as bob: ...

    Without ``await`` nothing connects: the object's repr says so, and Python
    warns when it is dropped.

    Args:
        url: The server's address, e.g. ``ws://localhost:7890``.
        name: Shown in the server's trace and in error messages.
        connect_options: Passed to :func:`websockets.asyncio.client.connect`.

    Raises:
        ConnectionRefusedError: If no server listens at ``url``.
    """

    _not_done = "not connected"

    def __init__(self, url: str, *, name: str | None = None, **connect_options: Any):
        self.url = url
        self.name = name
        self.options = connect_options
        self._result = name if name and name.isidentifier() else "client"
        super().__init__()

    def _call(self) -> str:
        args = [repr(self.url)]
        if self.name is not None:
            args.append(f"name={self.name!r}")
        args += [f"{key}={value!r}" for key, value in self.options.items()]
        return f"wsteach.connect({', '.join(args)})"

    async def _run(self) -> Client:
        return await _open(self.url, self.name, dict(self.options))

    async def _undo(self, value: Client) -> None:
        await value.close()


class crowd(Pending[tuple[Client, ...]]):
    """Connect one :class:`Client` per name, one after the other, in order.

    ::

        async with wsteach.crowd(server.url, "alice", "bob", "carol") as (a, b, c):
            ...

    Awaiting it returns the tuple of clients instead; close them yourself.
    """

    _not_done = "not connected"

    def __init__(self, url: str, *names: str, **connect_options: Any) -> None:
        if not names:
            raise TypeError("crowd needs at least one name: crowd(url, 'alice', 'bob')")
        self.url = url
        self.names = names
        self.options = connect_options
        self._result = ", ".join(n if n.isidentifier() else "_" for n in names)
        super().__init__()

    def _call(self) -> str:
        args = [repr(self.url), *map(repr, self.names)]
        args += [f"{key}={value!r}" for key, value in self.options.items()]
        return f"wsteach.crowd({', '.join(args)})"

    async def _run(self) -> tuple[Client, ...]:
        clients: list[Client] = []
        try:
            for name in self.names:
                clients.append(await _open(self.url, name, dict(self.options)))
        except BaseException:
            await asyncio.gather(*(client.close() for client in clients))
            raise
        return tuple(clients)

    async def _undo(self, value: tuple[Client, ...]) -> None:
        # One after the other, so that a trace of the scenario reads the same every run.
        for client in value:
            await client.close()
