"""The scenario machinery shared by exercises (wsteach.exercises._scenarios)."""

from __future__ import annotations

import ast
import asyncio
import json
import re
from pathlib import Path

from utils import FACTOR
from websockets.exceptions import ConnectionClosed

import wsteach
from wsteach.exercises._core import Mismatch, Run
from wsteach.exercises._scenarios import (
    LOAD_MESSAGES,
    Nothing,
    hears,
    hears_after_load,
    is_load,
    leave,
    load,
    next_message,
    stalled_client,
    still_connected,
    until,
)

video: set = set()


async def video_loop(websocket):
    """The video's loop, with its except ConnectionClosed."""
    video.add(websocket)
    try:
        async for message in websocket:
            for conn in video:
                if conn != websocket:
                    await conn.send("Someone said: " + message)
    except ConnectionClosed:
        pass
    finally:
        video.remove(websocket)


def test_load_is_ten_megabytes_of_numbered_messages():
    """load() numbers its messages and is_load recognises them and their relays."""
    messages = load(3)
    assert [m[:5] for m in messages] == ["0001 ", "0002 ", "0003 "]
    assert all(len(m) == 100_000 for m in messages)
    assert sum(map(len, load())) == 10_000_000
    assert is_load("Someone said: " + messages[0])
    assert not is_load("Someone said: hi") and not is_load(b"x" * 200_000)


async def test_stalled_client_blocks_the_loop_until_it_resumes():
    """A stalled client makes the video's send wait; resume() lets it finish."""
    async with wsteach.start(video_loop, port=0, trace=False) as server:
        alice, bob = await wsteach.crowd(server.url, "alice", "bob")
        sloth = await stalled_client(server.url)
        assert repr(sloth) == "<StalledClient 'sloth' · stalled>"
        for message in load():
            await alice.send(message)
        await asyncio.sleep(0.3)
        assert len(bob.received) < LOAD_MESSAGES
        sloth.resume()
        async with asyncio.timeout(5):
            # Polling: background readers fill these counts.
            while len(bob.received) < LOAD_MESSAGES or sloth.count < LOAD_MESSAGES:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
        assert repr(sloth) == "<StalledClient 'sloth' · reading>"
        await sloth.close()
        await alice.close()
        await bob.close()


async def test_next_message_is_nothing_after_the_timeout():
    """A client that gets nothing in time yields a Nothing that reads well in a check."""

    async def silent(websocket):
        await websocket.wait_closed()

    async with wsteach.start(silent, port=0, trace=False) as server:
        alice = await wsteach.connect(server.url, name="alice")
        nothing = await next_message(alice, 0.05)
        assert nothing == Nothing(1)
        assert repr(nothing) == "nothing (waited 0.05 s)"
        try:
            await hears(alice, "hi", 0.05)
        except Mismatch as exc:
            assert str(exc) == (
                "alice received: expected 'hi', received nothing (waited 0.05 s)"
            )
        else:
            raise AssertionError("hears() accepted nothing")
        await alice.close()


async def test_hears_after_load_skips_the_load_and_still_connected_reports_a_close():
    """After a load, the next short message is checked; a closed client is reported."""

    async def echo_all(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with wsteach.start(echo_all, port=0, trace=False) as server:
        alice = await wsteach.connect(server.url, name="alice")
        for message in load(2):
            await alice.send(message)
        await alice.send("done")
        await hears_after_load(alice, "done", 5)
        still_connected(alice)
        await alice.close()
        try:
            still_connected(alice)
        except Mismatch as exc:
            assert "alice disconnected" in str(exc)
        else:
            raise AssertionError("still_connected() accepted a closed client")


async def test_next_message_is_nothing_after_a_close():
    """next_message reports "nothing" instead of raising when the connection closed."""
    async with wsteach.start(wsteach.echo, port=0, trace=False) as server:
        client = await wsteach.connect(server.url, name="alice")
        await client.close()
        received = await next_message(client, 0.1)
    assert repr(received) == "nothing (waited 0.1 s)"
    assert received == Nothing(1)


# The exercise package's import rules


EXERCISES = Path(__file__).resolve().parent.parent / "wsteach" / "exercises"
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def test_no_exercise_module_imports_another():
    """Exercise modules share code only through _core and _scenarios, never each other."""
    for path in sorted(EXERCISES.glob("[!_]*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        relative = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module
        }
        assert relative <= {"_core", "_scenarios"}, f"{path.name} imports {relative}"


def test_notebooks_import_only_public_names_of_the_exercises():
    """Notebooks import an exercise module as ex, never a name from inside one."""
    found = re.compile(r"^from wsteach\.exercises(\.\w+)? import (.+)$", re.MULTILINE)
    for path in sorted(NOTEBOOKS.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
            source = "".join(cell["source"])
            for inside, names in found.findall(source):
                assert not inside, f"{path.name}: from wsteach.exercises{inside}"
                assert not names.startswith("_"), f"{path.name}: imports {names}"


# Scripts as answers (ScriptExercise)

STUBBORN = """\
import asyncio
import signal

from websockets.asyncio.server import serve

PORT = 7890


async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)


async def main():
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C does nothing.
    async with serve(pong, "127.0.0.1", PORT) as server:
        print("Server listening on Port " + str(PORT))
        await server.serve_forever()


asyncio.run(main())
"""


async def test_script_that_answers_and_ignores_ctrl_c(tmp_path):
    """An echo script as 4.5's answer: wrong relay, and still running after Ctrl+C."""
    from wsteach.exercises import broadcast

    path = tmp_path / "server_echo_broadcast.py"
    path.write_text(STUBBORN)
    results = await broadcast.script.results(path, timeout=1)
    assert [r.status for r in results] == ["passed", "failed", "failed", "failed"]
    assert "bob received" in results[1].detail or "A client just connected" in (
        results[1].detail
    )
    assert results[3].detail == (
        "after Ctrl+C (SIGINT): expected 'the script stops', received 'it still runs'"
    )


async def test_script_with_the_wrong_banner_or_none(tmp_path):
    """A script that prints something else, or nothing, and exits is told so."""
    from wsteach.exercises import broadcast, from_the_video

    path = tmp_path / "server_echo_broadcast.py"
    path.write_text('print("Hello")\n')
    results = await broadcast.script.results(path, timeout=1)
    assert results[0].detail.startswith(
        "the script printed: expected 'Server listening on Port "
    )
    assert results[0].detail.endswith("its last line: Hello")
    path.write_text("import sys\nsys.exit(3)\n")
    results = await from_the_video.port_the_script.results(path, timeout=1)
    assert results[0].detail.endswith(
        "received 'nothing' — the script ended (exit code 3)"
    )


async def test_ported_script_with_the_wrong_reply(tmp_path):
    """7.1 with an echo that answers without "Pong: " names what the client got."""
    from wsteach.exercises import from_the_video

    path = tmp_path / "video_server_ported.py"
    path.write_text(STUBBORN.replace('"Pong: " + message', "message"))
    results = await from_the_video.port_the_script.results(path, timeout=1)
    assert results[1].detail.startswith(
        "the client received: expected 'Pong: Hello server', received 'Hello server'"
    )


async def test_script_check_prints_all_passed_and_the_solution(tmp_path, capsys):
    """check() on the solution ends with "all passed"; solution() shows the script."""
    from wsteach.exercises import broadcast

    path = tmp_path / "server_echo_broadcast.py"
    path.write_text(broadcast.script.code.split("\n", 1)[1])
    await broadcast.script.check(path)
    assert capsys.readouterr().out.endswith("  all passed: well done!\n")
    broadcast.script.solution()
    out = capsys.readouterr().out
    assert "%%writefile server_echo_broadcast.py" in out


async def test_hears_after_load_reports_the_wrong_message():
    """The first message after a load that isn't the expected one is reported."""

    async def echo_all(websocket):
        async for message in websocket:
            await websocket.send(message)

    async with wsteach.start(echo_all, port=0, trace=False) as server:
        alice = await wsteach.connect(server.url, name="alice")
        await alice.send("surprise")
        try:
            await hears_after_load(alice, "done", 5)
        except Mismatch as exc:
            assert str(exc) == "alice received: expected 'done', received 'surprise'"
        else:
            raise AssertionError("hears_after_load() accepted the wrong message")
        await alice.close()


async def test_leave_waits_for_the_handlers_finally():
    """leave() returns once the server's handler ran its finally, however slow it is."""
    left = []

    async def slow_goodbye(websocket):
        try:
            async for _ in websocket:
                pass
        finally:
            await asyncio.sleep(0.3)  # A busy machine, or a slow cleanup.
            left.append("bye")

    async with wsteach.start(slow_goodbye, port=0, trace=False) as server:
        run = Run(server.url, None, server=server)
        async with wsteach.connect(server.url) as staying:
            client = await wsteach.connect(server.url)
            await leave(client, run)
            assert left == ["bye"]
            assert not staying.closed


async def test_until_polls_with_a_deadline():
    """until() returns True as soon as the condition holds, False at its deadline."""
    loop = asyncio.get_running_loop()
    soon = loop.time() + 0.05
    assert await until(lambda: loop.time() > soon, 5)
    began = loop.time()
    assert not await until(lambda: False, 0.05)
    assert 0.05 <= loop.time() - began < 1


STARTS_A_CHILD = """
import subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print(f"Server listening, child {child.pid}", flush=True)
time.sleep(60)
"""


async def test_a_script_answer_ends_with_its_children(tmp_path):
    """A script under test is killed as a process group: a child it started (holding its output) ends with it, and the check with them."""
    from wsteach.exercises._scenarios import ScriptExercise, ScriptRun

    pids = []

    async def listens(run: ScriptRun) -> None:
        await run.printed_like(re.compile(r"Server listening, child \d+"), "x")
        pids.append(int(run.output[-1].rsplit(" ", 1)[1]))

    exercise = ScriptExercise(
        "0.7", "Children", scenarios=[("it listens", listens)], hints=[], solution=""
    )
    script = tmp_path / "server.py"
    script.write_text(STARTS_A_CHILD)
    # Without the group kill, the check waits for the child's end (its output).
    (result,) = await asyncio.wait_for(exercise.results(script), 20 * FACTOR)
    assert result.status == "passed", result
    (pid,) = pids
    assert await until(lambda: not _alive(pid), 5)


def _alive(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
