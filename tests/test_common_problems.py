"""Every message quoted in docs/learners/common-problems.md, reproduced for real.

Each problem on the page starts with ``<!-- problem: some-id -->`` and quotes
what the learner sees in fenced ``text`` blocks. For every id, a reproducer
below makes the mistake the page describes, with the installed Python and
websockets, and collects what a learner would see: most of them run the
learner's code in a real IPython kernel (the same kind JupyterLab runs), so
tracebacks, warnings and logged errors look exactly as they do in a notebook.

A quote matches when its lines appear, in order and contiguous, in that output.
In a quote, a line holding only ``…`` stands for any number of lines (the
middle of a traceback), and ``…`` inside a line stands for any text (a
temporary file name). The page uses port 7890; reproducers use free ports and
write them back as 7890 (and the port after it as 7891).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import ssl
import sys
import textwrap
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from conftest import measured
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from playwright.async_api import async_playwright
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.datastructures import Headers
from websockets.http11 import Response

from wsteach.listening import free_port

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "learners" / "common-problems.md"
DOC_PORT = 7890
ELLIPSIS = "…"
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
PROBLEM = re.compile(r"^<!-- problem: ([a-z0-9-]+) -->$", re.MULTILINE)
# A quote may hold on some Pythons only: ```text python>=3.13 (or python<3.13).
TEXT_BLOCK = re.compile(
    r"^```text(?: python(<|>=)3\.(\d+))?\n(.*?)^```$", re.MULTILINE | re.DOTALL
)


def for_this_python(block: re.Match[str]) -> bool:
    """Whether a quote's ``python>=3.X`` / ``python<3.X`` holds here (none: always)."""
    comparison, minor = block.group(1), block.group(2)
    if comparison is None:
        return True
    newer = sys.version_info[:2] >= (3, int(minor))
    return newer if comparison == ">=" else not newer


# The page ------------------------------------------------------------------


def parse_page(text: str) -> dict[str, list[str]]:
    """Map each problem id on the page to the text blocks quoted under it."""
    marks = list(PROBLEM.finditer(text))
    problems: dict[str, list[str]] = {}
    for mark, following in zip(marks, [*marks[1:], None], strict=True):
        end = following.start() if following else len(text)
        section = text[mark.end() : end]
        if mark.group(1) in problems:
            raise AssertionError(f"problem id {mark.group(1)} appears twice")
        problems[mark.group(1)] = [
            block.group(3).rstrip("\n")
            for block in TEXT_BLOCK.finditer(section)
            if for_this_python(block)
        ]
    return problems


def sections(text: str) -> dict[str, str]:
    """Map each problem id to the markdown of its section."""
    marks = list(PROBLEM.finditer(text))
    return {
        mark.group(1): text[mark.end() : following.start() if following else None]
        for mark, following in zip(marks, [*marks[1:], None], strict=True)
    }


def _line_matches(quoted: str, actual: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in quoted.split(ELLIPSIS))
    return re.fullmatch(pattern, actual) is not None


def _match_from(quote: list[str], actual: list[str], i: int, j: int) -> bool:
    if i == len(quote):
        return True
    if quote[i].strip() == ELLIPSIS:
        return any(
            _match_from(quote, actual, i + 1, k) for k in range(j, len(actual) + 1)
        )
    if j < len(actual) and _line_matches(quote[i], actual[j]):
        return _match_from(quote, actual, i + 1, j + 1)
    return False


def quote_matches(quote: str, output: str) -> bool:
    """Whether the quoted lines appear, in order and contiguous, in ``output``."""
    quoted = quote.splitlines()
    actual = [line.rstrip() for line in output.splitlines()]
    return any(_match_from(quoted, actual, 0, j) for j in range(len(actual) + 1))


def normalize(output: str, *ports: int) -> str:
    """Write the ports a reproducer used as the page's 7890 (and 7891)."""
    for port in ports:
        output = re.sub(rf"(?<!\d){port + 1}(?!\d)", str(DOC_PORT + 1), output)
        output = re.sub(rf"(?<!\d){port}(?!\d)", str(DOC_PORT), output)
    return output


def shown(exc: BaseException) -> str:
    """The last line of a traceback as IPython prints it: ``Name: message``."""
    return f"{type(exc).__name__}: {exc}"


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str


async def run_process(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> Finished:
    """Run a program to the end (30 s at most) and return what it printed."""
    process = await asyncio.create_subprocess_exec(
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env=measured(env),
    )
    async with asyncio.timeout(30):
        stdout, stderr = await process.communicate()
    assert process.returncode is not None
    return Finished(process.returncode, stdout.decode(), stderr.decode())


# A real IPython kernel -----------------------------------------------------


class Kernel:
    """An IPython kernel that runs learner code and returns what a cell shows."""

    def __init__(self, manager: AsyncKernelManager) -> None:
        self.manager = manager
        self.client = manager.client()

    @classmethod
    async def start(cls, cwd: Path, env: dict[str, str] | None = None) -> Kernel:
        # No kernel spec directories: always ipykernel's own spec, which runs
        # this Python (sys.executable), whatever kernels the user has installed.
        manager = AsyncKernelManager(
            kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
        )
        await manager.start_kernel(cwd=str(cwd), env={**os.environ, **(env or {})})
        kernel = cls(manager)
        kernel.client.start_channels()
        await kernel.client.wait_for_ready(timeout=60)
        return kernel

    async def run(self, code: str, timeout: float = 30) -> str:
        """Run a cell; return its streams, results and traceback, without colors.

        Output from every source is collected until the cell is done, as the
        notebook shows output of server tasks under the cell that started them.
        """
        parts: list[str] = []
        async with asyncio.timeout(timeout):
            await self._collect(textwrap.dedent(code), parts)
            # Output written by server tasks is buffered: flush it here, so it
            # shows under this cell and not under the next one.
            await self._collect(FLUSH, parts, silent=True)
        return ANSI.sub("", "".join(parts))

    async def _collect(self, code: str, parts: list[str], silent: bool = False) -> None:
        msg_id = self.client.execute(code, silent=silent, store_history=not silent)
        while True:
            msg = await self.client.get_iopub_msg()
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                parts.append(content["text"])
            elif kind == "error":
                parts.append("\n".join(content["traceback"]) + "\n")
            elif kind in ("execute_result", "display_data"):
                parts.append(content["data"].get("text/plain", "") + "\n")
            elif (
                kind == "status"
                and content["execution_state"] == "idle"
                and msg["parent_header"].get("msg_id") == msg_id
            ):
                return

    async def value(self, expression: str) -> str:
        """Evaluate an expression in the kernel and return its repr."""
        return (await self.run(expression)).strip()

    async def stop(self) -> None:
        self.client.stop_channels()
        await self.manager.shutdown_kernel(now=True)


# Garbage is collected too, the last traceback dropped first, so that what a
# cell leaves behind warns under that cell ("coroutine ... was never awaited"
# after asyncio.run(main()) failed), not under a later one, whenever CPython's
# collector happens to run.
FLUSH = (
    "import gc as _gc, sys as _sys\n"
    "_sys.last_type = _sys.last_value = _sys.last_traceback = _sys.last_exc = None\n"
    "_gc.collect()\n"
    "_sys.stdout.flush()\n"
    "_sys.stderr.flush()"
)

SETUP = """
import asyncio
import socket
import time

import websockets
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

import wsteach
from wsteach.listening import free_port
"""


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kernel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One kernel for the whole page, in an empty folder, like a fresh notebook.

    ``WSTEACH_TIMEOUT_FACTOR=0.2`` shortens wsteach's 5 s receive timeout to 1 s;
    the reproducer writes the message back with 5 s.
    """
    kernel = await Kernel.start(
        tmp_path_factory.mktemp("notebook"), {"WSTEACH_TIMEOUT_FACTOR": "0.2"}
    )
    assert "Error" not in await kernel.run(SETUP)
    yield kernel
    await kernel.stop()


@dataclass
class Context:
    kernel: Kernel
    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch


Reproducer = Callable[[Context], Awaitable[str]]
REPRODUCERS: dict[str, Reproducer] = {}


def reproduces(problem: str) -> Callable[[Reproducer], Reproducer]:
    def register(function: Reproducer) -> Reproducer:
        REPRODUCERS[problem] = function
        return function

    return register


async def start_server(kernel: Kernel, handler_code: str, handler: str) -> int:
    """Define a handler in the kernel, serve it on a free port, return the port."""
    await kernel.run(handler_code)
    port = await kernel.value(
        f"server = await serve({handler}, '127.0.0.1', 0)\n"
        "server.sockets[0].getsockname()[1]"
    )
    return int(port)


# The reproducers, in the order of the page ---------------------------------


@reproduces("two-parameter-handler")
async def _(ctx: Context) -> str:
    plain = await ctx.kernel.run("""
        async def echo(websocket, path):
            async for message in websocket:
                await websocket.send("Pong: " + message)

        server = await serve(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            await websocket.wait_closed()  # the server closes it right away
            await websocket.send("Hello server")
        """)
    taught = await ctx.kernel.run("server = await wsteach.start(echo, port=7890)")
    return plain + taught


@reproduces("asyncio-run-in-notebook")
async def _(ctx: Context) -> str:
    await ctx.kernel.run("""
        async def echo(websocket):
            async for message in websocket:
                await websocket.send("Pong: " + message)
        """)
    # Both fail before they bind anything, so port 7890 is safe to write here.
    modern = await ctx.kernel.run("""
        async def main():
            async with serve(echo, "localhost", 7890):
                await asyncio.get_running_loop().create_future()

        asyncio.run(main())
        """)
    video = await ctx.kernel.run("""
        start_server = websockets.serve(echo, "localhost", 7890)
        asyncio.get_event_loop().run_until_complete(start_server)
        asyncio.get_event_loop().run_forever()
        """)
    return modern + video


@reproduces("address-already-in-use")
async def _(ctx: Context) -> str:
    port = int(await ctx.kernel.value("port = free_port()\nport"))
    first = await ctx.kernel.run(
        'server = await serve(echo, "127.0.0.1", port)  # first run'
    )
    assert "Error" not in first
    again = await ctx.kernel.run(
        'server = await serve(echo, "127.0.0.1", port)  # run again'
    )
    taught = await ctx.kernel.run("running = await wsteach.start(echo, port=port)")
    cli = await run_process(
        sys.executable, "-m", "wsteach", "serve", "echo", "--port", str(port)
    )
    await ctx.kernel.run("server.close()")
    return normalize(again + taught + cli.stderr, port)


@reproduces("port-held-by-another-kernel")
async def _(ctx: Context) -> str:
    # The first notebook: a kernel that jupyter_server started for
    # 00-start-here.ipynb, which it names in JPY_SESSION_NAME.
    notebook = ctx.tmp_path / "00-start-here.ipynb"
    first = await Kernel.start(ctx.tmp_path, {"JPY_SESSION_NAME": str(notebook)})
    try:
        await first.run(SETUP)
        port = int(await first.value("port = free_port()\nport"))
        await first.run("server = await wsteach.start(wsteach.echo, port=port)")
        seen = await ctx.kernel.run(
            f"server = await wsteach.start(wsteach.echo, port={port})"
        )
    finally:
        await first.stop()
    return normalize(seen, port)


@reproduces("connection-refused")
async def _(ctx: Context) -> str:
    port = int(await ctx.kernel.value("port = free_port()\nport"))
    ipv4 = await ctx.kernel.run("""
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            await websocket.send("Hello server")
        """)
    taught = await ctx.kernel.run(
        'alice = await wsteach.connect(f"ws://localhost:{port}", name="alice")'
    )
    # Where localhost means ::1 and 127.0.0.1 (most laptops), asyncio tries both.
    # This machine's /etc/hosts may list 127.0.0.1 only: answer like a laptop's.
    loop = asyncio.get_running_loop()
    resolve = loop.getaddrinfo

    async def laptop_hosts(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "localhost":
            return await resolve(host, *args, **kwargs)
        return [
            *await resolve("::1", *args, **kwargs),
            *await resolve("127.0.0.1", *args, **kwargs),
        ]

    ctx.monkeypatch.setattr(loop, "getaddrinfo", laptop_hosts)
    try:
        async with connect(f"ws://localhost:{port}"):
            pass
    except OSError as exc:
        both = shown(exc) + "\n"
    else:  # pragma: no cover - something listens on a port that was free
        raise AssertionError(f"connected to port {port}, expected a refusal")
    return normalize(ipv4 + taught + both, port)


BLOCKING = """
    async def echo(websocket):
        async for message in websocket:
            time.sleep(1.5)  # any call that blocks: requests.get, input(), ...
            await websocket.send("Pong: " + message)
    """


@reproduces("blocking-call-keepalive")
async def _(ctx: Context) -> str:
    port = await start_server(ctx.kernel, BLOCKING, "echo")
    # websockets pings every 20 s and waits 20 s for the answer; shorter here.
    async with connect(
        f"ws://127.0.0.1:{port}", ping_interval=0.2, ping_timeout=0.3
    ) as websocket:
        await websocket.send("Hello server")
        try:
            await websocket.recv()
        except Exception as exc:
            seen = shown(exc)
        else:  # pragma: no cover - the server answered in time
            raise AssertionError("the blocked server answered before the timeout")
    await ctx.kernel.run("server.close()")
    return seen


@reproduces("one-client-at-a-time")
async def _(ctx: Context) -> str:
    port = await start_server(ctx.kernel, BLOCKING, "echo")
    url = f"ws://127.0.0.1:{port}"
    async with connect(url, ping_interval=None) as alice:
        await alice.send("Hello server")
        await asyncio.sleep(0.3)  # the server is now in time.sleep
        # websockets waits 10 s for the handshake; shorter here.
        try:
            async with connect(url, open_timeout=0.5):
                pass
        except Exception as exc:
            seen = shown(exc)
        else:  # pragma: no cover - the server accepted during time.sleep
            raise AssertionError("the blocked server accepted a second client")
        assert await alice.recv() == "Pong: Hello server"
    await ctx.kernel.run("server.close()")
    return seen


@reproduces("server-closes-after-one-message")
async def _(ctx: Context) -> str:
    plain = await ctx.kernel.run("""
        async def echo(websocket):
            message = await websocket.recv()
            await websocket.send("Pong: " + message)

        server = await serve(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        websocket = await connect(f"ws://127.0.0.1:{port}")
        await websocket.send("Hello server")
        print(await websocket.recv())
        await websocket.wait_closed()  # you type the next line: that takes longer
        await websocket.send("Hello again")
        """)
    taught = await ctx.kernel.run("""
        running = await wsteach.start(echo, port=0)
        alice = await wsteach.connect(running.url, name="alice")
        await alice.send("Hello server")
        print(await alice.recv())
        await alice.wait_closed()
        print(await alice.recv())
        """)
    await ctx.kernel.run("server.close()\nawait running.stop()")
    return plain + taught


@reproduces("shadowed-websockets")
async def _(ctx: Context) -> str:
    folder = ctx.tmp_path / "my-notebooks"
    folder.mkdir()
    (folder / "websockets.py").write_text(
        textwrap.dedent("""\
        import asyncio
        import websockets


        async def echo(websocket):
            async for message in websocket:
                await websocket.send("Pong: " + message)


        async def main():
            async with websockets.serve(echo, "localhost", 7890):
                await asyncio.get_running_loop().create_future()


        if __name__ == "__main__":
            asyncio.run(main())
        """)
    )
    notebook = await Kernel.start(folder)
    try:
        seen = await notebook.run("import websockets\nwebsockets.serve")
        seen += await notebook.run("from websockets.asyncio.server import serve")
        seen += await notebook.run("import wsteach")
    finally:
        await notebook.stop()
    script = await run_process(sys.executable, "websockets.py", cwd=folder)
    return seen + script.stderr


IPV6_BIND = """
import asyncio
import sys
from websockets.asyncio.server import serve

async def echo(websocket):
    pass

async def main(host, port):
    try:
        await serve(echo, host, port)
    except OSError as exc:
        print(f"{type(exc).__name__}: {exc}")

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


@reproduces("ipv6-localhost")
async def _(ctx: Context) -> str:
    # A fresh network namespace has a loopback interface that is down, so ::1
    # isn't there: what a container with IPv6 turned off looks like.
    unshare = shutil.which("unshare")
    if unshare is not None:
        isolated = await run_process(
            unshare,
            "--net",
            "--map-root-user",
            sys.executable,
            "-c",
            IPV6_BIND,
            "::1",
            str(DOC_PORT),
        )
        if isolated.returncode == 0:
            return isolated.stdout
    # No namespaces here: bind an IPv6 address this machine doesn't have
    # (2001:db8::/32 is for documentation); the kernel gives the same error.
    port = free_port()
    here = await run_process(sys.executable, "-c", IPV6_BIND, "2001:db8::1", str(port))
    return normalize(here.stdout.replace("2001:db8::1", "::1"), port)


@reproduces("wrong-websockets-version")
async def _(ctx: Context) -> str:
    path = await ctx.kernel.run("""
        async def echo(websocket):
            print("A client asked for", websocket.path)
            async for message in websocket:
                await websocket.send("Pong: " + message)

        server = await serve(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            await websocket.wait_closed()
        server.close()
        """)
    old_import = await ctx.kernel.run(
        "from websockets.server import serve as old_serve"
    )
    old_name = await ctx.kernel.run("""
        async def echo(websocket: websockets.WebSocketServerProtocol):
            async for message in websocket:
                await websocket.send("Pong: " + message)
        """)
    # An install older than 13.0 has no websockets.asyncio package. This stands
    # in for it: a websockets package without that subpackage.
    old = ctx.tmp_path / "old-install" / "websockets"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text('__version__ = "12.0"\n')
    older = await run_process(
        sys.executable,
        "-c",
        "from websockets.asyncio.server import serve",
        env={**os.environ, "PYTHONPATH": str(old.parent)},
    )
    return path + old_import + old_name + older.stderr


def find_chromium() -> str:
    """The browser ``tools/find_browser.py`` finds, as ``make test`` does, or fail."""
    find_browser = sys.modules.get("find_browser")
    if find_browser is None:
        spec = importlib.util.spec_from_file_location(
            "find_browser", ROOT / "tools" / "find_browser.py"
        )
        assert spec is not None and spec.loader is not None
        find_browser = importlib.util.module_from_spec(spec)
        sys.modules["find_browser"] = find_browser
        spec.loader.exec_module(find_browser)
    try:
        return find_browser.find().path
    except find_browser.BrowserNotFound as error:
        pytest.fail(str(error), pytrace=False)


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PROXY_PATH = "/user/you/proxy/7890/"
MIXED_PAGE = """<!doctype html>
<title>my chat</title>
<script>
  const websocket = new WebSocket("ws://binder.test:%d%s");
</script>
"""


async def browser_on_https_page(tmp_path: Path) -> str:
    """Open a page served over https that opens a ws:// WebSocket, in Chromium.

    The page is served as ``https://binder.test:…`` (Chromium maps the name to
    127.0.0.1): mixed-content rules spare ``localhost``, not a real host name.
    Returns what the browser console shows.
    """
    chromium = find_chromium()
    openssl = shutil.which("openssl")
    assert openssl, "openssl is missing: apt-get install openssl"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    made = await run_process(
        openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        "-subj", "/CN=binder.test", "-keyout", str(key), "-out", str(cert),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)

    async def handler(websocket: Any) -> None:
        await websocket.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as plain:
        ws_port = plain.sockets[0].getsockname()[1]
        body = (MIXED_PAGE % (ws_port, PROXY_PATH)).encode()

        def page(connection: Any, request: Any) -> Response:
            headers = Headers(
                {"Content-Type": "text/html", "Content-Length": str(len(body))}
            )
            return Response(200, "OK", headers, body)

        async with serve(
            handler, "127.0.0.1", 0, ssl=context, process_request=page
        ) as https:
            port = https.sockets[0].getsockname()[1]
            seen: list[str] = []
            both = asyncio.Event()  # the blocked request, then the exception

            def show(line: str) -> None:
                seen.append(line)
                if len(seen) >= 2:
                    both.set()

            async with async_playwright() as playwright:
                browser = await playwright.chromium.launch(
                    executable_path=chromium,
                    args=[
                        *CHROMIUM_FLAGS,
                        "--host-resolver-rules=MAP binder.test 127.0.0.1",
                        "--ignore-certificate-errors",  # the certificate is self-made
                    ],
                )
                try:
                    tab = await browser.new_page()
                    tab.on("console", lambda message: show(message.text))
                    # DevTools shows an uncaught exception as "Uncaught Name: message".
                    tab.on(
                        "pageerror",
                        lambda error: show(f"Uncaught {error.name}: {error.message}"),
                    )
                    await tab.goto(f"https://binder.test:{port}{PROXY_PATH}")
                    async with asyncio.timeout(10):
                        await both.wait()
                finally:
                    await browser.close()
    return "\n".join(seen) + "\n"


@reproduces("ws-vs-wss")
async def _(ctx: Context) -> str:
    python = await ctx.kernel.run("""
        url = "https://hub.2i2c.mybinder.org/user/owner-wsteach-x1y2z3/proxy/7890/"
        async with connect(url) as websocket:
            await websocket.send("Hello server")
        """)
    return python + await browser_on_https_page(ctx.tmp_path)


@reproduces("set-changed-size")
async def _(ctx: Context) -> str:
    return await ctx.kernel.run("""
        connected = set()

        async def broadcast(websocket):
            connected.add(websocket)
            async for message in websocket:
                for other in connected:
                    if other != websocket:
                        try:
                            await other.send("Someone said: " + message)
                        except websockets.ConnectionClosed:
                            connected.remove(other)  # forget clients who left

        server = await serve(broadcast, "127.0.0.1", 0)
        url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}"
        alice = await connect(url)
        bob = await connect(url)
        await bob.close()  # bob leaves
        await alice.send("Hello everyone")
        await alice.wait_closed()
        server.close()
        """)


@reproduces("send-not-awaited")
async def _(ctx: Context) -> str:
    port = int(await ctx.kernel.value("port = free_port()\nport"))
    seen = await ctx.kernel.run("""
        async def echo(websocket):
            async for message in websocket:
                websocket.send("Pong: " + message)

        running = await wsteach.start(echo, port=port)
        alice = await wsteach.connect(running.url, name="alice")
        await alice.send("Hello server")
        print(await alice.recv())
        """)
    await ctx.kernel.run("await running.stop()")
    # The kernel runs with WSTEACH_TIMEOUT_FACTOR=0.2: 1 s instead of 5 s.
    return normalize(seen, port).replace("waited 1 s", "waited 5 s")


@reproduces("plain-def-handler")
async def _(ctx: Context) -> str:
    plain = await ctx.kernel.run("""
        def echo(websocket):
            print("A client connected")

        server = await serve(echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}") as websocket:
            await websocket.wait_closed()
        server.close()
        """)
    taught = await ctx.kernel.run("server = await wsteach.start(echo, port=7890)")
    return plain + taught


@reproduces("recv-in-two-places")
async def _(ctx: Context) -> str:
    seen = await ctx.kernel.run("""
        running = await wsteach.start(wsteach.echo, port=0)
        websocket = await connect(running.url)

        async def show_messages():
            async for message in websocket:
                print("received:", message)

        reader = asyncio.create_task(show_messages())
        await asyncio.sleep(0.1)
        await websocket.send("Hello server")
        print(await websocket.recv())
        """)
    await ctx.kernel.run("reader.cancel()\nawait running.stop()")
    return seen


# Redis (notebook 08 and wsteach serve broadcast --redis) -------------------

REDIS_PORT = 6379  # The page's Redis port, as 7890 is its WebSocket port.


def as_redis_port(output: str, port: int) -> str:
    """Write the port a reproducer's Redis used as the page's 6379."""
    return re.sub(rf"(?<!\d){port}(?!\d)", str(REDIS_PORT), output)


@reproduces("redis-connection-refused")
async def _(ctx: Context) -> str:
    port = int(await ctx.kernel.value("port = free_port()\nport"))
    notebook = await ctx.kernel.run("""
        import redis.asyncio as redis

        r = redis.Redis.from_url(f"redis://localhost:{port}/0")
        await r.ping()
        """)
    cli = await run_process(
        sys.executable,
        "-m",
        "wsteach",
        "serve",
        "broadcast",
        "--port",
        "0",
        "--redis",
        f"redis://localhost:{port}/0",
    )
    assert cli.returncode == 1 and cli.stdout == ""
    return as_redis_port(notebook + cli.stderr, port)


@reproduces("redis-url-scheme")
async def _(ctx: Context) -> str:
    notebook = await ctx.kernel.run("""
        import redis.asyncio as redis

        r = redis.Redis.from_url("localhost:6379")
        """)
    cli = await run_process(
        sys.executable,
        "-m",
        "wsteach",
        "serve",
        "broadcast",
        "--port",
        "0",
        "--redis",
        "localhost:6379",
    )
    assert cli.returncode == 1 and cli.stdout == ""
    return notebook + cli.stderr


@reproduces("forgotten-subscriber-task")
async def _(ctx: Context) -> str:
    from redisserver import running_redis

    from wsteach.exercises.beyond_one_process import SOLUTION

    script = ctx.tmp_path / "room_redis.py"
    script.write_text(
        SOLUTION.replace(
            "    return asyncio.create_task(relay_from_redis(pubsub))",
            "    relay_from_redis(pubsub)",
        )
    )
    with running_redis() as redis_server:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            str(script),
            str(free_port()),
            redis_server.url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        assert process.stdout is not None
        lines = []
        try:
            async with asyncio.timeout(10):
                while "Server listening" not in (lines or [""])[-1]:
                    lines.append((await process.stdout.readline()).decode())
        finally:
            process.kill()
            await process.wait()
    check = await ctx.kernel.run(f"""
        from wsteach.exercises import beyond_one_process as ex

        await ex.relay.check({str(script)!r})
        """)
    return "".join(lines) + check


VIDEO_SERVER = """\
import websockets
import asyncio

PORT = 7890

print("Server listening on Port " + str(PORT))

async def echo(websocket, path):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except websockets.exceptions.ConnectionClosed as e:
        print("A client just disconnected")

start_server = websockets.serve(echo, "localhost", PORT)

asyncio.get_event_loop().run_until_complete(start_server)
asyncio.get_event_loop().run_forever()
"""


@reproduces("no-running-event-loop")
async def _(ctx: Context) -> str:
    # The video's script, run with python: it fails before it binds port 7890.
    script = ctx.tmp_path / "server_echo.py"
    script.write_text(VIDEO_SERVER)
    finished = await run_process(sys.executable, str(script), cwd=ctx.tmp_path)
    assert finished.returncode == 1
    return finished.stdout + finished.stderr


# The tests -----------------------------------------------------------------

PROBLEMS = parse_page(PAGE.read_text(encoding="utf-8"))


def test_page_lists_enough_problems() -> None:
    """The page lists at least 12 problems, each with a quote, a why and a fix."""
    assert len(PROBLEMS) >= 12
    for problem, markdown in sections(PAGE.read_text(encoding="utf-8")).items():
        assert PROBLEMS[problem], f"{problem}: no ```text block quotes the message"
        assert "**Why**" in markdown, f"{problem}: no **Why** part"
        assert "**Fix**" in markdown, f"{problem}: no **Fix** part"


def test_table_at_the_top_lists_every_problem() -> None:
    """Each problem's heading is linked from the table at the top of the page."""
    text = PAGE.read_text(encoding="utf-8")
    for problem, markdown in sections(text).items():
        heading = re.search(r"^## (.+)$", markdown, re.MULTILINE)
        assert heading, f"{problem}: no '## ' heading"
        anchor = re.sub(r"[^\w\- ]", "", heading.group(1).lower()).replace(" ", "-")
        assert f"(#{anchor})" in text, f"{problem}: #{anchor} is not in the table"


def test_every_reproducer_has_a_problem_on_the_page() -> None:
    """No reproducer is left over after a problem was taken off the page."""
    assert set(REPRODUCERS) <= set(PROBLEMS)


def test_quotes_need_real_text() -> None:
    """A quote is more than wildcards: it has at least one literal line."""
    for problem, quotes in PROBLEMS.items():
        for quote in quotes:
            literal = [
                line for line in quote.splitlines() if len(line.strip(ELLIPSIS)) > 15
            ]
            assert literal, f"{problem}: quote is (almost) all wildcards: {quote!r}"


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("problem", list(PROBLEMS))
async def test_quotes_are_what_learners_see(
    problem: str, kernel: Kernel, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every quote under a problem appears in the output of its reproducer."""
    reproducer = REPRODUCERS.get(problem)
    assert reproducer is not None, f"{problem} is on the page but has no reproducer"
    output = await reproducer(Context(kernel, tmp_path, monkeypatch))
    for quote in PROBLEMS[problem]:
        assert quote_matches(quote, output), (
            f"{problem}: the page quotes\n{quote}\n\nbut the reproducer saw\n{output}"
        )


@pytest.mark.parametrize(
    ("quote", "output", "expected"),
    [
        ("a\nb", "x\na\nb\ny", True),
        ("a\nb", "a\nx\nb", False),
        ("a\n…\nb", "a\nx\ny\nb", True),
        ("a\n…\nb", "a\nb", True),
        ("…: Warning: w", "/tmp/1.py:2: Warning: w", True),
        ("…: Warning: w", "/tmp/1.py:2: Warning: v", False),
        ("b", "a\nbc", False),
    ],
)
def test_quote_matching(quote: str, output: str, expected: bool) -> None:
    """Quotes match whole lines, in order; … stands for lines or text."""
    assert quote_matches(quote, output) is expected


def test_normalize_writes_ports_as_on_the_page() -> None:
    """Free ports become 7890 and the next one 7891, other numbers stay."""
    text = "port 41234 in use, try 41235; not 141234"
    assert normalize(text, 41234) == "port 7890 in use, try 7891; not 141234"


def test_a_quote_can_hold_on_some_pythons_only() -> None:
    """A ```text python>=3.X block counts from 3.X on, python<3.X before, a plain one always."""
    text = (
        "<!-- problem: x -->\n"
        "```text python>=3.13\nnew\n```\n"
        "```text python<3.13\nold\n```\n"
        "```text\nboth\n```\n"
    )
    here = "new" if sys.version_info >= (3, 13) else "old"
    assert parse_page(text) == {"x": [here, "both"]}
