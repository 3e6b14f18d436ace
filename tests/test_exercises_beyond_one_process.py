"""Notebook 08's exercises: the student's room_redis.py, run as real processes on Redis."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from redisserver import running_redis
from utils import FACTOR

import wsteach
import wsteach.exercises
from wsteach.exercises import Exercise
from wsteach.exercises import beyond_one_process as ex
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED, Result

ROOT = Path(__file__).resolve().parent.parent
NAME = "08-beyond-one-process.ipynb"
MARKER = re.compile(r"^\s*# (BEGIN|END) SOLUTION")


def script_cell(path: Path) -> str:
    """The room_redis.py that the notebook's %%writefile cell writes."""
    for cell in nbformat.read(path, as_version=4).cells:
        if cell.source.startswith("%%writefile room_redis.py"):
            return cell.source.split("\n", 1)[1] + "\n"
    raise AssertionError(f"{path.name} has no %%writefile room_redis.py cell")


def solution_script() -> str:
    lines = script_cell(ROOT / "notebooks" / "solutions" / NAME).splitlines()
    return "\n".join(line for line in lines if not MARKER.match(line)) + "\n"


@pytest.fixture
def write(tmp_path: Path) -> Iterator[object]:
    def writer(source: str, name: str = "room_redis.py") -> Path:
        path = tmp_path / name
        path.write_text(source)
        return path

    yield writer


def test_solution_is_the_notebooks_script() -> None:
    """ex.SOLUTION is the solution notebook's room_redis.py, markers left out."""
    assert solution_script() == ex.SOLUTION


@pytest.mark.parametrize("exercise", [ex.publish, ex.relay], ids=["8.1", "8.2"])
async def test_solution_passes(exercise: ex.ScriptExercise, write) -> None:
    """The notebook's script passes every scenario, run as two real processes."""
    results = await exercise.results(write(solution_script()))
    assert [r.status for r in results] == [PASSED] * len(results), results


@pytest.mark.parametrize("exercise", [ex.publish, ex.relay], ids=["8.1", "8.2"])
async def test_student_stub_is_not_attempted(
    exercise: ex.ScriptExercise, write
) -> None:
    """The student notebook's script reports "not attempted yet" for both exercises."""
    student = script_cell(ROOT / "notebooks" / NAME)
    assert "r.publish" not in student and "create_task" not in student
    results = await exercise.results(write(student))
    assert [r.status for r in results] == [NOT_ATTEMPTED] * len(results), results


async def test_forgotten_subscriber_task_is_named(write, capsys) -> None:
    """A start_relay that starts no task: 8.2 fails and names the likely cause."""
    source = ex.SOLUTION.replace(
        "    return asyncio.create_task(relay_from_redis(pubsub))", "    ..."
    )
    await ex.relay.check(write(source))
    out = capsys.readouterr().out
    assert "✗" in out and "all passed" not in out
    assert "does start_relay start relay_from_redis with asyncio.create_task" in out


async def test_plain_text_on_the_channel_fails_8_1(write, capsys) -> None:
    """Publishing the bare text, without its sender, fails 8.1 saying what arrived."""
    source = ex.SOLUTION.replace(
        "await r.publish(CHANNEL, json.dumps(data))",
        "await r.publish(CHANNEL, message)",
    )
    await ex.publish.check(write(source))
    out = capsys.readouterr().out
    assert "published on the channel: expected {'sender': '…', 'text': 'hi'}" in out
    assert "received 'hi'" in out


async def test_8_2_needs_8_1(write) -> None:
    """With publish still a stub, 8.2 says to write it first."""
    source = ex.SOLUTION.replace(
        '    data = {"sender": str(websocket.id), "text": message}\n'
        "    await r.publish(CHANNEL, json.dumps(data))",
        "    ...",
    )
    results = await ex.relay.results(write(source))
    assert {(r.status, r.detail) for r in results} == {
        (FAILED, "write publish first (the exercise before)")
    }


async def test_crash_at_start_is_shown(write) -> None:
    """A script that exits before listening fails with its last line of output."""
    source = ex.SOLUTION.replace('CHANNEL = "room"', 'CHANNEL = "room"\n1 / 0')
    results = await ex.publish.results(write(source))
    assert results[0].status == FAILED
    assert results[0].detail.startswith("your script exited (code 1)")
    assert results[0].detail.endswith("ZeroDivisionError: division by zero")


async def test_unusable_answers(write) -> None:
    """No file, a syntax error, a renamed function: one clear line each."""
    missing = await ex.publish.results("no_such_file.py")
    assert missing[0].detail == (
        "there is no file no_such_file.py: run its %%writefile cell first"
    )
    broken = await ex.publish.results(write("def publish(:\n"))
    assert broken[0].detail == "room_redis.py has a syntax error on line 1"
    renamed = await ex.publish.results(write("async def send_it(websocket, m): pass\n"))
    assert renamed[0].detail == "room_redis.py has no function publish: keep its name"


def test_hints_and_solution(capsys) -> None:
    """Two hints each, then the solution's code."""
    for exercise in (ex.publish, ex.relay):
        exercise.hint()
        exercise.hint(2)
        exercise.hint(3)
        exercise.solution()
        assert (
            repr(exercise) == f"<ScriptExercise {exercise.number} · {exercise.title}>"
        )
    out = capsys.readouterr().out
    assert out.count("Hint 1 of 2") == 2 and out.count("Hint 2 of 2") == 2
    assert "await r.publish(CHANNEL, json.dumps(data))" in out
    assert "return asyncio.create_task(relay_from_redis(pubsub))" in out


def test_numbers_are_unique() -> None:
    """8.1 and 8.2 are numbers no other exercise uses."""
    numbers = []
    for info in pkgutil.iter_modules(wsteach.exercises.__path__):
        module = importlib.import_module(f"wsteach.exercises.{info.name}")
        numbers += [
            value.number
            for value in vars(module).values()
            if isinstance(value, Exercise | ex.ScriptExercise)
        ]
    assert numbers.count("8.1") == numbers.count("8.2") == 1


async def test_redis_away_breaks_the_students_room(write) -> None:
    """As notebook 08 says: with Redis away the handler crashes (1011), and the room stays split."""
    path = write(ex.SOLUTION)
    with running_redis() as redis:
        outputs = [path.parent / "a.log", path.parent / "b.log"]
        ports = ex._free_ports(2)
        processes = []
        for port, output in zip(ports, outputs, strict=True):
            with output.open("wb") as out:
                processes.append(
                    await asyncio.create_subprocess_exec(
                        sys.executable,
                        "-u",
                        str(path),
                        str(port),
                        redis.url,
                        stdout=out,
                        stderr=asyncio.subprocess.STDOUT,
                    )
                )
        try:
            for output in outputs:
                await until_in(output, "Server listening")
            alice = await wsteach.connect(f"ws://127.0.0.1:{ports[0]}", name="alice")
            bob = await wsteach.connect(f"ws://127.0.0.1:{ports[1]}", name="bob")
            redis.kill()
            await alice.send("anyone?")
            # redis-py may retry a few times before it raises.
            await alice.wait_closed(15 * FACTOR)
            assert alice.close_code == 1011
            await until_in(outputs[0], "connection handler failed")
            await until_in(outputs[0], "redis.exceptions.ConnectionError")
            redis.start()
            carol = await wsteach.connect(f"ws://127.0.0.1:{ports[0]}", name="carol")
            await carol.send("back?")
            with pytest.raises(TimeoutError):
                await bob.recv(0.5 * FACTOR)
            await carol.close()
            await bob.close()
        finally:
            for process in processes:
                process.kill()
                await process.wait()


def contains(path: Path, text: str) -> bool:
    return text in path.read_text(errors="replace")


async def until_in(path: Path, text: str) -> None:
    """Wait until the file at ``path`` contains ``text`` (10 s at most), checking every 20 ms."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * FACTOR
    while not contains(path, text):
        if loop.time() > deadline:
            raise AssertionError(f"{path.name} never said {text!r}")
        await asyncio.sleep(0.02)


async def test_one_sender_for_everyone_fails_8_1(write) -> None:
    """Publishing the same sender for alice and bob fails 8.1's second scenario, saying so."""
    source = ex.SOLUTION.replace('"sender": str(websocket.id)', '"sender": "me"')
    results = await ex.publish.results(write(source))
    assert results[0].status == PASSED
    assert results[1] == Result(
        results[1].scenario,
        FAILED,
        "alice and bob published as: expected 'two senders', received 'me'",
    )


async def test_sender_that_is_not_text_fails_8_1(write) -> None:
    """A sender published as a number, not str(websocket.id), fails 8.1 saying what arrived."""
    source = ex.SOLUTION.replace('"sender": str(websocket.id)', '"sender": 0')
    results = await ex.publish.results(write(source))
    assert {r.detail for r in results} == {
        "the sender published: expected 'str(websocket.id)', received 0"
    }


async def test_nothing_on_the_channel_fails_8_1(write) -> None:
    """Publishing on another channel fails 8.1 with "received nothing" once the wait is over."""
    source = ex.SOLUTION.replace(
        "r.publish(CHANNEL, json.dumps(data))",
        'r.publish("elsewhere", json.dumps(data))',
    )
    results = await ex.publish.results(write(source))
    assert [r.status for r in results] == [FAILED, FAILED]
    assert results[0].detail == (
        "published on the channel: expected {'sender': '…', 'text': 'hi'}, "
        "received nothing"
    )


async def test_crash_in_publish_shows_the_traceback_line(write) -> None:
    """When the script printed a traceback, the failed line ends with its last line."""
    source = ex.SOLUTION.replace(
        "    await r.publish(CHANNEL, json.dumps(data))",
        "    await r.publish(CHANNEL, json.dumps(data) + 1)",
    )
    results = await ex.publish.results(write(source))
    assert results[0].status == FAILED
    assert results[0].detail.endswith(
        '; your script printed: TypeError: can only concatenate str (not "int") to str'
    )


async def test_wrong_text_from_the_relay_names_no_cause(write) -> None:
    """A relay that delivers the wrong text fails 8.2 with the mismatch and no guessed cause."""
    source = ex.SOLUTION.replace('"Someone said: "', '"Someone wrote: "')
    results = await ex.relay.results(write(source))
    assert results[0].status == FAILED
    assert results[0].detail == (
        "bob received: expected 'Someone said: hi', received 'Someone wrote: hi'"
    )


LISTENS_WITHOUT_SERVING = """
import sys
import time


async def publish(websocket, message):
    print(message)


print("Server listening on ws://localhost:" + sys.argv[1])
time.sleep(60)
"""


async def test_script_that_serves_nothing_fails_with_the_error(write) -> None:
    """A script that says it listens but serves nothing: the connection error is the failed line."""
    results = await ex.publish.results(write(LISTENS_WITHOUT_SERVING))
    assert [r.status for r in results] == [FAILED, FAILED]
    assert results[0].detail.startswith(
        "ConnectionRefusedError: [Errno 111] nothing is listening at ws://127.0.0.1:"
    )


NEVER_ANSWERS = """
import socket
import sys
import time


async def publish(websocket, message):
    print(message)


# Connections wait in the backlog: the opening handshake never gets an answer.
sock = socket.create_server(("127.0.0.1", int(sys.argv[1])))
print("Server listening on ws://localhost:" + sys.argv[1])
time.sleep(60)
"""


async def test_scenario_that_times_out_gives_up(write) -> None:
    """A scenario that raises TimeoutError fails with "gave up after N s", the exercise's limit."""

    async def handshake(servers: ex.Servers) -> None:
        async with wsteach.connect(servers.urls[0], open_timeout=0.2 * FACTOR):
            pass

    exercise = ex.ScriptExercise(
        "0.8",
        "Times out",
        functions=["publish"],
        scenarios=[("the handshake completes", handshake)],
        hints=[],
        solution="",
    )
    (result,) = await exercise.results(write(NEVER_ANSWERS))
    limit = ex.Servers([], "").timeout * 10
    assert result == Result(
        "the handshake completes", FAILED, f"gave up after {limit:g} s"
    )


async def test_script_that_never_says_listening_fails(write, monkeypatch) -> None:
    """A script that never prints "Server listening" fails every scenario once the wait is over."""
    monkeypatch.setattr(ex, "_START_TIMEOUT", 0.5 * FACTOR)
    source = "import time\n\n\nasync def publish(websocket, message):\n    print(message)\n\n\ntime.sleep(60)\n"
    results = await ex.publish.results(write(source))
    assert {(r.status, r.detail) for r in results} == {
        (
            FAILED,
            f"your script didn't print 'Server listening' within {0.5 * FACTOR:g} s",
        )
    }


STARTS_A_CHILD = """
import subprocess
import sys
import time


async def publish(websocket, message):
    print(message)


child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
with open(f"child-{sys.argv[1]}.pid", "w") as out:
    out.write(str(child.pid))
print("Server listening on ws://localhost:" + sys.argv[1])
time.sleep(60)
"""


async def test_the_scripts_children_end_with_it(write) -> None:
    """The 8.x runner kills each script's process group: a child the script started ends too."""
    import os

    path = write(STARTS_A_CHILD)
    await ex.publish.results(path)
    pids = [int(p.read_text()) for p in path.parent.glob("child-*.pid")]
    assert len(pids) == 2

    def alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10 * FACTOR
    while any(alive(pid) for pid in pids) and loop.time() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert not any(alive(pid) for pid in pids)
