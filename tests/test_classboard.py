"""The class board: its state, its page behind a token, and what students may send."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rawws import Raw, frame, request
from utils import FACTOR
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

import wsteach
from wsteach import classboard
from wsteach.classboard import (
    Board,
    Cell,
    ClassRoom,
    Refused,
    Student,
    clean_cause,
    clean_name,
    clean_note,
    clean_step,
    step_order,
)
from wsteach.limits import Limits

T0 = 1_800_000_000.0


def seconds(value: float) -> float:
    return value * FACTOR


async def poll(condition: Callable[[], Any], within: float = 5.0) -> Any:
    """Wait until ``condition()`` is truthy; fail after ``within`` seconds (scaled)."""
    deadline = time.monotonic() + seconds(within)
    while not (value := condition()):
        assert time.monotonic() < deadline, f"still not true: {condition}"
        await asyncio.sleep(0.01)
    return value


# Validation ------------------------------------------------------------------


def test_names_are_tidied_and_bounded() -> None:
    """A name keeps its letters, loses extra spaces, and is 1 to 40 printable characters."""
    assert clean_name("  Łukasz   Nowak ") == "Łukasz Nowak"
    assert (
        clean_name("<img src=x>") == "<img src=x>"
    )  # Text: the page shows it as text.
    for bad in ("", "   ", "x" * 41, "a\x00b", "\u202eevil", 42, None):
        with pytest.raises(Refused):
            clean_name(bad)


def test_notes_causes_and_steps_are_bounded() -> None:
    """Notes up to 200 characters, causes up to 60 (or none), steps are ids."""
    assert clean_note("my server won't start") == "my server won't start"
    with pytest.raises(Refused, match="note must be 1 to 200"):
        clean_note("x" * 201)
    assert clean_cause(None) == clean_cause("") == ""
    assert clean_cause("no reply") == "no reply"
    with pytest.raises(Refused):
        clean_cause("x" * 61)
    assert clean_step("9.3b") == "9.3b"
    for bad in ("", "2 1", "../x", "x" * 21, 2.1):
        with pytest.raises(Refused, match="step must be an id"):
            clean_step(bad)


def test_steps_sort_in_notebook_order() -> None:
    """2.2 comes before 2.10, numbers before letters, notebooks in order."""
    steps = ["2.10", "10.1", "2.2", "2.1b", "2.1", "0.1"]
    assert sorted(steps, key=step_order) == [
        "0.1",
        "2.1",
        "2.1b",
        "2.2",
        "2.10",
        "10.1",
    ]


# The board's state ------------------------------------------------------------


def test_a_cell_counts_failures_until_a_pass() -> None:
    """Failures add up, a pass clears them and says the step turned green once."""
    cell = Cell()
    assert not cell.record("failed", "no reply", T0)
    assert not cell.record("failed", "mismatch", T0 + 1)
    assert (cell.result, cell.cause, cell.fails) == ("failed", "mismatch", 2)
    assert not cell.record("hint", "", T0 + 2)
    assert not cell.record("solution", "", T0 + 3)
    assert cell.record("passed", "", T0 + 4)
    assert not cell.record("passed", "", T0 + 5)  # Already green: no new progress.
    assert cell.as_json() == {
        "result": "passed",
        "cause": "",
        "fails": 0,
        "hints": 1,
        "solution": True,
        "at": T0 + 5,
    }


def test_join_adds_a_row_and_merges_the_kernels_state() -> None:
    """A join brings its steps and hand; a later join with no steps keeps the row."""
    board = Board(stuck_after=60)
    ada = board.join(
        {
            "name": "ada",
            "steps": {"2.1": {"result": "failed", "cause": "no reply", "fails": 2}},
            "hand": {"text": "help", "ago": 30},
        },
        T0,
    )
    assert ada.cells["2.1"].fails == 2 and ada.cells["2.1"].cause == "no reply"
    assert (ada.hand, ada.hand_since) == ("help", T0 - 30)
    # A restarted kernel knows nothing: its row stays as it was.
    again = board.join({"name": "ada"}, T0 + 100)
    assert again is ada and ada.cells["2.1"].fails == 2 and ada.hand == "help"
    assert ada.progress == T0 + 100  # It was offline: "no progress" starts afresh.
    ada.online = 1
    board.join({"name": "ada", "steps": {"2.2": {"result": "passed"}}}, T0 + 200)
    assert sorted(ada.cells) == ["2.1", "2.2"] and ada.progress == T0 + 100
    board.join({"name": "ada", "hand": None}, T0 + 300)  # Lowered in that kernel.
    assert ada.hand is None


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        ({"name": ""}, "name must be"),
        ({"name": "a", "steps": []}, "steps must be an object"),
        ({"name": "a", "steps": {"x y": {}}}, "step must be an id"),
        ({"name": "a", "steps": {"1.1": "passed"}}, "each step must be an object"),
        ({"name": "a", "steps": {"1.1": {"result": "hint"}}}, "result must be passed"),
        ({"name": "a", "steps": {"1.1": {"fails": -1}}}, "fails and hints"),
        ({"name": "a", "steps": {"1.1": {"hints": True}}}, "fails and hints"),
        ({"name": "a", "hand": "help"}, "hand must be an object"),
        ({"name": "a", "hand": {"text": ""}}, "note must be"),
        ({"name": "a", "hand": {"text": "x", "ago": -5}}, "hand ago"),
        ({"name": "a", "hand": {"text": "x", "ago": "1"}}, "hand ago"),
    ],
)
def test_a_malformed_join_is_refused_with_a_reason(
    message: dict[str, Any], reason: str
) -> None:
    """Each malformed part of a join names itself, and the board is unchanged."""
    board = Board()
    with pytest.raises(Refused, match=reason):
        board.join(message, T0)
    assert board.students == {}


def test_the_board_and_a_row_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past MAX_STUDENTS names and MAX_STEPS steps a row, joins and reports are refused."""
    monkeypatch.setattr(classboard, "MAX_STUDENTS", 2)
    monkeypatch.setattr(classboard, "MAX_STEPS", 3)
    board = Board()
    board.join({"name": "a", "steps": {"1.1": {}, "1.2": {}}}, T0)
    board.join({"name": "b"}, T0)
    with pytest.raises(Refused, match="the board is full"):
        board.join({"name": "c"}, T0)
    with pytest.raises(Refused, match="too many steps"):
        board.join({"name": "a", "steps": {"1.3": {}, "1.4": {}}}, T0)
    with pytest.raises(Refused, match="steps must be an object of at most 3"):
        board.join({"name": "a", "steps": {f"1.{i}": {} for i in range(4)}}, T0)
    student = board.students["a"]
    board.report(student, {"type": "result", "step": "1.3", "result": "hint"}, T0)
    with pytest.raises(Refused, match="too many steps"):
        board.report(student, {"type": "result", "step": "1.4", "result": "hint"}, T0)


def test_reports_change_only_their_row() -> None:
    """Results and hands change the reporting student's row; malformed ones are refused."""
    board = Board()
    ada, bob = board.join({"name": "ada"}, T0), board.join({"name": "bob"}, T0)
    board.report(ada, {"type": "result", "step": "2.1", "result": "passed"}, T0 + 5)
    assert ada.progress == T0 + 5 and bob.cells == {}
    board.report(ada, {"type": "hand", "text": "stuck on 2.2"}, T0 + 6)
    assert (ada.hand, ada.hand_since) == ("stuck on 2.2", T0 + 6)
    board.report(ada, {"type": "hand", "text": None}, T0 + 7)
    assert ada.hand is None
    for bad, reason in (
        ({"type": "result", "step": "2.1", "result": "great"}, "result must be"),
        ({"type": "result", "step": "2.1", "result": "failed", "cause": 3}, "cause"),
        ({"type": "join", "name": "bob"}, "type must be result or hand"),
        ({"type": "hand", "text": "\x07"}, "note must be"),
    ):
        with pytest.raises(Refused, match=reason):
            board.report(ada, bad, T0 + 8)


def test_stuck_means_online_and_failing_or_idle() -> None:
    """Three failures in a row on a step, or no progress for stuck_after; never offline."""
    student = Student("ada", online=1, progress=T0)
    assert student.stuck(T0 + 10, 600) == ""
    assert student.stuck(T0 + 600, 600) == "no progress for 10 min"
    assert student.stuck(T0 + 6000, None) == ""
    for _ in range(3):
        student.cell("2.1").record("failed", "no reply", T0)
    assert student.stuck(T0 + 1, None) == "failed 2.1 3 times"
    student.online = 0
    assert student.stuck(T0 + 6000, 600) == ""


def test_the_csv_has_a_row_per_student_and_no_formulas() -> None:
    """One column per step in order; text a spreadsheet would run gets a quote."""
    board = Board(stuck_after=None)
    ada = board.join({"name": "=cmd|' /C calc'!A0"}, T0)
    board.report(ada, {"type": "result", "step": "2.10", "result": "hint"}, T0)
    board.report(ada, {"type": "result", "step": "2.10", "result": "hint"}, T0)
    board.report(ada, {"type": "result", "step": "2.2", "result": "failed"}, T0)
    board.report(ada, {"type": "result", "step": "2.2", "result": "solution"}, T0)
    board.report(ada, {"type": "hand", "text": "-1+1"}, T0)
    bob = board.join({"name": "bob"}, T0)
    board.report(
        bob,
        {"type": "result", "step": "2.2", "result": "failed", "cause": "no reply"},
        T0,
    )
    board.report(bob, {"type": "result", "step": "2.10", "result": "hint"}, T0)
    board.report(bob, {"type": "result", "step": "2.10", "result": "passed"}, T0)
    board.join({"name": "carol"}, T0)
    since = time.strftime("%H:%M", time.localtime(T0))
    assert board.csv(T0).splitlines() == [
        "name,online,hand,hand since,stuck,2.2,2.10",
        f"'=cmd|' /C calc'!A0,no,'-1+1,{since},,failed:  · solution shown,2 hints",
        "bob,no,,,,failed: no reply,passed · 1 hint",
        "carol,no,,,,,",
    ]
    assert board.snapshot(T0)["students"][1]["cells"]["2.2"]["cause"] == "no reply"


# The server: pages and the token ----------------------------------------------


@contextlib.asynccontextmanager
async def serving(
    limits: Limits | None = None, *, port: int = 0, **options: Any
) -> AsyncIterator[tuple[ClassRoom, wsteach.Running]]:
    """A ClassRoom on ``port`` (a free one by default), as ``wsteach serve class`` serves it."""
    classroom = ClassRoom(limits=limits, flush_every=0.02, **options)
    hooks = classroom.limits.serve_options(pages=classroom.process_request)
    async with wsteach.start(
        classroom.handler, port=port, trace=False, **hooks
    ) as server:
        yield classroom, server


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=seconds(5)) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


async def http(url: str) -> tuple[int, dict[str, str], bytes]:
    return await asyncio.to_thread(get, url)


async def test_the_board_needs_its_token() -> None:
    """The page, the CSV and the feed answer 403 without the token or with a wrong one."""
    async with serving() as (classroom, server):
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/board", "/board?token=nope", "/board.csv", "/board.csv?token="):
            status, _, body = await http(base + path)
            assert status == 403 and b"the board needs its token" in body
        twice = f"/board?token={classroom.token}&token={classroom.token}"
        assert (await http(base + twice))[0] == 403
        for path in ("/board", "/board?token=wrong"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(server.url + path):
                    pass  # pragma: no cover - refused before
            assert refused.value.response.status_code == 403


async def test_with_its_token_the_board_serves_page_script_and_csv() -> None:
    """The token gets the page (strict CSP), the CSV as a download; the script is public."""
    async with serving() as (classroom, server):
        base = f"http://127.0.0.1:{server.port}"
        status, headers, body = await http(f"{base}/board?token={classroom.token}")
        assert status == 200 and b"wsteach class board" in body
        assert "script-src 'self'" in headers["Content-Security-Policy"]
        assert headers["Referrer-Policy"] == "no-referrer"
        status, headers, body = await http(f"{base}/board.js")
        assert status == 200 and b"textContent" in body and b"innerHTML =" not in body
        status, headers, body = await http(f"{base}/board.csv?token={classroom.token}")
        assert status == 200 and body.startswith(b"name,online,hand")
        assert headers["Content-Disposition"].startswith("attachment; filename=")
        assert headers["Content-Type"] == "text/csv; charset=utf-8"
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{server.url}/board.csv?token={classroom.token}"):
                pass  # pragma: no cover - refused before
        assert refused.value.response.status_code == 404


async def test_the_classroom_room_still_relays_chat() -> None:
    """Any other path is the broadcast room, as in wsteach serve broadcast."""
    async with (
        serving() as (classroom, server),
        wsteach.crowd(server.url, "ann", "bob") as (ann, bob),
    ):
        await ann.send("hello")
        assert await bob.recv() == "Someone said: hello"
        assert "0 students online, 0 board pages" in repr(classroom)


# The server: students and board pages -----------------------------------------


async def board_message(page: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(seconds(5)):
        return json.loads(await page.recv())


async def test_a_report_reaches_the_board_within_a_second() -> None:
    """A student's join and report show on a board page well within 1 s."""
    async with (
        serving() as (classroom, server),
        connect(f"{server.url}/board?token={classroom.token}") as page,
        connect(f"{server.url}/class") as student,
    ):
        assert (await board_message(page))["type"] == "board"
        await student.send(json.dumps({"type": "join", "name": "ada"}))
        sent = time.monotonic()
        result = {"type": "result", "step": "2.1", "result": "failed", "cause": "x"}
        await student.send(json.dumps(result))
        rows: dict[str, Any] = {}
        while rows.get("ada", {}).get("cells", {}).get("2.1", {}).get("cause") != "x":
            update = await board_message(page)
            assert update["type"] == "students"
            rows.update({row["name"]: row for row in update["students"]})
        assert time.monotonic() - sent < 1.0
        assert rows["ada"]["online"] is True
        await student.close()
        update = await board_message(page)
        assert update["students"][0]["online"] is False


async def test_a_student_connection_never_gets_the_board() -> None:
    """On /class the server sends nothing, however much the others report."""
    async with (
        serving() as (classroom, server),
        connect(f"{server.url}/class") as eve,
        connect(f"{server.url}/class") as ada,
    ):
        await eve.send(json.dumps({"type": "join", "name": "eve"}))
        await ada.send(json.dumps({"type": "join", "name": "ada"}))
        await ada.send(json.dumps({"type": "hand", "text": "secret question"}))
        await poll(lambda: classroom.board.students.get("ada", Student("")).hand)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):
                await eve.recv()


@pytest.mark.parametrize(
    ("first", "then", "reason"),
    [
        (b"\x00binary", None, "reports are JSON text, not binary"),
        ("not json", None, "reports are JSON objects"),
        ("[1, 2]", None, "reports are JSON objects"),
        ('{"type": "result"}', None, "the first message must be a join"),
        ('{"type": "join", "name": "' + "x" * 500 + '"}', None, "name must be 1 to 40"),
        ('{"type": "join", "name": "ada"}', "x" * 20_000, "report too big"),
        ('{"type": "join", "name": "ada"}', '{"type": "vote"}', "type must be"),
    ],
)
async def test_a_bad_student_message_is_refused_with_a_reason(
    first: str | bytes, then: str | None, reason: str
) -> None:
    """Garbage closes the student's connection with 1008 and says why; the board goes on."""
    async with serving() as (classroom, server):
        async with connect(f"{server.url}/class") as bad:
            await bad.send(first)
            if then is not None:
                await bad.send(then)
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(seconds(5)):
                    await bad.recv()
        assert closed.value.rcvd is not None
        assert (closed.value.rcvd.code, closed.value.rcvd.reason[: len(reason)]) == (
            1008,
            reason,
        )
        async with connect(f"{server.url}/class") as good:
            await good.send(json.dumps({"type": "join", "name": "bob"}))
            await poll(lambda: classroom.board.students.get("bob"))


async def test_a_flood_is_closed_with_the_rate_limit_reason() -> None:
    """A student sending faster than the classroom rate is closed with 1008; others go on."""
    limits = Limits(rate=5, burst=3)
    async with serving(limits) as (classroom, server):
        async with connect(f"{server.url}/class") as flood:
            await flood.send(json.dumps({"type": "join", "name": "flood"}))
            for _ in range(10):
                await flood.send(json.dumps({"type": "hand", "text": "x"}))
            with pytest.raises(ConnectionClosed) as closed:
                async with asyncio.timeout(seconds(5)):
                    await flood.recv()
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1008
        assert closed.value.rcvd.reason.startswith("too many messages")
        await poll(lambda: not classroom.board.students["flood"].online)


async def test_two_kernels_of_one_student_share_the_row() -> None:
    """Two connections under one name (two notebooks open) both update one row."""
    async with (
        serving() as (classroom, server),
        connect(f"{server.url}/class") as first,
        connect(f"{server.url}/class") as second,
    ):
        await first.send(json.dumps({"type": "join", "name": "ada"}))
        steps = {"2.2": {"result": "passed"}}
        await second.send(json.dumps({"type": "join", "name": "ada", "steps": steps}))
        await poll(lambda: classroom.board.students.get("ada", Student("")).online == 2)
        result = {"type": "result", "step": "1.1", "result": "passed"}
        await first.send(json.dumps(result))
        ada = classroom.board.students["ada"]
        await poll(lambda: sorted(ada.cells) == ["1.1", "2.2"])
        await second.close()
        await poll(lambda: ada.online == 1)
        assert ada.stuck(time.time(), 600) == ""  # Still online, through the first.


async def test_a_student_that_vanishes_leaves_its_row_offline() -> None:
    """A kernel whose TCP connection breaks without a close frame goes offline."""
    async with serving() as (classroom, server):
        raw = await Raw.connect(server.port)
        raw.send(request("/class"))
        assert (await raw.response())[0] == 101
        raw.send(frame(1, json.dumps({"type": "join", "name": "ada"}).encode()))
        await poll(lambda: classroom.board.students.get("ada"))
        raw.reset()
        await poll(lambda: not classroom.board.students["ada"].online)


async def test_a_slow_board_page_is_dropped_and_the_others_go_on() -> None:
    """A page that never reads is closed once max_queued bytes wait; others keep getting updates."""
    limits = Limits(max_queued=64 * 1024, rate=None)
    async with (
        serving(limits) as (classroom, server),
        connect(f"{server.url}/board?token={classroom.token}") as reader,
    ):
        await board_message(reader)
        stalled = await Raw.connect(server.port, rcvbuf=4096)
        stalled.send(request(f"/board?token={classroom.token}"))
        assert (await stalled.response())[0] == 101
        await poll(lambda: len(classroom.pages) == 2)
        big = {f"1.{i}": {"result": "failed", "cause": "x" * 60} for i in range(200)}
        classroom.board.join({"name": "ada", "steps": big}, time.time())
        reading = asyncio.create_task(drain(reader))
        for _ in range(2000):
            if len(classroom.pages) == 1:
                break
            classroom.changed("ada")
            classroom.flush()
            await asyncio.sleep(0)
        assert len(classroom.pages) == 1
        await poll(lambda: not classroom._closing)
        reading.cancel()
        stalled.reset()


async def drain(page: ClientConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for _ in page:
            pass


async def test_a_page_that_talks_is_ignored() -> None:
    """What a board page sends changes nothing and reaches nobody."""
    async with (
        serving() as (classroom, server),
        connect(f"{server.url}/board?token={classroom.token}") as page,
    ):
        await board_message(page)
        await page.send("hello?")
        await page.send(b"\x00")
        await poll(lambda: classroom.pages)
        assert classroom.board.students == {}


# Anything at all ----------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda inner: (
        st.lists(inner, max_size=5)
        | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=20,
)
FIELDS = st.fixed_dictionaries(
    {},
    optional={
        "type": st.sampled_from(["join", "result", "hand"]) | JSON,
        "name": st.text(max_size=60) | JSON,
        "step": st.sampled_from(["2.1", "9.3b"]) | JSON,
        "result": st.sampled_from(["passed", "failed", "hint", "solution"]) | JSON,
        "cause": JSON,
        "text": JSON,
        "steps": st.dictionaries(st.text(max_size=5), JSON, max_size=3) | JSON,
        "hand": st.fixed_dictionaries({}, optional={"text": JSON, "ago": JSON}) | JSON,
    },
)


@settings(max_examples=150, deadline=None)
@given(join=FIELDS, reports=st.lists(FIELDS, max_size=5))
def test_any_message_is_taken_or_refused_and_the_board_stays_sound(
    join: dict[str, Any], reports: list[dict[str, Any]]
) -> None:
    """Whatever a student sends, the board takes it or raises Refused; its state stays drawable."""
    board = Board()
    try:
        student = board.join(join, T0)
    except Refused:
        assert board.students == {}
        return
    for report in reports:
        with contextlib.suppress(Refused):
            board.report(student, report, T0 + 1)
    json.dumps(board.snapshot(T0 + 2), allow_nan=False)
    board.csv(T0 + 2)
    assert all(len(name) <= 40 and name.isprintable() for name in board.students)
