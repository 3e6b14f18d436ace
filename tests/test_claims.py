"""What the notebooks say about websockets and asyncio holds for the installed versions.

Each test proves one statement a notebook makes, with real processes, real
servers on free ports and real clients; none of it is mocked:

- the video's original scripts, run with ``python`` as they are, fail (the
  server) or work (the client) as notebook 07 shows;
- a client that stopped reading is not closed by keepalive once the server's
  write buffer is full, while a silent one is (notebook 05);
- ``ConnectionClosedOK`` means close codes 1000, 1001 or 1005 received *and*
  sent, anything else is ``ConnectionClosedError`` (notebook 03);
- ``except Exception`` does not catch ``asyncio.CancelledError`` (notebook 03).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from conftest import ROOT
from rawws import Raw, close_frame
from utils import FACTOR
from websockets.asyncio.client import connect
from websockets.asyncio.server import broadcast, serve
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.protocol import State

from wsteach.listening import free_port

NOTEBOOK_07 = ROOT / "notebooks" / "solutions" / "07-from-the-video-to-today.ipynb"
NOTEBOOK_05 = ROOT / "notebooks" / "solutions" / "05-broadcast-under-load.ipynb"


def writefile_cells(notebook: Path) -> dict[str, str]:
    """The scripts a notebook writes with ``%%writefile NAME``: name → code."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    scripts = {}
    for cell in cells:
        source = "".join(cell["source"])
        first, _, code = source.partition("\n")
        if cell["cell_type"] == "code" and first.startswith("%%writefile "):
            scripts[first.split()[1]] = code
    return scripts


def cell_outputs(notebook: Path) -> str:
    """Every text output saved in a notebook, joined."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    texts = []
    for cell in cells:
        for output in cell.get("outputs", []):
            texts.append("".join(output.get("text", "")))
            texts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(texts)


async def run_script(
    path: Path, *, stop_after: str | None = None, timeout: float = 20
) -> tuple[int, str]:
    """Run ``python path``; return its exit code and output (stdout + stderr).

    With ``stop_after``, interrupt it (SIGINT, like Ctrl+C) once that text was
    printed; without, wait for it to exit on its own.
    """
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        str(path),
        cwd=path.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    assert process.stdout is not None
    output = b""
    try:
        async with asyncio.timeout(timeout * FACTOR):
            if stop_after is not None:
                while stop_after.encode() not in output:
                    line = await process.stdout.readline()
                    assert line, f"{path.name} exited before printing {stop_after!r}"
                    output += line
                process.send_signal(2)  # SIGINT
            output += await process.stdout.read()
            await process.wait()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode is not None
    return process.returncode, output.decode()


# The video's scripts (notebook 07) -----------------------------------------


def test_notebook_07_writes_the_videos_scripts_unchanged():
    """07 runs the video's server and client as the video wrote them, port 7890 included."""
    scripts = writefile_cells(NOTEBOOK_07)
    server = scripts["video_server_echo.py"]
    client = scripts["video_client.py"]
    assert "async def echo(websocket, path):" in server
    assert 'start_server = websockets.serve(echo, "localhost", PORT)' in server
    assert "asyncio.get_event_loop().run_until_complete(start_server)" in server
    assert "asyncio.get_event_loop().run_forever()" in server
    assert 'url = "ws://127.0.0.1:7890"' in client
    assert "asyncio.get_event_loop().run_until_complete(listen())" in client


async def test_videos_server_fails_with_no_running_event_loop(tmp_path: Path):
    """The video's server_echo.py prints its banner, then dies at websockets.serve(...)."""
    script = tmp_path / "video_server_echo.py"
    # It fails before binding the port, so 7890 is never used.
    script.write_text(writefile_cells(NOTEBOOK_07)["video_server_echo.py"])
    code, output = await run_script(script)
    lines = output.splitlines()
    assert code == 1
    assert lines[0] == "Server listening on Port 7890"
    assert '    start_server = websockets.serve(echo, "localhost", PORT)' in lines
    assert lines[-1] == "RuntimeError: no running event loop"
    # What notebook 07 saved is that same error.
    assert "RuntimeError: no running event loop" in cell_outputs(NOTEBOOK_07)


async def test_videos_client_still_works_against_todays_server(tmp_path: Path):
    """The video's client.py talks to a current server until Ctrl+C stops it."""

    async def echo(websocket):
        async for message in websocket:
            await websocket.send("Pong: " + message)

    port = free_port()
    code = writefile_cells(NOTEBOOK_07)["video_client.py"]
    script = tmp_path / "video_client.py"
    script.write_text(code.replace("7890", str(port)))
    last_line = "asyncio.get_event_loop().run_until_complete(listen())"
    async with serve(echo, "127.0.0.1", port):
        if sys.version_info >= (3, 14):  # pragma: no cover - not installed here yet
            # What notebook 07 says: get_event_loop() without a loop raises.
            returncode, output = await run_script(script)
            assert returncode == 1
            assert output.splitlines()[-1] == (
                "RuntimeError: There is no current event loop in thread 'MainThread'."
            )
            return
        returncode, output = await run_script(script, stop_after="Pong: Hello server")
    if sys.version_info >= (3, 12):
        # What notebook 07 says: the last line warns first, and works.
        warning, source, rest = output.split("\n", 2)
        assert warning == (
            f"{script}:12: DeprecationWarning: There is no current event loop"
        )
        assert source.strip() == last_line
        output = rest
    assert output.startswith("Pong: Hello server\n")
    # Ctrl+C in the middle of its `while True`: a KeyboardInterrupt traceback.
    assert output.rstrip().endswith("KeyboardInterrupt")
    assert returncode != 0


async def test_videos_client_without_a_server_is_refused(tmp_path: Path):
    """With nothing listening, the video's client.py ends with ConnectionRefusedError."""
    script = tmp_path / "video_client.py"
    code = writefile_cells(NOTEBOOK_07)["video_client.py"]
    script.write_text(code.replace("7890", str(free_port())))
    returncode, output = await run_script(script)
    assert returncode == 1
    assert output.splitlines()[-1].startswith("ConnectionRefusedError: [Errno 111]")


# Keepalive and a full write buffer (notebook 05) ---------------------------

PING = 0.1  # ping_interval and ping_timeout: a silent client is closed in 0.2 s.


async def _open_server(connected: asyncio.Queue) -> tuple[object, int]:
    async def handler(websocket):
        connected.put_nowait(websocket)
        await websocket.wait_closed()

    server = await serve(
        handler, "127.0.0.1", 0, ping_interval=PING, ping_timeout=PING, compression=None
    )
    return server, server.sockets[0].getsockname()[1]


@contextlib.asynccontextmanager
async def _stalled_client() -> AsyncIterator[tuple[Any, Any, int, asyncio.Queue]]:
    """A server and a websockets client that never reads, as sloth in notebook 05.

    Yields the server's side of that client, the client, the port, and the queue
    of connections (more clients may join). With ``max_queue=1`` it stops reading
    from the network as soon as more than one message waits.
    """
    connected: asyncio.Queue = asyncio.Queue()
    server, port = await _open_server(connected)
    try:
        sloth = await connect(
            f"ws://127.0.0.1:{port}", max_queue=1, compression=None, ping_interval=None
        )
        try:
            yield await connected.get(), sloth, port, connected
        finally:
            sloth.transport.abort()
    finally:
        server.close()
        await server.wait_closed()


async def test_keepalive_closes_a_client_that_never_answers():
    """With nothing waiting to be sent, a client that answers no ping is closed in time."""
    connected: asyncio.Queue = asyncio.Queue()
    server, port = await _open_server(connected)
    try:
        # A raw client: it completes the handshake, then answers no ping.
        raw = await Raw.open(port)
        async with asyncio.timeout(20 * PING * FACTOR):
            assert await raw.close_code() == (1011, "keepalive ping timeout")
        await raw.aclose()
    finally:
        server.close()
        await server.wait_closed()


async def test_keepalive_never_closes_a_stalled_client_with_a_full_buffer():
    """A client that stopped reading stays open: the ping waits behind the full buffer."""
    async with _stalled_client() as (websocket, _, _, _):
        for _ in range(100):
            broadcast([websocket], "x" * 100_000)  # 10 MB, no backpressure
        # Ten times what a silent client gets before keepalive closes it.
        await asyncio.sleep(10 * 2 * PING)
        assert websocket.state is State.OPEN
        assert websocket.protocol.close_sent is None
        assert websocket.transport.get_write_buffer_size() > 1_000_000


async def test_keepalive_closes_a_stalled_client_whose_backlog_fits_the_os_buffers():
    """Less waiting than the OS's socket buffers take: the ping gets out, keepalive closes."""
    async with _stalled_client() as (websocket, sloth, _, _):
        # A quarter of the buffers as they start out (the OS grows them later).
        sent = websocket.transport.get_extra_info("socket")
        received = sloth.transport.get_extra_info("socket")
        room = sent.getsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF
        ) + received.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        for _ in range(max(2, room // 4 // 10_000)):
            broadcast([websocket], "x" * 10_000)
        async with asyncio.timeout(20 * 2 * PING * FACTOR):
            while websocket.protocol.close_sent is None:  # noqa: ASYNC110 - no event for it
                await asyncio.sleep(PING / 4)
        assert websocket.protocol.close_sent.code == 1011
        assert websocket.protocol.close_sent.reason == "keepalive ping timeout"
        assert sloth.protocol.close_rcvd is None, "sloth reads nothing: it never knows"


async def test_broadcast_writes_to_a_full_buffer_and_skips_a_closing_client():
    """broadcast writes past a full buffer (no backpressure) and skips one that isn't open."""
    async with _stalled_client() as (full, _, port, connected):
        gone = await connect(f"ws://127.0.0.1:{port}", ping_interval=None)
        closing = await connected.get()
        for _ in range(100):
            broadcast([full], "x" * 100_000)
        before = full.transport.get_write_buffer_size()
        assert before > 1_000_000, "its buffer is full: more than the write limit"
        broadcast([full], "x" * 100_000)
        assert full.transport.get_write_buffer_size() >= before + 100_000, (
            "still written"
        )
        await gone.close()
        await closing.wait_closed()
        broadcast([closing], "nobody hears this")  # Skipped, no error.


def test_the_glossary_says_broadcast_writes_to_full_buffers():
    """The glossary no longer says broadcast skips a client whose buffer is full."""
    text = (ROOT / "docs" / "learners" / "glossary.md").read_text(encoding="utf-8")
    assert "skips a client whose buffer is full" not in text
    assert "even to a client whose buffer is already full" in text


def test_notebook_05_says_keepalive_does_not_close_it():
    """05 says keepalive doesn't close a client that stopped reading, not that it does."""
    cells = json.loads(NOTEBOOK_05.read_text(encoding="utf-8"))["cells"]
    prose = " ".join(
        "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
    )
    assert "keepalive" in prose
    assert "until keepalive closes it" not in prose
    assert "close a client that stops answering" not in prose


# ConnectionClosedOK and ConnectionClosedError (notebook 03) ----------------


async def _server_sees(close: bytes | None, *, first: int | None = None) -> type:
    """What the server's recv raises when a raw client closes as told.

    ``close``: the close frame the client sends (None: the TCP connection just
    ends). ``first``: the server closes with this code first, then the client
    answers with ``close``.
    """
    outcome: asyncio.Future[type] = asyncio.get_running_loop().create_future()

    async def handler(websocket):
        try:
            if first is not None:
                await websocket.close(first)
            await websocket.recv()
        except (ConnectionClosedOK, ConnectionClosedError) as exc:
            outcome.set_result(type(exc))
        else:
            outcome.set_result(type(None))

    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        raw = await Raw.open(port)
        if first is not None:
            assert (await raw.close_code())[0] == first
        if close is None:
            raw.reset()
        else:
            raw.send(close)
            await raw.at_eof()
            await raw.aclose()
        async with asyncio.timeout(5 * FACTOR):
            return await outcome


@pytest.mark.parametrize("code", [1000, 1001])
async def test_connection_closed_ok_for_1000_and_1001(code: int):
    """A close with 1000 or 1001, answered with the same code, is ConnectionClosedOK."""
    assert await _server_sees(close_frame(code)) is ConnectionClosedOK


async def test_connection_closed_ok_for_1005_no_status():
    """A close frame without a code (1005, no status received) is ConnectionClosedOK."""
    from rawws import frame

    assert await _server_sees(frame(0x8)) is ConnectionClosedOK


@pytest.mark.parametrize("code", [1011, 4000])
async def test_connection_closed_error_for_other_codes(code: int):
    """A close with any other code is ConnectionClosedError."""
    assert await _server_sees(close_frame(code)) is ConnectionClosedError


async def test_connection_closed_error_without_a_close_frame():
    """A connection that just ends (1006) is ConnectionClosedError."""
    assert await _server_sees(None) is ConnectionClosedError


async def test_connection_closed_ok_needs_an_ok_code_sent_too():
    """The server sent 4000 and received 1000: ConnectionClosedError, both codes count."""
    assert await _server_sees(close_frame(1000), first=4000) is ConnectionClosedError


# CancelledError (notebook 03) ----------------------------------------------


async def test_except_exception_does_not_catch_cancelled_error():
    """A task cancelled inside ``try: … except Exception:`` is cancelled all the same."""
    caught = []

    async def handler():
        try:
            await asyncio.sleep(60)
        except Exception as exc:  # what a bare "something went wrong" catches
            caught.append(exc)

    task = asyncio.create_task(handler())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert caught == []
    assert not issubclass(asyncio.CancelledError, Exception)
    assert issubclass(asyncio.CancelledError, BaseException)


# The video's websockets, and how its server ends (notebooks 02 and 07) ------

NOTEBOOK_00 = ROOT / "notebooks" / "solutions" / "00-start-here.ipynb"
NOTEBOOK_02 = ROOT / "notebooks" / "solutions" / "02-echo-server.ipynb"


def markdown_of(notebook: Path) -> str:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    return "\n".join(
        "".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"
    )


def test_the_videos_websockets_is_said_alike_and_without_a_date():
    """02 and 07 say the video's websockets was 13 or older, and give it no year."""
    for notebook in (NOTEBOOK_02, NOTEBOOK_07):
        prose = markdown_of(notebook)
        assert "13 or older" in prose, notebook.name
        assert "2021" not in prose and "websockets 10" not in prose, notebook.name


def test_new_serve_is_the_default_and_takes_no_path():
    """Since 14.0, websockets.serve is the new implementation: it calls handler(connection)."""
    import websockets
    from websockets.asyncio.server import serve as new_serve

    assert websockets.serve is new_serve


async def test_a_run_forever_script_ends_with_keyboard_interrupt_out_of_run_forever(
    tmp_path: Path,
):
    """Ctrl+C on a run_forever() script: KeyboardInterrupt raised out of run_forever."""
    script = tmp_path / "forever.py"
    script.write_text(
        "import asyncio\n"
        "loop = asyncio.new_event_loop()\n"
        "loop.call_soon(print, 'serving')\n"
        "loop.run_forever()\n"
    )
    code, output = await run_script(script, stop_after="serving")
    assert code != 0
    lines = output.rstrip().splitlines()
    assert lines[-1] == "KeyboardInterrupt"
    assert "    loop.run_forever()" in lines, "raised out of run_forever itself"


def test_the_map_of_00_lists_every_notebook():
    """00's map links every notebook from 01 to the last."""
    prose = markdown_of(NOTEBOOK_00)
    for notebook in sorted((ROOT / "notebooks" / "solutions").glob("0[1-9]-*.ipynb")):
        assert f"]({notebook.name})" in prose, f"00's map leaves out {notebook.name}"
