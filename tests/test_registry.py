"""registry: wsteach servers of other kernels, named by notebook, never trusted stale.

The end-to-end tests run two notebook kernels of one real ``jupyter server``,
started through its REST API the way JupyterLab starts them (so each kernel
gets ``JPY_SESSION_NAME`` from jupyter_server itself), and run code in them
over the kernel's WebSocket channel, as JupyterLab does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import psutil
import pytest
import pytest_asyncio
from browser.conftest import serving_until_stopped
from conftest import measured
from utils import FACTOR
from websockets.asyncio.client import connect as ws_connect

import wsteach
from wsteach import registry
from wsteach.listening import free_port
from wsteach.registry import Record


async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)


@pytest.fixture(autouse=True)
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Records of this test process go to a folder of their own."""
    folder = tmp_path / "runtime"
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(folder))
    return folder


def records(folder: Path) -> list[Path]:
    return sorted(folder.glob(f"{registry.PREFIX}*.json"))


# One process, no kernel ----------------------------------------------------


async def test_start_records_and_stop_forgets(runtime_dir: Path):
    """A running server has a record with its port, pid and host; stop removes it."""
    server = await wsteach.start(pong, port=0)
    [path] = records(runtime_dir)
    record = Record(**json.loads(path.read_text()))
    assert (record.port, record.pid, record.host) == (
        server.port,
        os.getpid(),
        "127.0.0.1",
    )
    assert record.url == server.url and record.name == "pong"
    assert record.notebook is None and not record.kernel
    assert registry.is_live(record)
    await server.stop()
    assert records(runtime_dir) == []


async def test_notebook_comes_from_jpy_session_name(runtime_dir, monkeypatch):
    """The notebook path is what jupyter_server puts in JPY_SESSION_NAME."""
    monkeypatch.setenv("JPY_SESSION_NAME", "/home/you/notebooks/02-echo.ipynb")
    server = await wsteach.start(pong, port=0)
    [path] = records(runtime_dir)
    record = Record(**json.loads(path.read_text()))
    assert record.notebook == "/home/you/notebooks/02-echo.ipynb"
    assert repr(replace(record, kernel=True)) == (
        f"wsteach server 'pong' on {server.url} · in another kernel: "
        f"02-echo.ipynb (pid {os.getpid()})"
    )


def test_where_without_notebook():
    """Without a notebook, a record names the kernel or process by pid."""
    record = Record(
        7890, "localhost", "ws://localhost:7890", "echo", 12, 0.0, None, True
    )
    assert record.where == "another kernel (pid 12)"
    assert replace(record, kernel=False).where == "another process (pid 12)"


def test_exit_removes_records(runtime_dir: Path, tmp_path: Path):
    """A process that exits without stopping its server leaves no record."""
    script = tmp_path / "serve.py"
    script.write_text(
        "import asyncio, wsteach\n"
        "async def main():\n"
        "    await wsteach.start(wsteach.echo, port=0)\n"
        "asyncio.run(main())\n"
    )
    done = subprocess.run(
        [sys.executable, str(script)], timeout=60, check=False, env=measured()
    )
    assert done.returncode == 0
    assert records(runtime_dir) == []


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A plain listening socket: a port held by a program that isn't wsteach."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock


def write_record(folder: Path, record: Record) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{registry.PREFIX}{record.pid}-{record.port}.json"
    path.write_text(json.dumps(asdict(record)))
    return path


@pytest.fixture
def sleeper() -> Iterator[psutil.Process]:
    """Another live process that listens on nothing."""
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        yield psutil.Process(process.pid)
    finally:
        process.kill()
        process.wait()


async def wait_dead(pid: int) -> None:
    """Wait until ``pid`` has exited (a zombie counts: it holds no sockets)."""
    deadline = time.monotonic() + 30 * FACTOR
    while True:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        assert time.monotonic() < deadline, f"process {pid} is still running"
        await asyncio.sleep(0.05)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


async def test_stale_records_are_removed_not_trusted(runtime_dir, listener, sleeper):
    """Records of a dead pid, a reused pid, or a pid not on the port don't name anyone."""
    port = listener.getsockname()[1]
    base = Record(
        port, "localhost", f"ws://localhost:{port}", "echo", 0, 0.0, "a.ipynb", True
    )
    started = sleeper.create_time()
    stale = [
        write_record(runtime_dir, replace(base, pid=dead_pid())),
        # Alive and the same process, but it doesn't listen on the port.
        write_record(runtime_dir, replace(base, pid=sleeper.pid, started=started)),
    ]
    # The pid is alive, but it is a later process than the one recorded.
    reused = replace(base, pid=sleeper.pid, started=started - 3600, port=port + 1)
    stale.append(write_record(runtime_dir, reused))
    (runtime_dir / f"{registry.PREFIX}garbage.json").write_text("{not json")
    with pytest.raises(wsteach.PortInUseError) as info:
        await wsteach.start(pong, port=port, host="127.0.0.1")
    assert "already in use by another program" in str(info.value)
    assert "a.ipynb" not in str(info.value)
    assert registry.others() == []
    assert not any(path.exists() for path in stale)


async def test_script_holding_the_port_is_named_by_pid(runtime_dir, tmp_path):
    """A port held by wsteach in a plain script names its pid and how to stop it."""
    port = free_port()
    ready = tmp_path / "ready"
    script = tmp_path / "serve.py"
    script.write_text(
        "import asyncio, pathlib, sys, wsteach\n"
        "async def main():\n"
        f"    await wsteach.start(wsteach.echo, port={port})\n"
        f"    pathlib.Path({str(ready)!r}).write_text('ok')\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(script), env=measured()
    )
    try:
        deadline = time.monotonic() + 30 * FACTOR
        while not ready.exists():
            assert process.returncode is None and time.monotonic() < deadline
            await asyncio.sleep(0.05)
        with pytest.raises(wsteach.PortInUseError) as info:
            await wsteach.start(pong, port=port)
        assert str(info.value).splitlines() == [
            f"port {port} is already in use by a wsteach server in another process "
            f"(pid {process.pid})",
            f"fix: stop that program (Ctrl+C where it runs, or kill {process.pid}), "
            f"or pick another port here: start(handler, port={port + 1}), "
            "or port=0 for any free port",
        ]
        [other] = [
            server
            for server in wsteach.running_servers(everywhere=True)
            if isinstance(server, Record)
        ]
        assert other.pid == process.pid and other.port == port
    finally:
        process.kill()
        await process.wait()


def test_unwritable_runtime_dir_still_serves(monkeypatch, tmp_path, caplog):
    """A runtime folder that can't be written costs the record, not the server."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(blocker / "runtime"))

    async def main() -> None:
        server = await wsteach.start(pong, port=0)
        async with wsteach.connect(server.url) as client:
            await client.send("x")
            assert await client.recv() == "Pong: x"
        await server.stop()

    asyncio.run(main())
    assert "can't record the server" in caplog.text


# Two kernels of one Jupyter server ------------------------------------------


@dataclass
class Jupyter:
    url: str
    token: str
    root_dir: Path
    runtime_dir: Path

    def api(self, method: str, path: str, body: object = None) -> dict:
        request = urllib.request.Request(
            self.url + path,
            method=method,
            headers={
                "Authorization": f"token {self.token}",
                "Content-Type": "application/json",
            },
            data=None if body is None else json.dumps(body).encode(),
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        return json.loads(data) if data else {}


@pytest.fixture(scope="module")
def jupyter(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jupyter]:
    """``jupyter server`` on a free port, with fresh config and runtime folders."""
    home = tmp_path_factory.mktemp("jupyter")
    root_dir, runtime_dir = home / "root", home / "runtime"
    root_dir.mkdir()
    port, token = free_port(), secrets.token_hex(16)
    # Measured: its kernels run the branch of server.py that names another
    # kernel's notebook, which no single process can reach.
    env = measured(
        {
            **os.environ,
            "JUPYTER_CONFIG_DIR": str(home / "config"),
            "JUPYTER_RUNTIME_DIR": str(runtime_dir),
        }
    )
    env.pop("JPY_SESSION_NAME", None)
    log = (home / "server.log").open("wb")
    command = [
        str(Path(sys.executable).with_name("jupyter")),
        "server",
        "--no-browser",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.root_dir={root_dir}",
        f"--IdentityProvider.token={token}",
    ]
    if getattr(os, "geteuid", lambda: 1)() == 0:  # root: Jupyter wants a flag
        command.append("--allow-root")
    process = subprocess.Popen(
        command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    server = Jupyter(f"http://127.0.0.1:{port}/", token, root_dir, runtime_dir)
    with serving_until_stopped(process, server, log):
        yield server


class Notebook:
    """A notebook's kernel in a Jupyter server, driven like JupyterLab does."""

    def __init__(self, jupyter: Jupyter, path: str) -> None:
        self.jupyter = jupyter
        self.path = path
        self.session = uuid.uuid4().hex

    async def open(self) -> None:
        # What JupyterLab does when it opens a notebook: one session per path.
        model = await asyncio.to_thread(
            self.jupyter.api,
            "POST",
            "api/sessions",
            {"path": self.path, "name": self.path, "type": "notebook",
             "kernel": {"name": "python3"}},
        )  # fmt: skip
        self.session_id = model["id"]
        self.kernel_id = model["kernel"]["id"]
        ws_url = self.jupyter.url.replace("http", "ws", 1)
        self.channels = await ws_connect(
            f"{ws_url}api/kernels/{self.kernel_id}/channels?session_id={self.session}",
            additional_headers={"Authorization": f"token {self.jupyter.token}"},
            max_size=None,
        )
        self.pid = int(await self.run("import os; print(os.getpid())"))

    async def run(self, code: str, timeout: float = 60) -> str:
        """Run a cell; return its streams, results and error, as the notebook shows."""
        msg_id = uuid.uuid4().hex
        await self.channels.send(
            json.dumps(
                {
                    "header": {
                        "msg_id": msg_id,
                        "msg_type": "execute_request",
                        "username": "student",
                        "session": self.session,
                        "version": "5.3",
                    },
                    "parent_header": {},
                    "metadata": {},
                    "content": {"code": code, "silent": False, "store_history": True,
                                "user_expressions": {}, "allow_stdin": False},
                    "channel": "shell",
                    "buffers": [],
                }
            )
        )  # fmt: skip
        parts: list[str] = []
        async with asyncio.timeout(timeout * FACTOR):
            while True:
                msg = json.loads(await self.channels.recv())
                if msg.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    parts.append(content["text"])
                elif kind == "error":
                    parts.append(f"{content['ename']}: {content['evalue']}\n")
                elif kind in ("execute_result", "display_data"):
                    parts.append(content["data"].get("text/plain", "") + "\n")
                elif kind == "status" and content["execution_state"] == "idle":
                    return "".join(parts).strip()

    async def close(self) -> None:
        await self.channels.close()
        # The session is gone already when its kernel was killed and restarted.
        with contextlib.suppress(urllib.error.HTTPError):
            await asyncio.to_thread(
                self.jupyter.api, "DELETE", f"api/sessions/{self.session_id}"
            )


@pytest_asyncio.fixture
async def notebooks(jupyter: Jupyter) -> AsyncIterator[tuple[Notebook, Notebook]]:
    """Two notebooks open in one Jupyter server, each with its own kernel."""
    first = Notebook(jupyter, "00-start-here.ipynb")
    second = Notebook(jupyter, "02-echo-server.ipynb")
    await asyncio.gather(first.open(), second.open())
    for notebook in (first, second):
        await notebook.run("import wsteach")
    try:
        yield first, second
    finally:
        await asyncio.gather(first.close(), second.close())


async def test_port_held_by_another_kernel_names_its_notebook(notebooks, jupyter):
    """The second kernel's start names the first notebook; once it stops, it starts."""
    first, second = notebooks
    port = free_port()
    started = await first.run(
        f"server = await wsteach.start(wsteach.echo, port={port})\nserver"
    )
    assert started == f"wsteach server 'echo' on ws://localhost:{port} · 0 clients"
    refused = await second.run(
        f"server = await wsteach.start(wsteach.echo, port={port})"
    )
    assert refused.splitlines() == [
        f"PortInUseError: port {port} is already in use by a wsteach server in "
        f"another kernel: 00-start-here.ipynb (pid {first.pid})",
        "fix: stop it there (await server.stop(), or await wsteach.stop_all(), in "
        "that notebook), or shut that kernel down (Kernel → Shut Down Kernel in "
        f"that notebook), or pick another port here: start(handler, port={port + 1}), "
        "or port=0 for any free port",
    ]
    listed = await second.run("wsteach.running_servers(everywhere=True)")
    assert listed == (
        f"[wsteach server 'echo' on ws://localhost:{port} · in another kernel: "
        f"00-start-here.ipynb (pid {first.pid})]"
    )
    assert await first.run("await server.stop()") == ""
    assert records(jupyter.runtime_dir) == []
    started = await second.run(
        f"server = await wsteach.start(wsteach.echo, port={port})\nserver"
    )
    assert started == f"wsteach server 'echo' on ws://localhost:{port} · 0 clients"
    await second.run("await wsteach.stop_all()")


async def test_killed_kernel_leaves_no_record_that_blocks(notebooks, jupyter, listener):
    """After SIGKILL of the first kernel, its record names no one and goes away."""
    first, second = notebooks
    port = free_port()
    await first.run(f"server = await wsteach.start(wsteach.echo, port={port})")
    [path] = records(jupyter.runtime_dir)
    os.kill(first.pid, signal.SIGKILL)
    await wait_dead(first.pid)
    assert path.exists()  # A killed process can't clean up after itself.
    # Say a program that isn't wsteach took another port the dead kernel had:
    # the error is about that program, not about the dead kernel.
    busy = listener.getsockname()[1]
    record = json.loads(path.read_text())
    moved = write_record(jupyter.runtime_dir, Record(**{**record, "port": busy}))
    refused = await second.run(f"await wsteach.start(wsteach.echo, port={busy})")
    assert refused.startswith(
        f"PortInUseError: port {busy} is already in use by another program"
    )
    assert not moved.exists()
    started = await second.run(
        f"server = await wsteach.start(wsteach.echo, port={port})\nserver"
    )
    assert started == f"wsteach server 'echo' on ws://localhost:{port} · 0 clients"
    assert not path.exists()
    assert await second.run("wsteach.running_servers(everywhere=True)") == (
        f"[wsteach server 'echo' on ws://localhost:{port} · 0 clients]"
    )
    await second.run("await wsteach.stop_all()")


async def test_shut_down_kernel_removes_its_record(notebooks, jupyter):
    """Kernel → Shut Down Kernel (no stop() first) removes the record on exit."""
    first, second = notebooks
    port = free_port()
    await first.run(f"server = await wsteach.start(wsteach.echo, port={port})")
    [path] = records(jupyter.runtime_dir)
    # What JupyterLab's Kernel → Shut Down Kernel sends.
    await asyncio.to_thread(jupyter.api, "DELETE", f"api/kernels/{first.kernel_id}")
    await wait_dead(first.pid)
    assert not path.exists()
    started = await second.run(
        f"server = await wsteach.start(wsteach.echo, port={port})\nserver"
    )
    assert started == f"wsteach server 'echo' on ws://localhost:{port} · 0 clients"
    await second.run("await wsteach.stop_all()")
