"""Run WebSocket servers inside a running Jupyter kernel.

A notebook already runs an asyncio event loop, so a server cell must not call
``asyncio.run()`` or ``run_forever()``: it starts the server with top-level
``await`` and returns at once, and the kernel's loop keeps serving::

    server = await wsteach.start(echo, port=7890)

Students re-run cells all the time. :func:`start` therefore closes a wsteach
server of this process that already holds the port before it binds again, so a
re-run never ends in "address already in use".
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Awaitable, Callable, Generator
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve

from ._handlers import check_handler, handler_name
from .trace import Trace

__all__ = ["PortInUseError", "Running", "running_servers", "start", "stop_all"]

Handler = Callable[[ServerConnection], Awaitable[None]]

# Servers started by this process, by port. Re-running a cell finds them here.
_running: dict[int, Running] = {}


class PortInUseError(OSError):
    """The port is held by another program, or by a server wsteach didn't start."""


class Running:
    """A server started by :func:`start`: its address, clients and trace.

    Attributes:
        server: The :class:`websockets.asyncio.server.Server` doing the work.
        host: The interface it listens on.
        port: The TCP port it listens on (the real one when you asked for 0).
        name: The handler's name, for display.
        trace: What happened on the wire, or :obj:`None` when tracing is off.
    """

    def __init__(
        self, server: Server, host: str, port: int, name: str, trace: Trace | None
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.name = name
        self.trace = trace

    @property
    def url(self) -> str:
        """The address clients connect to, such as ``ws://localhost:7890``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}"

    @property
    def connections(self) -> set[ServerConnection]:
        """The clients connected right now."""
        return self.server.connections

    @property
    def running(self) -> bool:
        """Whether the server still accepts connections."""
        return self.server.is_serving()

    def __repr__(self) -> str:
        count = len(self.connections)
        clients = "1 client" if count == 1 else f"{count} clients"
        state = clients if self.running else "stopped"
        return f"wsteach server '{self.name}' on {self.url} · {state}"

    def show(self) -> None:
        """Display the trace: a sequence diagram in JupyterLab, a table elsewhere."""
        if self.trace is None:
            print("tracing is off for this server: start it with trace=True")
            return
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:  # pragma: no cover - IPython ships with the kit
            print(self.trace.table())
            return
        if get_ipython() is None:
            print(self.trace.table())
        else:
            display(self.trace)

    async def stop(self) -> None:
        """Close every connection with code 1001 (going away) and stop listening.

        Calling it again does nothing.
        """
        if _running.get(self.port) is self:
            del _running[self.port]
        self.server.close()
        await self.server.wait_closed()
        if self.trace is not None:
            self.server.logger.removeHandler(self.trace)

    async def __aenter__(self) -> Running:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()


class start:
    """Start serving ``handler`` on ``host:port`` and return a :class:`Running`.

    Use it with ``await`` (the server keeps running after the cell ends) or with
    ``async with`` (the server stops when the block ends)::

        server = await wsteach.start(echo)
        async with wsteach.start(echo, port=0) as server: ...

    Args:
        handler: An ``async def`` function taking one argument, the connection.
        port: TCP port; 0 picks a free one. Starting on a port that a wsteach
            server of this process holds stops that server first.
        host: Interface to listen on. ``"localhost"`` accepts connections from
            this machine only; ``"0.0.0.0"`` from the whole network.
        trace: Record connects, messages and closes for :meth:`Running.show`.
            Costs a little per frame; turn it off for benchmarks.
        web: Also answer plain HTTP GET requests with the chat page.
        serve_options: Passed to :func:`websockets.asyncio.server.serve`,
            e.g. ``max_size`` or ``ping_interval``.

    Raises:
        TypeError: If ``handler`` isn't an ``async def`` taking one argument.
        PortInUseError: If another program holds the port.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        port: int = 7890,
        host: str = "localhost",
        trace: bool = True,
        web: bool = False,
        **serve_options: Any,
    ) -> None:
        check_handler(handler)
        self.handler = handler
        self.port = port
        self.host = host
        self.trace = trace
        self.web = web
        self.serve_options = serve_options
        self._running: Running | None = None

    def __await__(self) -> Generator[Any, None, Running]:
        return self._start().__await__()

    async def __aenter__(self) -> Running:
        self._running = await self._start()
        return self._running

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._running is not None
        await self._running.stop()

    async def _start(self) -> Running:
        previous = _running.get(self.port)
        if previous is not None:
            await previous.stop()

        options: dict[str, Any] = {"close_timeout": 2, **self.serve_options}
        trace = None
        if self.trace:
            trace = Trace()
            options["logger"] = _trace_logger(trace)
        if self.web:
            from .web import serve_page

            options.setdefault("process_request", serve_page)

        host = self.host
        if host == "localhost" and self.port == 0:
            # localhost is two interfaces (127.0.0.1 and ::1); port 0 would give
            # each a different free port. Pick one interface, one port.
            host = "127.0.0.1"
        try:
            server = await serve(self.handler, host, self.port, **options)
        except OSError as exc:
            if exc.errno == errno.EADDRNOTAVAIL and host == "localhost":
                # No IPv6 on this machine (common in containers): IPv4 only.
                host = "127.0.0.1"
                server = await self._serve_or_explain(host, options)
            else:
                raise _explain(exc, self.port) from None

        port = server.sockets[0].getsockname()[1]
        running = Running(server, host, port, handler_name(self.handler), trace)
        _running[port] = running
        return running

    async def _serve_or_explain(self, host: str, options: dict[str, Any]) -> Server:
        try:
            return await serve(self.handler, host, self.port, **options)
        except OSError as exc:
            raise _explain(exc, self.port) from None


def _trace_logger(trace: Trace) -> logging.Logger:
    """Make a logger that feeds ``trace`` and passes warnings on as usual.

    The logger is not registered with :func:`logging.getLogger`, so it goes
    away with its server. Its DEBUG records (one per frame) go to the trace
    only; records at the level the ``websockets.server`` logger lets through
    (WARNING by default, e.g. "connection handler failed") reach its handlers.
    """
    parent = logging.getLogger("websockets.server")
    logger = _TraceLogger("websockets.server")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(trace)
    logger.addHandler(_Forward(parent))
    return logger


class _TraceLogger(logging.Logger):
    """A logger that doesn't look up which line logged each record.

    :meth:`logging.Logger.findCaller` walks the stack for every record; a
    trace logs two records per message and never shows the caller, so this
    halves what tracing costs.
    """

    def findCaller(
        self, stack_info: bool = False, stacklevel: int = 1
    ) -> tuple[str, int, str, str | None]:
        return "(unknown file)", 0, "(unknown function)", None


class _Forward(logging.Handler):
    """Hand records on to ``parent`` if its effective level lets them through."""

    def __init__(self, parent: logging.Logger) -> None:
        # Frames (DEBUG) are for the trace only: skipping them here is cheap.
        super().__init__(logging.INFO)
        self.parent = parent

    def emit(self, record: logging.LogRecord) -> None:
        if self.parent.isEnabledFor(record.levelno):
            self.parent.handle(record)


def _explain(exc: OSError, port: int) -> OSError:
    """Turn a bind failure into an error that says what to do."""
    if exc.errno == errno.EADDRINUSE:
        error = PortInUseError(
            f"port {port} is already in use by another program "
            "(or by a server this kernel started without wsteach)\n"
            "fix: stop that program, restart the kernel, "
            f"or pick another port: start(handler, port={port + 1}), "
            "or port=0 for any free port"
        )
        error.errno = exc.errno
        return error
    return exc


async def stop_all() -> None:
    """Stop every server and script that this process started.

    Servers are those of :func:`start`, scripts those of :func:`wsteach.run_script`.
    """
    for running in list(_running.values()):
        await running.stop()
    from .scripts import stop_scripts

    await stop_scripts()


def running_servers() -> list[Running]:
    """Return the servers started by :func:`start` that are still running."""
    return list(_running.values())
