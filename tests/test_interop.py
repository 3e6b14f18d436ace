"""`wsteach serve echo|broadcast` against WebSocket clients nobody here wrote.

Each server is a real ``python -m wsteach serve`` process; the clients are
aiohttp's, websocket-client's (synchronous), Chromium's ``WebSocket`` and
websockets' own interactive client, ``python -m websockets``.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import websocket  # websocket-client
from playwright.async_api import Browser
from serverproc import ServerProcess
from utils import MS

import wsteach
from wsteach.names import NAME_HEADER

ROOT = Path(__file__).resolve().parents[1]
WAIT = 10_000 * MS


@pytest.fixture
async def echo_server() -> AsyncIterator[ServerProcess]:
    """`wsteach serve echo` on a free port; it must exit cleanly (status 0)."""
    server = await ServerProcess.start("echo", "--port", "0")
    try:
        yield server
    finally:
        assert await server.stop() == 0
    assert_clean(server)


@pytest.fixture
async def broadcast_server() -> AsyncIterator[ServerProcess]:
    """`wsteach serve broadcast --web` on a free port; it must exit cleanly."""
    server = await ServerProcess.start("broadcast", "--port", "0", "--web")
    try:
        yield server
    finally:
        assert await server.stop() == 0
    assert_clean(server)


def assert_clean(server: ServerProcess) -> None:
    """The server's terminal shows no traceback and no error."""
    output = "\n".join(server.lines)
    assert "Traceback" not in output and "ERROR" not in output, output


async def test_aiohttp_client_with_echo(echo_server: ServerProcess) -> None:
    """aiohttp's client gets text and binary messages back, then a clean 1000 close."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(
            echo_server.url, timeout=aiohttp.ClientWSTimeout(WAIT)
        ) as ws,
    ):
        await ws.send_str("Hello server")
        assert await ws.receive_str(timeout=WAIT) == "Hello server"
        await ws.send_bytes(b"\x00\xff" * 1000)
        assert await ws.receive_bytes(timeout=WAIT) == b"\x00\xff" * 1000
        await ws.send_str("é😀" * 10_000)
        assert await ws.receive_str(timeout=WAIT) == "é😀" * 10_000
        await ws.close()
        assert ws.close_code == 1000
    await echo_server.wait_for("disconnected")


def websocket_client_round_trip(url: str) -> tuple[object, ...]:
    """Talk to ``url`` with websocket-client's synchronous API."""
    ws = websocket.create_connection(url, timeout=WAIT)
    try:
        ws.send("Hello server")
        text = ws.recv()
        ws.send_binary(b"\x01\x02")
        data = ws.recv()
        ws.ping(b"are you there")
        opcode, frame = ws.recv_data_frame(control_frame=True)
        return text, data, opcode, frame.data
    finally:
        ws.close()


async def test_websocket_client_with_echo(echo_server: ServerProcess) -> None:
    """websocket-client (sync) gets its messages back and a pong for its ping."""
    text, data, opcode, pong = await asyncio.to_thread(
        websocket_client_round_trip, echo_server.url
    )
    assert (text, data) == ("Hello server", b"\x01\x02")
    assert (opcode, pong) == (websocket.ABNF.OPCODE_PONG, b"are you there")
    await echo_server.wait_for("disconnected")


async def interactive_client(url: str) -> asyncio.subprocess.Process:
    """Start ``python -m websockets url``, as the lessons tell students to."""
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "websockets",
        url,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )


async def read_until(process: asyncio.subprocess.Process, text: bytes) -> bytes:
    """Read the process's output until ``text`` appears; return all of it."""
    assert process.stdout is not None
    async with asyncio.timeout(WAIT):
        return await process.stdout.readuntil(text)


async def test_python_m_websockets_with_echo(echo_server: ServerProcess) -> None:
    """`python -m websockets` prints the echo; end of input closes it with 1000."""
    client = await interactive_client(echo_server.url)
    assert client.stdin is not None
    await read_until(client, b"Connected to ")
    client.stdin.write("Hello server, c'est moi 😀\n".encode())
    await read_until(client, "< Hello server, c'est moi 😀".encode())
    client.stdin.close()
    await read_until(client, b"Connection closed: 1000 (OK).")
    async with asyncio.timeout(WAIT):
        assert await client.wait() == 0


@pytest.mark.browser
async def test_browser_websocket_with_echo(
    browser: Browser,
    echo_server: ServerProcess,
) -> None:
    """Chromium's WebSocket gets text and binary back and sees a clean 1000 close."""
    page = await browser.new_page()
    result = await page.evaluate(
        """(url) => new Promise((resolve, reject) => {
            const ws = new WebSocket(url);
            ws.binaryType = "arraybuffer";
            const got = [];
            ws.onopen = () => { ws.send("Hello server"); ws.send(new Uint8Array([0, 255])); };
            ws.onmessage = (event) => {
                got.push(typeof event.data === "string"
                    ? event.data : Array.from(new Uint8Array(event.data)));
                if (got.length === 2) ws.close(1000, "bye");
            };
            ws.onclose = (event) => resolve({got, code: event.code, clean: event.wasClean});
            ws.onerror = () => reject(new Error("websocket error"));
        })""",
        echo_server.url,
    )
    assert result == {"got": ["Hello server", [0, 255]], "code": 1000, "clean": True}
    await page.close()


@pytest.mark.browser
async def test_four_kinds_of_clients_share_one_room(
    browser: Browser,
    broadcast_server: ServerProcess,
) -> None:
    """aiohttp, websocket-client, python -m websockets and the browser's chat page chat in one room."""
    url = broadcast_server.url
    page = await browser.new_page()
    await page.goto(f"http://127.0.0.1:{broadcast_server.port}/")
    await page.wait_for_selector('#status[data-state="open"]')
    sync = await asyncio.to_thread(websocket.create_connection, url, timeout=WAIT)
    cli = await interactive_client(url)
    assert cli.stdin is not None
    await read_until(cli, b"Connected to ")
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(url) as ws,
    ):
        await broadcast_server.wait_for("· 4 online")
        await ws.send_str("from aiohttp")
        assert await asyncio.to_thread(sync.recv) == "Someone said: from aiohttp"
        await read_until(cli, b"< Someone said: from aiohttp")
        await page.wait_for_selector("li.received >> text=Someone said: from aiohttp")

        await asyncio.to_thread(sync.send, "from websocket-client")
        assert (
            await ws.receive_str(timeout=WAIT) == "Someone said: from websocket-client"
        )
        await read_until(cli, b"< Someone said: from websocket-client")

        cli.stdin.write(b"from the terminal\n")
        assert await ws.receive_str(timeout=WAIT) == "Someone said: from the terminal"
        assert await asyncio.to_thread(sync.recv) == "Someone said: from the terminal"

        await page.fill("#text", "from the page")
        await page.press("#text", "Enter")
        assert await ws.receive_str(timeout=WAIT) == "Someone said: from the page"
        assert await asyncio.to_thread(sync.recv) == "Someone said: from the page"
        await read_until(cli, b"< Someone said: from the page")
    cli.stdin.close()
    async with asyncio.timeout(WAIT):
        assert await cli.wait() == 0
    await asyncio.to_thread(sync.close)
    await page.close()


def test_autobahn_without_python_27_says_what_it_needs(tmp_path) -> None:
    """tools/autobahn.py on a machine without Python 2.7 exits 1 with one line saying how to give it one."""
    env = {**os.environ, "PYTHON27": str(tmp_path / "python2.7"), "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "autobahn.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr == (
        "autobahn: the Autobahn|Testsuite needs Python 2.7, and none was found: "
        "pass PYTHON27=/path/to/python2.7 (make autobahn PYTHON27=...)\n"
    )


async def test_a_name_sent_raw_in_utf8_shows_as_typed() -> None:
    """aiohttp sends a non-ASCII X-Wsteach-Name as raw UTF-8; the trace shows it as typed."""
    server = await wsteach.start(wsteach.echo, port=0)
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(server.url, headers={NAME_HEADER: "Łukasz 😀"}) as ws,
    ):
        await ws.send_str("hi")
        assert await ws.receive_str(timeout=WAIT) == "hi"
    assert [(e.sender, e.what) for e in server.trace.events][:2] == [
        ("Łukasz 😀", "connects"),
        ("Łukasz 😀", "'hi'"),
    ]
