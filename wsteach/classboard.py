"""The class board: the instructor sees who is stuck, and on what.

``wsteach serve class`` serves a :class:`ClassRoom` on one port:

==================  ==========================================================
path                what
==================  ==========================================================
``/class``          students' kernels report here (:mod:`wsteach.join`); the
                    server sends them nothing back but a close reason
``/board?token=…``  the board page (plain GET), and its live feed (WebSocket)
``/board.js``       the page's script (no data in it, so no token)
``/board.csv?…``    the board as a CSV download, token required
anything else       the broadcast room (:class:`wsteach.Room`), as in
                    ``wsteach serve broadcast``
==================  ==========================================================

What a student's kernel sends, one JSON object per text message:

- ``{"type": "join", "name": "ada", "steps": {...}, "hand": ...}`` first,
  after every (re)connect, with the kernel's latest state, so that a
  restarted server rebuilds the board; a restarted kernel sends no steps and
  keeps its row. ``hand`` is ``{"text": ..., "ago": seconds}`` (up), ``null``
  (lowered), or absent (this kernel never touched it: the row's stays);
- ``{"type": "result", "step": "2.1", "result": "failed", "cause": "no reply"}``
  after each check, hint or solution;
- ``{"type": "hand", "text": "my server won't start"}``, and ``"text": null``
  to lower it.

A connection can only change the row of the name it joined with. Each
notebook runs in a kernel of its own, so one student is often several
connections under one name: they share the row, each step in it updated by
whichever kernel checked it last. Names are not passwords: anyone could join
under someone else's name, and the board can't tell. Anything malformed closes the connection with 1008 and a reason
(:exc:`Refused`), and the room's rate limit holds here too. Nothing is written
to disk: the board lives in memory and the instructor exports the CSV.

:class:`Board` is the state, with no I/O and no clock of its own (callers pass
the time), so it is tested without a network.
"""

from __future__ import annotations

import asyncio
import csv
import email.utils
import io
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.asyncio.server import ServerConnection, broadcast
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosedError
from websockets.frames import CloseCode
from websockets.http11 import Request, Response

from .handlers import Room, _over_rate, _rate_limit
from .internals import transport
from .limits import Limits, close_for_limit

__all__ = [
    "MAX_NOTE",
    "MAX_STEPS",
    "MAX_STUDENTS",
    "RESULTS",
    "Board",
    "Cell",
    "ClassRoom",
    "Refused",
    "Student",
    "clean_cause",
    "clean_name",
    "clean_note",
    "clean_step",
    "step_order",
]

RESULTS = ("passed", "failed", "hint", "solution")
"""What a report says about a step."""

MAX_NAME = 40
MAX_NOTE = 200
MAX_CAUSE = 60
MAX_STEPS = 200
"""Steps one student's row may hold; more are refused."""
MAX_STUDENTS = 1000
"""Rows the board holds, offline ones included; new names past it are refused."""
MAX_REPORT = 16 * 1024
"""Largest message a student's kernel may send, in bytes."""
STUCK_FAILS = 3
"""Failing the same step this many times in a row marks a student stuck."""

_STEP = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,19}")


class Refused(ValueError):
    """A message the board won't take; its text is the close reason (short)."""


def _text(value: Any, what: str, most: int) -> str:
    if not isinstance(value, str):
        raise Refused(f"{what} must be text")
    text = " ".join(value.split())
    if not 1 <= len(text) <= most or not text.isprintable():
        raise Refused(f"{what} must be 1 to {most} printable characters")
    return text


def clean_name(value: Any) -> str:
    """Return a student's name with its spaces tidied, or raise :exc:`Refused`.

    1 to 40 printable characters (letters of any script, digits, punctuation);
    runs of whitespace become one space.
    """
    return _text(value, "name", MAX_NAME)


def clean_note(value: Any) -> str:
    """Return a raised hand's note (1 to 200 printable characters), or raise."""
    return _text(value, "note", MAX_NOTE)


def clean_cause(value: Any) -> str:
    """Return a failure's cause (0 to 60 printable characters), or raise."""
    return "" if value in (None, "") else _text(value, "cause", MAX_CAUSE)


def clean_step(value: Any) -> str:
    """Return a step id such as ``2.1`` or ``9.3b``, or raise :exc:`Refused`."""
    if not isinstance(value, str) or not _STEP.fullmatch(value):
        raise Refused("step must be an id such as 2.1")
    return value


def step_order(step: str) -> tuple[tuple[int, int, str], ...]:
    """Sort key that puts steps in notebook order: 2.1 < 2.1b < 2.2 < 2.10 < 3.1."""
    return tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in re.findall(r"[0-9]+|[^0-9._-]+", step)
    )


@dataclass
class Cell:
    """One student's last word on one step.

    Attributes:
        result: The last check's outcome, ``passed`` or ``failed``; ``""``
            while only hints or the solution were asked for.
        cause: The last failure's cause (short), ``""`` once passed.
        fails: Failed checks in a row since the last pass.
        hints: Hints asked for.
        solution: Whether the solution was shown.
        at: When the cell last changed (seconds since the epoch).
    """

    result: str = ""
    cause: str = ""
    fails: int = 0
    hints: int = 0
    solution: bool = False
    at: float = 0.0

    def record(self, result: str, cause: str, now: float) -> bool:
        """Apply one report; return whether the step turned green."""
        self.at = now
        if result == "hint":
            self.hints += 1
        elif result == "solution":
            self.solution = True
        elif result == "failed":
            self.result, self.cause = "failed", cause
            self.fails += 1
        else:
            turned = self.result != "passed"
            self.result, self.cause, self.fails = "passed", "", 0
            return turned
        return False

    def as_json(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "cause": self.cause,
            "fails": self.fails,
            "hints": self.hints,
            "solution": self.solution,
            "at": self.at,
        }


@dataclass
class Student:
    """One row of the board.

    Attributes:
        name: As the student joined.
        online: Live connections under this name: one per kernel that joined.
        progress: When a step last turned green, or the student joined.
        hand: The raised hand's note, or None.
        hand_since: When the hand went up.
        cells: Step id → :class:`Cell`.
    """

    name: str
    online: int = 0
    progress: float = 0.0
    hand: str | None = None
    hand_since: float = 0.0
    cells: dict[str, Cell] = field(default_factory=dict)

    def cell(self, step: str) -> Cell:
        if step not in self.cells:
            if len(self.cells) >= MAX_STEPS:
                raise Refused(f"too many steps: at most {MAX_STEPS}")
            self.cells[step] = Cell()
        return self.cells[step]

    def stuck(self, now: float, stuck_after: float | None) -> str:
        """Say why the student looks stuck, or return ``""``.

        Only a student online can be stuck: failed the same step
        :data:`STUCK_FAILS` times in a row, or no step turned green for
        ``stuck_after`` seconds.
        """
        if not self.online:
            return ""
        for step, cell in sorted(self.cells.items(), key=lambda i: step_order(i[0])):
            if cell.fails >= STUCK_FAILS:
                return f"failed {step} {cell.fails} times"
        if stuck_after is not None and now - self.progress >= stuck_after:
            return f"no progress for {int((now - self.progress) // 60)} min"
        return ""

    def as_json(self, now: float, stuck_after: float | None) -> dict[str, Any]:
        return {
            "name": self.name,
            "online": self.online > 0,
            "progress": self.progress,
            "hand": self.hand,
            "hand_since": self.hand_since,
            "stuck": self.stuck(now, stuck_after),
            "cells": {step: cell.as_json() for step, cell in self.cells.items()},
        }


class Board:
    """The class board's state: one :class:`Student` row per name.

    It does no I/O and reads no clock: every change takes ``now``, seconds
    since the epoch. Each method that takes a message raises :exc:`Refused`
    with a short reason when the message is malformed, and changes nothing.

    Args:
        stuck_after: Seconds without progress after which an online student
            counts as stuck; None: only repeated failures count.
    """

    def __init__(self, *, stuck_after: float | None = 600.0) -> None:
        self.stuck_after = stuck_after
        self.students: dict[str, Student] = {}

    def join(self, message: dict[str, Any], now: float) -> Student:
        """Take a ``join`` message: add or bring back the row, merge the state."""
        name = clean_name(message.get("name"))
        steps = message.get("steps", {})
        if not isinstance(steps, dict) or len(steps) > MAX_STEPS:
            raise Refused(f"steps must be an object of at most {MAX_STEPS} steps")
        cells = {clean_step(step): _cell(value, now) for step, value in steps.items()}
        hand = message.get("hand")
        note, since = None, now
        if hand is not None:
            if not isinstance(hand, dict):
                raise Refused("hand must be an object or null")
            note = clean_note(hand.get("text"))
            ago = hand.get("ago", 0)
            if not isinstance(ago, int | float) or not 0 <= ago <= 86_400:
                raise Refused("hand ago must be 0 to 86400 seconds")
            since = now - ago
        student = self.students.get(name)
        if student is None:
            if len(self.students) >= MAX_STUDENTS:
                raise Refused(f"the board is full: {MAX_STUDENTS} students")
            student = self.students[name] = Student(name, progress=now)
        elif not student.online:
            student.progress = now  # Back: the clock of "no progress" restarts.
        if len(student.cells.keys() | cells.keys()) > MAX_STEPS:
            raise Refused(f"too many steps: at most {MAX_STEPS}")
        student.cells.update(cells)
        if "hand" in message:  # Absent: this kernel never raised or lowered it.
            student.hand, student.hand_since = note, since
        return student

    def report(self, student: Student, message: dict[str, Any], now: float) -> None:
        """Take a ``result`` or ``hand`` message from ``student``'s connection."""
        kind = message.get("type")
        if kind == "result":
            step = clean_step(message.get("step"))
            result = message.get("result")
            if result not in RESULTS:
                raise Refused("result must be passed, failed, hint or solution")
            cause = clean_cause(message.get("cause"))
            if student.cell(step).record(result, cause, now):
                student.progress = now
        elif kind == "hand":
            text = message.get("text")
            if text is None:
                student.hand = None
            else:
                student.hand, student.hand_since = clean_note(text), now
        else:
            raise Refused("type must be result or hand")

    def steps(self) -> list[str]:
        """Every step any student reported, in notebook order."""
        found = {step for student in self.students.values() for step in student.cells}
        return sorted(found, key=step_order)

    def snapshot(self, now: float) -> dict[str, Any]:
        """The whole board, as the page's feed sends it first."""
        return {
            "type": "board",
            "now": now,
            "stuck_after": self.stuck_after,
            "students": [s.as_json(now, self.stuck_after) for s in self.rows()],
        }

    def rows(self) -> list[Student]:
        """The rows, by name (case-insensitive)."""
        return sorted(self.students.values(), key=lambda s: (s.name.casefold(), s.name))

    def csv(self, now: float) -> str:
        """The board as CSV: one row per student, one column per step.

        A cell says ``passed``, ``failed: cause``, or nothing, then ``N
        hints`` and ``solution shown``. Text that a spreadsheet would take for a
        formula (starting with ``=``, ``+``, ``-``, ``@``) gets a ``'`` first.
        """
        steps = self.steps()
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow(["name", "online", "hand", "hand since", "stuck", *steps])
        for student in self.rows():
            since = _clock(student.hand_since) if student.hand else ""
            writer.writerow(
                [
                    _safe(student.name),
                    "yes" if student.online else "no",
                    _safe(student.hand or ""),
                    since,
                    student.stuck(now, self.stuck_after),
                    *(_csv_cell(student.cells.get(step)) for step in steps),
                ]
            )
        return out.getvalue()


def _cell(value: Any, now: float) -> Cell:
    """A cell from a ``join`` message's steps, validated."""
    if not isinstance(value, dict):
        raise Refused("each step must be an object")
    result = value.get("result", "")
    if result not in ("", "passed", "failed"):
        raise Refused("a step's result must be passed, failed or empty")
    numbers = [value.get("fails", 0), value.get("hints", 0)]
    if not all(type(n) is int and 0 <= n <= 10_000 for n in numbers):
        raise Refused("fails and hints must be 0 to 10000")
    cause = clean_cause(value.get("cause")) if result == "failed" else ""
    solution = value.get("solution", False) is True
    return Cell(result, cause, numbers[0], numbers[1], solution, now)


def _clock(at: float) -> str:
    return time.strftime("%H:%M", time.localtime(at))


def _safe(text: str) -> str:
    return "'" + text if text.startswith(("=", "+", "-", "@")) else text


def _csv_cell(cell: Cell | None) -> str:
    if cell is None:
        return ""
    parts = [f"failed: {cell.cause}" if cell.result == "failed" else cell.result]
    if cell.hints:
        parts.append(f"{cell.hints} hint{'s' if cell.hints > 1 else ''}")
    if cell.solution:
        parts.append("solution shown")
    # Starts with a word or a digit: never taken for a formula.
    return " · ".join(p for p in parts if p)


class ClassRoom:
    """The classroom's broadcast room plus the class board, on one port.

    ``classroom.handler`` is the connection handler to serve, and
    ``classroom.process_request`` the hook that serves the board's page and
    CSV and keeps the feed behind its token: pass it as ``pages`` to
    :meth:`wsteach.limits.Limits.serve_options`.

    Board updates go out with :func:`websockets.asyncio.server.broadcast`,
    which never waits: a board page that reads slowly holds nobody back, and
    once more than ``limits.max_queued`` bytes wait for it, it is closed with
    1008. Changes are gathered for ``flush_every`` seconds and sent as one
    message, so that 200 students reporting every second cost the board
    pages 10 messages a second, not 200.

    Args:
        limits: The classroom limits (rate per student connection, slow
            readers); classroom defaults if omitted.
        token: The board's secret; a fresh one if omitted.
        stuck_after: See :class:`Board`.
        flush_every: Seconds between board updates, at most.
    """

    def __init__(
        self,
        *,
        limits: Limits | None = None,
        token: str | None = None,
        stuck_after: float | None = 600.0,
        flush_every: float = 0.1,
    ) -> None:
        self.limits = Limits() if limits is None else limits
        self.token = secrets.token_urlsafe(24) if token is None else token
        self.room = Room(limits=self.limits)
        self.board = Board(stuck_after=stuck_after)
        self.flush_every = flush_every
        self.pages: set[ServerConnection] = set()
        self._changed: set[str] = set()
        self._flush: asyncio.TimerHandle | None = None
        self._closing: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        online = sum(1 for s in self.board.students.values() if s.online)
        return f"<ClassRoom: {online} students online, {len(self.pages)} board pages>"

    # HTTP: the page, its script, the CSV, and the feed's token.

    def has_token(self, request: Request) -> bool:
        """Whether the request's query holds the board's token."""
        given = parse_qs(urlsplit(request.path).query).get("token", [""])
        return len(given) == 1 and secrets.compare_digest(
            given[0].encode(), self.token.encode()
        )

    def process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        """Answer the board's paths; let everything else through (None)."""
        from .web import content_security_policy, page, wants_websocket

        path = urlsplit(request.path).path
        if path == "/board.js":
            return _respond(page("board.js"), "text/javascript; charset=utf-8")
        if path not in ("/board", "/board.csv"):
            return None
        if not self.has_token(request):
            return connection.respond(
                HTTPStatus.FORBIDDEN,
                "the board needs its token: open the address that "
                "wsteach serve class printed\n",
            )
        if wants_websocket(request):
            return (
                None
                if path == "/board"
                else connection.respond(
                    HTTPStatus.NOT_FOUND, "the board's feed is at /board\n"
                )
            )
        if path == "/board.csv":
            body = self.board.csv(time.time()).encode()
            stamp = time.strftime("%Y%m%d-%H%M")
            return _respond(
                body,
                "text/csv; charset=utf-8",
                ("Content-Disposition", f'attachment; filename="board-{stamp}.csv"'),
            )
        return _respond(
            page("board.html"),
            "text/html; charset=utf-8",
            ("Content-Security-Policy", content_security_policy(request)),
            ("Referrer-Policy", "no-referrer"),
        )

    # WebSocket: students, board pages, and the room.

    async def handler(self, websocket: ServerConnection) -> None:
        """Serve one connection: a student's kernel, a board page, or the room."""
        path = urlsplit(websocket.request.path).path
        if path == "/class":
            await self.student(websocket)
        elif path == "/board":
            await self.board_page(websocket)
        else:
            await self.room.handler(websocket)

    async def student(self, websocket: ServerConnection) -> None:
        """Take one kernel's reports until it leaves; its row stays."""
        rate_limit = _rate_limit(self.limits)
        student: Student | None = None
        try:
            async for message in websocket:
                if await _over_rate(websocket, rate_limit):
                    break
                try:
                    data = _parse(message)
                    if student is None:
                        student = self._join(data)
                    else:
                        self.board.report(student, data, time.time())
                except Refused as exc:
                    await close_for_limit(
                        websocket, CloseCode.POLICY_VIOLATION, str(exc)
                    )
                    break
                self.changed(student.name)
        except ConnectionClosedError:
            pass  # The kernel vanished; its row stays, offline.
        finally:
            if student is not None:
                student.online -= 1
                self.changed(student.name)

    def _join(self, data: dict[str, Any]) -> Student:
        if data.get("type") != "join":
            raise Refused("the first message must be a join")
        student = self.board.join(data, time.time())
        student.online += 1
        return student

    async def board_page(self, websocket: ServerConnection) -> None:
        """Feed one board page: the whole board now, then every change."""
        # The token was checked in process_request, before the handshake.
        await websocket.send(json.dumps(self.board.snapshot(time.time())))
        self.pages.add(websocket)
        try:
            async for _ in websocket:
                pass  # A page has nothing to say; what it sends is ignored.
        except ConnectionClosedError:
            pass
        finally:
            self.pages.discard(websocket)

    def changed(self, name: str) -> None:
        """Note that ``name``'s row changed; the pages hear of it soon."""
        self._changed.add(name)
        if self._flush is None:
            loop = asyncio.get_running_loop()
            self._flush = loop.call_later(self.flush_every, self.flush)

    def flush(self) -> None:
        """Send the rows that changed to every board page, without waiting."""
        self._flush = None
        now = time.time()
        rows = [
            self.board.students[name].as_json(now, self.board.stuck_after)
            for name in sorted(self._changed)
        ]
        self._changed.clear()
        pages = list(self.pages)
        broadcast(pages, json.dumps({"type": "students", "now": now, "students": rows}))
        for page in pages:
            queued = transport(page).get_write_buffer_size()
            if self.limits.max_queued is not None and queued > self.limits.max_queued:
                self.pages.discard(page)
                closing = asyncio.create_task(
                    page.close(CloseCode.POLICY_VIOLATION, "too slow: reload the board")
                )
                self._closing.add(closing)
                closing.add_done_callback(self._closing.discard)


def _parse(message: str | bytes) -> dict[str, Any]:
    if isinstance(message, bytes):
        raise Refused("reports are JSON text, not binary")
    if len(message) > MAX_REPORT:
        raise Refused(f"report too big: at most {MAX_REPORT} bytes")
    try:
        data = json.loads(message)
    except ValueError:
        raise Refused("reports are JSON objects") from None
    if not isinstance(data, dict):
        raise Refused("reports are JSON objects")
    return data


def _respond(body: bytes, content_type: str, *extra: tuple[str, str]) -> Response:
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
            *extra,
        ]
    )
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)
