"""Run WebSocket servers inside a running Jupyter kernel.

A notebook already runs an asyncio event loop, so a server cell must not call
``asyncio.run()`` or ``run_forever()``: it starts the server with top-level
``await`` and returns at once, and the kernel's loop keeps serving::

    server = await wsteach.start(echo, port=7890)

Students re-run cells all the time. :func:`start` therefore closes a wsteach
server of this process that already holds the port before it binds again, so a
re-run never ends in "address already in use", and :meth:`Running.stop` never
waits longer than the close timeout for a handler that doesn't return. A port
held by a wsteach server of another kernel gets an error that names that
notebook (see :mod:`wsteach.registry`).
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.server import Server, ServerConnection

from . import internals, registry
from .handler_check import check_handler, handler_name
from .listening import EVERYWHERE, listen
from .pending import Pending
from .process_request import chain
from .registry import Record
from .trace import Trace

__all__ = [
    "PortInUseError",
    "Running",
    "running_servers",
    "start",
    "stop_all",
]

Handler = Callable[[ServerConnection], Awaitable[None]]

# Servers started by this process, by port. Re-running a cell finds them here.
# A server stays here until its handlers have ended, even when its stop() was
# interrupted, so that stop_all() can finish the job.
_running: dict[int, Running] = {}

CLOSE_TIMEOUT = 2.0
"""Seconds :meth:`Running.stop` waits for clients and handlers, unless
``close_timeout`` says otherwise."""


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
        close_timeout: Seconds :meth:`stop` waits before it cancels handlers.
    """

    def __init__(
        self,
        server: Server,
        host: str,
        port: int,
        name: str,
        trace: Trace | None,
        *,
        close_timeout: float = CLOSE_TIMEOUT,
    ) -> None:
        self.server = server
        self.host = host
        self.port = port
        self.name = name
        self.trace = trace
        self.close_timeout = close_timeout
        self._record: Path | None = None

    @property
    def url(self) -> str:
        """The address clients connect to, such as ``ws://localhost:7890``."""
        host = "localhost" if self.host in EVERYWHERE else self.host
        host = f"[{host}]" if ":" in host else host
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
        if self.running:
            state = clients
        elif _running.get(self.port) is self:
            state = "stopping: await server.stop() or wsteach.stop_all() to finish"
        else:
            state = "stopped"
        return f"wsteach server '{self.name}' on {self.url} · {state}"

    def show(self) -> None:
        """Display the trace: a sequence diagram in JupyterLab, a table elsewhere."""
        if self.trace is None:
            print("tracing is off for this server: start it with trace=True")
            return
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is None:
            print(self.trace.table())
        else:
            display(self.trace)

    async def stop(self) -> None:
        """Close every connection with code 1001 (going away) and stop listening.

        Waits until every handler has returned, but no longer than
        :attr:`close_timeout` seconds: then it cancels the handlers still
        running (a handler that never awaits ``recv()`` or ``wait_closed()``
        doesn't notice that its client left) and logs a warning that says which.
        If the stop is interrupted, the server stays in :func:`running_servers`
        and :func:`stop_all` finishes it. Calling it again does nothing.
        """
        self.server.close()
        if not await self._wait_closed(self.close_timeout):
            stuck = [
                task for task in internals.handler_tasks(self.server) if not task.done()
            ]
            # Empty only if the last handlers returned just as the wait timed
            # out, a race no test can provoke on purpose.
            if stuck:  # pragma: no branch - handlers ending at the timeout's instant
                self.server.logger.warning(
                    "%s handler(s) of server '%s' still running %s s after stop: "
                    "cancelling them (a handler returns by itself when it awaits "
                    "websocket.recv(), async for, or websocket.wait_closed())",
                    len(stuck),
                    self.name,
                    f"{self.close_timeout:g}",
                )
                for task in stuck:
                    task.cancel()
            if not await self._wait_closed(min(1.0, self.close_timeout)):
                self.server.logger.warning(
                    "a handler of server '%s' ignored its cancellation and still "
                    "runs; restart the kernel to end it",
                    self.name,
                )
        if _running.get(self.port) is self:
            del _running[self.port]
        registry.forget(self._record)
        self._record = None
        if self.trace is not None:
            self.server.logger.removeHandler(self.trace)

    async def _wait_closed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for the server to close; say whether it did."""
        # asyncio.wait rather than asyncio.timeout: a timeout thrown into this
        # coroutine would stop coverage from seeing the lines after the await.
        waiter = asyncio.ensure_future(self.server.wait_closed())
        try:
            done, _ = await asyncio.wait({waiter}, timeout=timeout)
        finally:
            waiter.cancel()  # Does nothing if it is done.
        return bool(done)

    async def __aenter__(self) -> Running:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


class start(Pending[Running]):
    """Start serving ``handler`` on ``host:port`` and return a :class:`Running`.

    Use it with ``await`` (the server keeps running after the cell ends) or with
    ``async with`` (the server stops when the block ends)::

        server = await wsteach.start(echo)
        async with wsteach.start(echo, port=0) as server: ...

    Without ``await`` nothing starts: the object's repr says so, and Python
    warns when it is dropped.

    Args:
        handler: An ``async def`` function taking one argument, the connection.
        port: TCP port; 0 picks a free one (one port for every interface).
            Starting on a port that a wsteach server of this process holds
            stops that server first.
        host: Interface to listen on. ``"localhost"`` accepts connections from
            this machine only; ``"0.0.0.0"`` from the whole network (IPv4);
            ``"::"``, ``""`` or :obj:`None` from every interface, IPv6 and
            IPv4 on one port, as ``wsteach serve --host ::`` does (see
            :mod:`wsteach.listening`).
        trace: Record connects, messages and closes for :meth:`Running.show`.
            Costs a little per frame; turn it off for benchmarks. Your own
            ``logger=`` still gets every record it would get without tracing.
        web: Also answer plain HTTP GET requests with the chat page. Your own
            ``process_request=`` runs first; when it returns :obj:`None`, the
            page hook answers (see :mod:`wsteach.process_request`). A client
            cap in it (``**limits.serve_options()``) refuses WebSocket
            handshakes only: the page is served even when the room is full.
        serve_options: Passed to :func:`websockets.asyncio.server.serve`,
            e.g. ``max_size``, ``ping_interval`` or ``close_timeout`` (2 s
            here; also how long :meth:`Running.stop` waits for handlers).

    Raises:
        TypeError: If ``handler`` isn't an ``async def`` taking one argument.
        PortInUseError: If another program, or another kernel, holds the port.
    """

    _not_done = "not started"
    _result = "server"

    def __init__(
        self,
        handler: Handler,
        *,
        port: int = 7890,
        host: str | None = "localhost",
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
        super().__init__()

    def _call(self) -> str:
        args = [handler_name(self.handler), f"port={self.port!r}"]
        if self.host != "localhost":
            args.append(f"host={self.host!r}")
        if not self.trace:
            args.append("trace=False")
        if self.web:
            args.append("web=True")
        args += [f"{key}={value!r}" for key, value in self.serve_options.items()]
        return f"wsteach.start({', '.join(args)})"

    async def _undo(self, value: Running) -> None:
        await value.stop()

    async def _run(self) -> Running:
        previous = _running.get(self.port)
        if previous is not None:
            await previous.stop()

        options: dict[str, Any] = {"close_timeout": CLOSE_TIMEOUT, **self.serve_options}
        trace = None
        if self.trace:
            trace = Trace()
            options["logger"] = _trace_logger(trace, options.get("logger"))
        if self.web:
            from .web import serve_page

            # Yours, then the page: the order of wsteach.process_request.
            options["process_request"] = chain(
                options.get("process_request"), serve_page
            )
        server, host = await self._bind(self.handler, options)

        port = server.sockets[0].getsockname()[1]
        running = Running(
            server,
            "" if host is None else host,
            port,
            handler_name(self.handler),
            trace,
            close_timeout=options["close_timeout"] or 10 * CLOSE_TIMEOUT,
        )
        _running[port] = running
        running._record = registry.remember(
            port=port, host=running.host, url=running.url, name=running.name
        )
        return running

    async def _bind(
        self, handler: Handler, options: dict[str, Any]
    ) -> tuple[Server, str | None]:
        """Listen on ``self.host``; return the server and the host it really uses."""
        try:
            return await listen(handler, self.host, self.port, **options)
        except OSError as exc:
            raise _explain(exc, self.port) from None


def _trace_logger(
    trace: Trace, own: logging.Logger | logging.LoggerAdapter[Any] | None = None
) -> logging.Logger:
    """Make a logger that feeds ``trace`` and passes records on as usual.

    The logger is not registered with :func:`logging.getLogger`, so it goes
    away with its server. Its DEBUG records (one per frame) go to the trace;
    without ``own``, records at the level the ``websockets.server`` logger lets
    through (WARNING by default, e.g. "connection handler failed") reach its
    handlers. With ``own`` (the caller's ``logger=``), every record its level
    lets through, frames included, goes there instead.
    """
    logger = _TraceLogger("websockets.server")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(trace)
    if own is None:
        # Frames (DEBUG) are for the trace only: skipping them here is cheap.
        logger.addHandler(
            _Forward(logging.getLogger("websockets.server"), logging.INFO)
        )
    else:
        logger.addHandler(_Forward(own, logging.NOTSET))
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

    def __init__(
        self, parent: logging.Logger | logging.LoggerAdapter[Any], level: int
    ) -> None:
        super().__init__(level)
        self.parent = parent
        # A LoggerAdapter decides on levels, its logger has the handlers.
        self.target: logging.Logger = getattr(parent, "logger", parent)

    def emit(self, record: logging.LogRecord) -> None:
        if self.parent.isEnabledFor(record.levelno):
            self.target.handle(record)


def _explain(exc: OSError, port: int) -> OSError:
    """Turn a bind failure into an error that says what to do.

    A port held by a wsteach server of another kernel names that notebook.
    """
    if exc.errno != errno.EADDRINUSE:
        return exc
    other = registry.holder(port)
    if other is not None:
        message = (
            f"port {port} is already in use by a wsteach server in {other.where}\n"
            "fix: stop it there (await server.stop(), or await wsteach.stop_all(), "
            "in that notebook), or shut that kernel down "
            "(Kernel → Shut Down Kernel in that notebook), "
            f"or pick another port here: start(handler, port={port + 1}), "
            "or port=0 for any free port"
        )
        if not other.kernel:
            message = (
                f"port {port} is already in use by a wsteach server in {other.where}\n"
                f"fix: stop that program (Ctrl+C where it runs, or kill {other.pid}), "
                f"or pick another port here: start(handler, port={port + 1}), "
                "or port=0 for any free port"
            )
    else:
        message = (
            f"port {port} is already in use by another program "
            "(or by a server this kernel started without wsteach)\n"
            "fix: stop that program, restart the kernel, "
            f"or pick another port: start(handler, port={port + 1}), "
            "or port=0 for any free port"
        )
    error = PortInUseError(message)
    error.errno = exc.errno
    return error


async def stop_all() -> None:
    """Stop every server and script that this process started.

    Servers are those of :func:`start`, scripts those of :func:`wsteach.run_script`.
    Servers whose stop was interrupted (Kernel → Interrupt) are stopped too.
    """
    for running in list(_running.values()):
        await running.stop()
    from .scripts import stop_scripts

    await stop_scripts()


def running_servers(*, everywhere: bool = False) -> list[Running | Record]:
    """Return the servers started by :func:`start` that haven't stopped yet.

    Args:
        everywhere: Also list the wsteach servers of this user's other kernels
            (and scripts), as :class:`~wsteach.registry.Record` objects whose
            repr says where they run, e.g. ``wsteach server 'echo' on
            ws://localhost:7890 · in another kernel: 00-start-here.ipynb (pid
            1234)``. Stop those in their own notebook.
    """
    here: list[Running | Record] = list(_running.values())
    if everywhere:
        here += registry.others()
    return here
