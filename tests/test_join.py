"""Joining the class board from a kernel: reports, hands, reconnects, and no class at all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from test_classboard import poll, seconds, serving
from websockets.asyncio.server import ServerConnection, serve

import wsteach
from wsteach import join
from wsteach.classboard import ClassRoom, Student
from wsteach.exercises import echo_server, first_client
from wsteach.limits import Limits


@pytest.fixture(autouse=True)
def _no_class(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts outside any class, and leaves the one it joined."""
    monkeypatch.delenv("WSTEACH_CLASS", raising=False)
    monkeypatch.delenv("WSTEACH_NAME", raising=False)
    yield
    mate = join.current()
    if mate is not None:
        mate.leave()
    join._current = None


def joined(url: str, name: str = "ada") -> join.Classmate:
    mate = wsteach.join_class(url, name=name)
    assert mate is not None
    mate.first_backoff = 0.05
    mate.most_backoff = 0.2
    return mate


def row(classroom: ClassRoom, name: str = "ada") -> Student | None:
    return classroom.board.students.get(name)


def cell(classroom: ClassRoom, step: str, name: str = "ada") -> dict[str, Any]:
    student = row(classroom, name)
    if student is None or step not in student.cells:
        return {}
    return student.cells[step].as_json()


async def echo(websocket: Any) -> None:
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)


async def no_reply(websocket: Any) -> None:
    async for _ in websocket:
        pass


# No class ------------------------------------------------------------------


async def test_without_a_class_join_does_nothing() -> None:
    """No address and no WSTEACH_CLASS: None, and reports go nowhere."""
    assert wsteach.join_class() is None
    assert wsteach.join_class(name="ada") is None
    join.report("2.2", "passed")
    wsteach.lower_hand()
    assert join.current() is None


def test_raising_a_hand_without_a_class_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """raise_hand outside a class prints how to join, and raises nothing."""
    wsteach.raise_hand("help")
    assert capsys.readouterr().out == "you are not in a class: join_class(...) first\n"


async def test_bad_addresses_and_names_are_refused_at_once() -> None:
    """A non-ws address or an unusable name is a ValueError in the joining cell."""
    with pytest.raises(ValueError, match="must look like ws://HOST:7890"):
        wsteach.join_class("http://localhost:7890", name="ada")
    with pytest.raises(ValueError, match="must look like ws://HOST:7890"):
        wsteach.join_class("ws://", name="ada")
    with pytest.raises(ValueError, match="name must be 1 to 40"):
        wsteach.join_class("ws://localhost:7890", name="x" * 41)
    assert join.current() is None


def test_joining_needs_a_running_loop() -> None:
    """Outside a notebook cell or async code, join_class says it needs the event loop."""
    with pytest.raises(RuntimeError):
        wsteach.join_class("ws://localhost:7890", name="ada")


def test_the_address_becomes_the_board_path() -> None:
    """Whatever path the instructor's address has, reports go to /class."""
    assert join.class_url("ws://10.0.0.5:7890") == "ws://10.0.0.5:7890/class"
    assert join.class_url("wss://h.example/chat?x=1") == "wss://h.example/class"


# In a class ------------------------------------------------------------------


async def test_checks_hints_and_solutions_reach_the_board(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An exercise's check, hint and solution, and a question, each update the row."""
    async with serving() as (classroom, server):
        mate = joined(server.url)
        assert "as 'ada'" in repr(mate)
        await poll(lambda: row(classroom))
        await echo_server.handler.check(no_reply)
        await poll(lambda: cell(classroom, "2.2").get("result") == "failed")
        assert cell(classroom, "2.2")["cause"]
        echo_server.handler.hint()
        echo_server.handler.solution()
        await echo_server.handler.check(echo)
        state = await poll(lambda: cell(classroom, "2.2").get("result") == "passed")
        assert state
        assert cell(classroom, "2.2")["hints"] == 1
        assert cell(classroom, "2.2")["solution"] is True
        first_client.predict_1_1.check(1006)
        await poll(lambda: cell(classroom, "1.1").get("cause") == "wrong prediction")
        first_client.predict_1_1.check(1000)
        first_client.predict_1_1.hint()
        first_client.predict_1_1.solution()
        first_client.predict_1_1.check(...)  # Not attempted: not reported.
        await poll(lambda: cell(classroom, "1.1").get("solution"))
        assert cell(classroom, "1.1")["result"] == "passed"
        assert cell(classroom, "1.1")["hints"] == 1
        await echo_server.port.check({})  # Not attempted: nothing reported.
        assert "2.1" not in row(classroom).cells
        await echo_server.port.check({"PORT": "x"})
        await poll(lambda: cell(classroom, "2.1").get("result") == "failed")
        assert mate.status == "connected"
    capsys.readouterr()


async def test_hands_go_up_and_down_on_the_board(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """raise_hand puts the note on the row, lower_hand takes it off; bad notes are refused."""
    async with serving() as (classroom, server):
        joined(server.url)
        wsteach.raise_hand("my server won't start")
        assert capsys.readouterr().out == "hand raised: my server won't start\n"
        await poll(lambda: row(classroom) and row(classroom).hand)
        with pytest.raises(ValueError, match="note must be 1 to 200"):
            wsteach.raise_hand("x" * 500)
        wsteach.lower_hand()
        assert capsys.readouterr().out == "hand lowered\n"
        await poll(lambda: row(classroom).hand is None)


async def test_the_environment_names_the_class_and_the_student(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """WSTEACH_CLASS and WSTEACH_NAME stand in for the arguments."""
    async with serving() as (classroom, server):
        monkeypatch.setenv("WSTEACH_CLASS", server.url)
        monkeypatch.setenv("WSTEACH_NAME", "grace")
        mate = wsteach.join_class()
        assert mate is not None and mate.name == "grace"
        await poll(lambda: row(classroom, "grace"))
        monkeypatch.delenv("WSTEACH_NAME")
        mate = wsteach.join_class()
        assert mate is not None and mate.name == join._login()


async def test_joining_again_is_rerun_safe_and_keeps_the_state() -> None:
    """The same join returns the same membership; another name leaves the first, state kept."""
    async with serving() as (classroom, server):
        first = joined(server.url)
        assert wsteach.join_class(server.url, name="ada") is first
        join.report("2.2", "passed")
        wsteach.raise_hand("question")
        await poll(lambda: cell(classroom, "2.2"))
        second = joined(server.url, name="ada2")
        await first.wait_left()
        await poll(lambda: row(classroom, "ada2") and not row(classroom).online)
        assert cell(classroom, "2.2", "ada2")["result"] == "passed"
        assert row(classroom, "ada2").hand == "question"
        assert second.steps is first.steps


async def test_a_report_the_board_would_refuse_is_dropped_quietly() -> None:
    """report() never raises into a check, whatever it is given."""
    async with serving() as (_, server):
        mate = joined(server.url)
        join.report("not a step!", "passed")
        join.report("2.2", "great")
        with pytest.raises(ValueError, match="unknown result"):
            mate.report("2.2", "great")
        assert mate.queue == type(mate.queue)()


# The server away ---------------------------------------------------------------


@contextlib.asynccontextmanager
async def nothing_listening() -> AsyncIterator[str]:
    """The address of a port where nothing listens."""
    server = await serve(no_reply, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    yield f"ws://127.0.0.1:{port}"


async def test_with_the_server_away_a_check_is_not_slowed() -> None:
    """Joined to nothing, a check takes as long as without a class; the queue stays bounded."""
    async with nothing_listening() as url:
        started = time.monotonic()
        await echo_server.handler.check(echo)
        alone = time.monotonic() - started
        mate = joined(url)
        started = time.monotonic()
        await echo_server.handler.check(echo)
        joined_time = time.monotonic() - started
        assert joined_time < alone + seconds(0.5)
        await poll(lambda: mate.status.startswith("retrying"))
        assert "ConnectionRefusedError" in mate.status
        for _ in range(join.QUEUE_SIZE + 50):
            join.report("9.9", "failed", "no reply")
        assert len(mate.queue) == join.QUEUE_SIZE
        assert mate.steps["9.9"]["fails"] == join.QUEUE_SIZE + 50


async def test_a_restarted_server_gets_the_board_back() -> None:
    """After the server restarts on the same port, the kernel reconnects and resends its state."""
    async with serving() as (classroom, server):
        port = server.port
        joined(server.url)
        join.report("2.2", "passed")
        wsteach.raise_hand("still here?")
        await poll(lambda: cell(classroom, "2.2"))
    join.report("2.3", "failed", "timeout")  # While the server is away.
    limits = Limits()
    restarted = ClassRoom(limits=limits, flush_every=0.02)
    options = limits.serve_options(pages=restarted.process_request)
    async with wsteach.start(restarted.handler, port=port, trace=False, **options):
        await poll(lambda: cell(restarted, "2.3"), within=10)
        assert cell(restarted, "2.2")["result"] == "passed"
        assert cell(restarted, "2.3") | {"at": 0} == {
            "result": "failed",
            "cause": "timeout",
            "fails": 1,
            "hints": 0,
            "solution": False,
            "at": 0,
        }
        assert row(restarted).hand == "still here?"
        assert row(restarted).hand_since <= time.time() - 0.0


async def test_a_full_server_is_tried_again() -> None:
    """HTTP 503 (the class is full) is a reason to retry, and the status says so."""
    async with serving(Limits(max_clients=1)) as (_, server):
        async with wsteach.connect(server.url):
            mate = joined(server.url)
            await poll(lambda: "HTTP 503" in mate.status)
        await poll(lambda: mate.status == "connected")


async def refuse(websocket: ServerConnection) -> None:
    await websocket.close(1008, "go away")


async def drop(websocket: ServerConnection) -> None:
    from wsteach.internals import transport

    await websocket.recv()
    transport(websocket).abort()


async def taken(websocket: ServerConnection) -> None:
    await websocket.close(1013, "")


async def test_a_final_refusal_stops_the_task() -> None:
    """Closed with 1008, the kernel stops trying and its status says why."""
    async with serve(refuse, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        mate = joined(f"ws://127.0.0.1:{port}")
        await poll(lambda: mate._task.done())
        assert mate.status == "refused: go away"


@pytest.mark.parametrize(
    ("handler", "why"), [(drop, "connection lost"), (taken, "closed")]
)
async def test_a_lost_or_busy_connection_is_tried_again(handler: Any, why: str) -> None:
    """A dropped connection, or a close without a reason, means retry."""
    async with serve(handler, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        mate = joined(f"ws://127.0.0.1:{port}")
        await poll(lambda: why in mate.status)
        assert mate.status.startswith("retrying")


async def test_reports_are_paced_under_the_rate_limit() -> None:
    """A burst of reports is sent at RATE per second, so the class never closes it."""
    async with serving(Limits(rate=join.RATE, burst=10)) as (classroom, server):
        mate = joined(server.url)
        await poll(lambda: row(classroom))
        for _ in range(14):
            join.report("2.2", "hint")
        await poll(lambda: cell(classroom, "2.2").get("hints") == 14, within=10)
        assert mate.status == "connected"
        await asyncio.sleep(0)


# A real kernel -----------------------------------------------------------------

KERNEL_HANDLER = """
async def handler(websocket):
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)
"""


async def test_a_kernel_reports_each_check_and_keeps_its_row_after_a_restart(
    tmp_path: Path,
) -> None:
    """A real kernel joined through WSTEACH_CLASS shows each check on the board within 1 s."""
    from kernel import Kernel

    async with serving() as (classroom, server):
        env = {"WSTEACH_CLASS": server.url, "WSTEACH_NAME": "kernel ada"}
        kernel = await Kernel.start(tmp_path, env)
        try:
            shown = await kernel.run("import wsteach\nwsteach.join_class()")
            assert "as 'kernel ada'" in shown["result"], shown
            await poll(lambda: row(classroom, "kernel ada"), within=10)
            await kernel.run(KERNEL_HANDLER)
            shown = await kernel.run(
                "from wsteach.exercises import echo_server as ex\n"
                "await ex.handler.check(handler)"
            )
            assert "all passed" in shown["stdout"], shown
            checked = time.monotonic()
            await poll(lambda: cell(classroom, "2.2", "kernel ada").get("result"))
            assert time.monotonic() - checked < 1.0
            await kernel.run('wsteach.raise_hand("is this right?")')
            await poll(lambda: row(classroom, "kernel ada").hand == "is this right?")
        finally:
            await kernel.stop()
        await poll(lambda: not row(classroom, "kernel ada").online, within=10)
        # A restarted kernel knows nothing, and its row keeps what it had.
        kernel = await Kernel.start(tmp_path, env)
        try:
            await kernel.run("import wsteach\nwsteach.join_class()")
            await poll(lambda: row(classroom, "kernel ada").online, within=10)
            assert cell(classroom, "2.2", "kernel ada")["result"] == "passed"
        finally:
            await kernel.stop()


# Other kernels of this computer -------------------------------------------------


async def test_a_join_is_remembered_for_the_other_kernels() -> None:
    """After join_class(URL) in 00, another kernel's first check joins the same class."""
    async with serving() as (classroom, server):
        first = joined(server.url)
        assert json.loads(join.class_file().read_text())["name"] == "ada"
        await poll(lambda: row(classroom))
        first.leave()  # As if that kernel stopped: another kernel has joined nothing yet.
        await first.wait_left()
        await poll(lambda: not row(classroom).online)
        join._current = None
        await echo_server.handler.check(echo)
        assert join.current() is not None
        await poll(lambda: cell(classroom, "2.2").get("result") == "passed")
        wsteach.leave_class()
        assert join.current() is None and not join.class_file().exists()
        wsteach.leave_class()  # Twice: nothing left to do.
        join.report("2.2", "passed")
        assert join.current() is None


@pytest.mark.parametrize(
    "content",
    ["not json", '{"url": "ws://x:1"}', '{"url": "ws://x:1", "name": "a", "at": 0}'],
)
def test_a_broken_or_old_memory_is_ignored(content: str) -> None:
    """A file that doesn't parse, lacks a field or is older than a day joins nothing."""
    join.class_file().write_text(content)
    assert join._remembered() is None


def test_without_an_event_loop_a_report_joins_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """report() from plain sync code (no loop) with WSTEACH_CLASS set stays quiet."""
    monkeypatch.setenv("WSTEACH_CLASS", "ws://127.0.0.1:9")
    join.report("2.2", "passed")
    assert join.current() is None


async def test_the_environment_joins_on_the_first_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With WSTEACH_CLASS set, a kernel's first check joins without any cell."""
    async with serving() as (classroom, server):
        monkeypatch.setenv("WSTEACH_CLASS", server.url)
        monkeypatch.setenv("WSTEACH_NAME", "ada")
        join.report("2.2", "hint")
        await poll(lambda: cell(classroom, "2.2").get("hints") == 1)
        assert not join.class_file().exists()  # The environment needs no memory.
        join._current.leave()
        join._current = None  # Another kernel, whose first word is a raised hand.
        wsteach.raise_hand("help")
        await poll(lambda: row(classroom).hand == "help")
        join._current.leave()
        join._current = None
        wsteach.lower_hand()
        await poll(lambda: row(classroom).hand is None)


def test_the_class_file_is_in_the_home_unless_told(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """~/.wsteach/class.json by default; WSTEACH_CLASS_FILE moves it."""
    monkeypatch.delenv("WSTEACH_CLASS_FILE")
    assert join.class_file() == Path.home() / ".wsteach" / "class.json"


async def test_a_queue_that_overflows_while_connected_sends_the_whole_state() -> None:
    """More reports at once than the queue holds: the kernel rejoins, and nothing is lost."""
    async with serving(Limits(rate=None)) as (classroom, server):
        mate = joined(server.url)
        await poll(lambda: row(classroom) and mate.status == "connected")
        for _ in range(join.QUEUE_SIZE + 50):
            join.report("2.2", "failed", "no reply")
        assert mate.overflowed
        await poll(lambda: cell(classroom, "2.2").get("fails") == join.QUEUE_SIZE + 50)
        await poll(lambda: not mate.overflowed and mate.status == "connected")
