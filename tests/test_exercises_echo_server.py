"""Exercises and steps of notebook 02 (wsteach.exercises.echo_server): typical wrong answers and their causes."""

from __future__ import annotations

import ast
import asyncio
from pathlib import Path

import nbformat
from websockets.asyncio.client import connect

import wsteach
import wsteach.exercises
from wsteach.exercises import (
    Mismatch,
    Result,
    echo_server,
)
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED
from wsteach.listening import free_port as _free_port


async def _statuses(step, namespace) -> list[str]:
    return [result.status for result in await step.results(namespace)]


async def test_port_step():
    """Step 2.1 passes for a port number; text, a privileged port and no PORT are told apart."""
    port = echo_server.port
    assert await _statuses(port, {"PORT": 7890}) == [PASSED, PASSED]
    assert await _statuses(port, {}) == [NOT_ATTEMPTED, NOT_ATTEMPTED]
    text = await port.results({"PORT": "7890"})
    assert text[0].status == FAILED
    assert text[0].detail.startswith("PORT is text; a port is a number")
    low = await port.results({"PORT": 80})
    assert [r.status for r in low] == [PASSED, FAILED]
    assert "administrator rights" in low[1].detail


async def test_serving_step():
    """Step 2.3 passes for a running server on PORT; a forgotten await is named."""
    serving = echo_server.serving
    namespace: dict = {}
    exec(echo_server.handler.code, namespace)
    server = await wsteach.start(namespace["echo"], port=0)
    try:
        names = {"server": server, "PORT": server.port}
        assert await _statuses(serving, names) == [PASSED] * 3
        wrong_port = await serving.results({"server": server, "PORT": 7890})
        assert wrong_port[1].status == FAILED
    finally:
        await server.stop()
    stopped = await serving.results({"server": server, "PORT": server.port})
    assert stopped[0].detail.endswith("a stopped one: run its cell again'")
    assert await _statuses(serving, {"PORT": 7890}) == [NOT_ATTEMPTED] * 3
    forgot = await serving.results({"server": wsteach.start(wsteach.echo, port=0)})
    assert "(did you forget await?)" in forgot[0].detail


async def test_script_step(tmp_path, monkeypatch, capsys):
    """Step 2.5 runs the solution's script for real; a stub, a missing part, a crash are told apart."""
    script = echo_server.script
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "server_echo.py"
    assert await _statuses(script, {}) == [NOT_ATTEMPTED] * 2
    path.write_text("# Your code here: the whole script\n...\n")
    assert await _statuses(script, {}) == [NOT_ATTEMPTED] * 2
    code = script.code.split("\n", 1)[1]  # Without the %%writefile line.
    path.write_text(code.replace("7890", str(_free_port())))
    assert await _statuses(script, {}) == [PASSED, PASSED]
    assert capsys.readouterr().out == ""  # The check's own run is quiet.
    path.write_text(code.replace("await server.serve_forever()", "pass"))
    missing = await script.results({})
    assert missing[0].detail == (
        "what server_echo.py lacks of serve, serve_forever, asyncio.run: "
        "expected [], received ['serve_forever']"
    )
    assert missing[1].status == FAILED
    path.write_text("import asyncio\nasyncio.run(1 / 0)\n")
    crashed = await script.results({})
    assert crashed[1].detail == (
        "server_echo.py, run with python: expected 'Server listening on port ...', "
        "received 'ZeroDivisionError: division by zero'"
    )
    async with wsteach.start(wsteach.echo, port=0, host="127.0.0.1") as holder:
        path.write_text(code.replace("7890", str(holder.port)))
        taken = await script.results({})
    assert taken[1].detail.endswith(
        "in use (stop the notebook's server first: await server.stop())\""
    )
    path.write_text("def f(:\n")
    broken = await script.results({})
    assert "on line 1" in broken[0].detail


async def test_port_step_wants_a_whole_number():
    """Step 2.1 fails a PORT that is a number but not a whole one, or True."""
    for port in (7890.0, True):
        (number, _) = await echo_server.port.results({"PORT": port})
        assert number == Result(
            number.scenario,
            FAILED,
            f"PORT: expected 'a whole number such as 7890', received {port!r}",
        )


async def test_script_step_reads_dotted_names(tmp_path, monkeypatch):
    """Step 2.5 finds serve written in full, websockets.asyncio.server.serve."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace(
        "from websockets.asyncio.server import serve",
        "import websockets.asyncio.server",
    ).replace("async with serve(", "async with websockets.asyncio.server.serve(")
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    assert await _statuses(echo_server.script, {}) == [PASSED, PASSED]


async def test_script_step_needs_the_port_in_the_banner(tmp_path, monkeypatch):
    """Step 2.5 fails a script whose banner prints no port number, quoting the banner."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace(
        '"Server listening on port " + str(PORT)', '"Server listening on port PORT"'
    )
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    results = await echo_server.script.results({})
    assert results[0].status == PASSED
    assert results[1].detail == (
        "its print: expected 'Server listening on port <number>', "
        "received 'Server listening on port PORT'"
    )


count = 0


async def shared_counter(websocket):
    """2.6 with one counter for every client."""
    global count
    async for message in websocket:
        count += 1
        await websocket.send(f"{count}: {message}")


async def counter_in_the_loop(websocket):
    """2.6 with the counter set back to 0 at each message."""
    async for message in websocket:
        count = 0
        count += 1
        await websocket.send(f"{count}: {message}")


async def test_counter_shared_by_all_clients_is_named_2_6():
    """2.6 with a global counter passes one client and names the shared counter."""
    results = await echo_server.numbered.results(shared_counter)
    assert [r.status for r in results] == [PASSED, FAILED]
    assert results[1].detail == (
        "alice's first reply: expected '1: hi', received '4: hi'; likely cause: one "
        "counter for every client: it keeps counting from the clients before; "
        "create the counter inside the handler, before its loop, so each call has "
        "its own"
    )


async def test_counter_reset_at_each_message_is_named_2_6():
    """2.6 with the counter inside the loop says it starts again at each message."""
    results = await echo_server.numbered.results(counter_in_the_loop)
    assert results[0].detail == (
        "reply: expected '2: b', received '1: b'; likely cause: the counter starts "
        "again at each message: set it before the loop, not inside it"
    )


async def test_serving_step_forgets_a_stale_await_warning_2_3():
    """2.3 after the fix: an awaited start, or a fixed cell that failed, isn't "forgot await"."""
    serving = echo_server.serving
    pending = wsteach.start(wsteach.echo, port=0)
    forgot = await serving.results({"server": pending})
    assert "(did you forget await?)" in forgot[0].detail
    cells = ["", "server = wsteach.start(echo, port=PORT)"]
    cells.append("server = await wsteach.start(echo, port=PORT)")
    failed = await serving.results({"server": pending, "In": cells})
    assert failed[0].detail == (
        "server: expected 'what await wsteach.start(echo, port=PORT) returns', "
        "received \"a start (your cell awaits it now, but that cell didn't finish: "
        "server still holds the call from before; run that cell again and read its "
        'error)"'
    )
    running = await pending
    try:
        awaited = await serving.results({"server": pending, "In": cells[:2]})
        assert "did you forget await" not in awaited[0].detail
        assert "it was awaited, but its result went nowhere" in awaited[0].detail
    finally:
        await running.stop()


async def test_bare_main_is_named_2_5(tmp_path, monkeypatch):
    """2.5 with main() instead of asyncio.run(main()) names the coroutine that never ran."""
    monkeypatch.chdir(tmp_path)
    code = echo_server.script.code.split("\n", 1)[1]
    code = code.replace("asyncio.run(main())", "main()")
    (tmp_path / "server_echo.py").write_text(code.replace("7890", str(_free_port())))
    parts, serves = await echo_server.script.results({})
    cause = (
        "likely cause: main() on its own only makes a coroutine, which never runs "
        "(Python warns that it was never awaited); asyncio.run(main()) runs it"
    )
    assert parts.detail == (
        "what server_echo.py lacks of serve, serve_forever, asyncio.run: expected "
        f"[], received ['asyncio.run']; {cause}"
    )
    assert serves.detail.endswith(f"; {cause}")
    assert "tracemalloc" not in serves.detail.split("; likely cause")[1]


async def test_counter_cause_names_only_what_the_numbers_show_2_6():
    """2.6's diagnosis stays silent for a timeout, other text, or a count off by more."""
    diagnose = echo_server.numbered.diagnose
    assert diagnose(None, TimeoutError()) is None
    assert diagnose(None, Mismatch("2: b", "2: c")) is None
    assert diagnose(None, Mismatch("3: c", "2: c")) is None
    assert diagnose(None, Mismatch("2: b", "1: b"))[0] == "counter reset"


NOTEBOOK_02 = (
    Path(__file__).resolve().parent.parent / "notebooks/solutions/02-echo-server.ipynb"
)


async def test_the_plain_client_cell_gives_up_and_says_why(capsys):
    """02's plain client cell, against a server that never replies, ends and says what to check."""
    notebook = nbformat.read(NOTEBOOK_02, as_version=4)
    (cell,) = [
        c
        for c in notebook.cells
        if c.cell_type == "code"
        and "asyncio.timeout(" in c.source
        and "recv()" in c.source
    ]

    async def silent(websocket):
        async for _message in websocket:
            pass  # Another notebook's room that never answers this client.

    async with wsteach.start(silent, port=0, host="127.0.0.1") as server:
        flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
        code = compile(cell.source, "<cell>", "exec", flags=flags)
        namespace = {"PORT": server.port, "asyncio": asyncio, "connect": connect}
        await eval(code, namespace)
    assert capsys.readouterr().out == (
        "no reply to 'Hello server' within 5 s: is it your echo server that listens "
        f"on port {server.port}? run the server cell again; a server of another "
        "notebook may hold the port: stop it there\n"
    )
