"""Join the class board: your checks show up on the instructor's screen.

In a workshop, the instructor runs ``wsteach serve class`` and gives you an
address. One line in notebook 00 joins::

    wsteach.join_class("ws://192.168.1.10:7890", name="ada")

From then on every exercise's ``check``, ``hint`` and ``solution`` sends the
step's id and its result (passed, failed with the cause's short name, hint,
solution) to the board. Your code is never sent. ``wsteach.raise_hand("my
server won't start")`` puts a note on the board; ``lower_hand()`` takes it off.

How it stays out of your way:

- Reporting is fire-and-forget: :func:`report` updates this kernel's state
  and puts one message in a bounded queue (:data:`QUEUE_SIZE`); a
  background task on the kernel's event loop sends it. A check never waits
  for the network, and nothing here ever raises into a check.
- When the server is away, the task tries again, waiting longer each time
  (up to :data:`MOST_BACKOFF` seconds). Once connected, it first sends this
  kernel's whole latest state, so a restarted server rebuilds the board.
  Messages that overflowed the queue meanwhile are covered by that state;
  when the queue overflows while connected, the task reconnects at once to
  send it.
- The task sends at most :data:`RATE` messages a second, under the class
  server's rate limit.
- Without a class (no address, no ``WSTEACH_CLASS``), :func:`join_class`
  does nothing and returns None, and every check behaves exactly as before.

Every notebook runs in a kernel of its own, so the join has to reach the
others too. Two ways:

- ``WSTEACH_CLASS`` holds the address (and ``WSTEACH_NAME`` the name): then
  ``join_class()`` joins with them, and the first check of any kernel joins
  by itself;
- :func:`join_class` with an address remembers it, with the name, in
  :func:`class_file` (``~/.wsteach/class.json``) for :data:`REMEMBER_FOR`
  seconds: the first check of another kernel joins the same class.
  :func:`leave_class` forgets it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import getpass
import json
import os
import random
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .classboard import Refused, clean_cause, clean_name, clean_note, clean_step
from .limits import RateLimit
from .names import NAME_HEADER, encode_name
from .timeouts import TIMEOUT_FACTOR

__all__ = [
    "MOST_BACKOFF",
    "QUEUE_SIZE",
    "RATE",
    "Classmate",
    "class_file",
    "current",
    "join_class",
    "leave_class",
    "lower_hand",
    "raise_hand",
    "report",
]

QUEUE_SIZE = 100
"""Reports waiting to be sent, at most; past it the oldest are dropped."""
RATE = 5.0
"""Messages per second the background task sends, at most (bursts of 10)."""
FIRST_BACKOFF = 0.5
MOST_BACKOFF = 5.0
"""Seconds between two tries to reach the server, at most (give or take a
fifth, so that a room of kernels doesn't knock all at once): a restarted
server has its board back within seconds."""

REMEMBER_FOR = 12 * 3600.0
"""Seconds a join is remembered for the other kernels: a workshop day."""

# Close codes after which trying again would get the same answer.
_FINAL = {1003, 1007, 1008, 1009}

_current: Classmate | None = None


def current() -> Classmate | None:
    """The class this kernel joined, or None."""
    return _current


def class_url(url: str) -> str:
    """The URL the board takes reports on: ``ws://HOST:PORT/class``."""
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(
            f"the class address must look like ws://HOST:7890, got {url!r}"
        )
    return urlunsplit((parts.scheme, parts.netloc, "/class", "", ""))


def _login() -> str:
    try:
        return getpass.getuser()
    except Exception:  # pragma: no cover - no user name on this system
        return "student"


def join_class(url: str | None = None, *, name: str | None = None) -> Classmate | None:
    """Join the class board at ``url`` as ``name``; None when there is no class.

    Call it in a notebook cell (it needs the kernel's running event loop).
    Running it again with the same address and name changes nothing; with
    another, this kernel leaves the first board and keeps its state.

    Args:
        url: The class address, ``ws://HOST:PORT``; if omitted,
            ``WSTEACH_CLASS``. Neither: nothing happens.
        name: Your name on the board; if omitted, ``WSTEACH_NAME``, else
            your login name. 1 to 40 printable characters.

    Raises:
        ValueError: The address or the name can't be used.
        RuntimeError: No event loop is running (call it from a notebook cell).
    """
    global _current
    remember = bool(url)
    url = url or os.environ.get("WSTEACH_CLASS") or None
    if url is None:
        return None
    address = class_url(url)
    try:
        name = clean_name(name or os.environ.get("WSTEACH_NAME") or _login())
    except Refused as exc:
        raise ValueError(str(exc)) from None
    loop = asyncio.get_running_loop()
    previous = _current
    if previous is not None:
        if (previous.url, previous.name) == (address, name):
            return previous
        previous.leave()
    _current = Classmate(address, name, loop=loop, previous=previous)
    if remember:
        _remember(url, name)
    return _current


def leave_class() -> None:
    """Leave the class, and forget it for this computer's other kernels."""
    global _current
    if _current is not None:
        _current.leave()
        _current = None
    with contextlib.suppress(OSError):
        class_file().unlink()


def class_file() -> Path:
    """Where a join is remembered: ``WSTEACH_CLASS_FILE``, else ``~/.wsteach/class.json``."""
    path = os.environ.get("WSTEACH_CLASS_FILE")
    return Path(path) if path else Path.home() / ".wsteach" / "class.json"


def _remember(url: str, name: str) -> None:
    path = class_file()
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"url": url, "name": name, "at": time.time()}))


def _remembered() -> tuple[str, str] | None:
    """The address and name another kernel joined with lately, or None."""
    try:
        data = json.loads(class_file().read_text())
        url, name, at = data["url"], data["name"], float(data["at"])
    except (OSError, ValueError, TypeError, KeyError):
        return None
    if not 0 <= time.time() - at <= REMEMBER_FOR:
        return None
    return url, name


def _join_by_itself() -> None:
    """On a first report: join the class of ``WSTEACH_CLASS`` or of another kernel."""
    with contextlib.suppress(Exception):
        asyncio.get_running_loop()
        if os.environ.get("WSTEACH_CLASS"):
            join_class()
        elif (remembered := _remembered()) is not None:
            url, name = remembered
            join_class(url, name=name)


def report(step: str, result: str, cause: str = "") -> None:
    """Tell the board about a step: ``passed``, ``failed``, ``hint``, ``solution``.

    What every check, hint and solution calls. Returns at once; never
    raises. Outside a class, it first joins the one ``WSTEACH_CLASS`` names or
    another kernel joined (see the module's docstring), and else does nothing.
    """
    if _current is None:
        _join_by_itself()
    mate = _current
    if mate is None:
        return
    with contextlib.suppress(Exception):
        mate.report(step, result, cause[:60])


def raise_hand(text: str = "I need help") -> None:
    """Put a note on the board, such as ``"my server won't start"`` (200 characters)."""
    if _current is None:
        _join_by_itself()
    mate = _current
    if mate is None:
        print("you are not in a class: join_class(...) first")
        return
    try:
        mate.raise_hand(text)
    except Refused as exc:
        raise ValueError(str(exc)) from None
    print(f"hand raised: {mate.hand}")


def lower_hand() -> None:
    """Take your note off the board."""
    if _current is None:
        _join_by_itself()
    mate = _current
    if mate is not None:
        mate.lower_hand()
        print("hand lowered")


class Classmate:
    """One kernel's place in a class: its state, and the task that sends it.

    Attributes:
        url: Where reports go, ``ws://HOST:PORT/class``.
        name: The row's name.
        steps: Step id → the latest state of that step, as the join message
            sends it.
        hand: The raised hand's note, or None.
        status: ``connecting``, ``connected``, ``retrying…``, or ``refused:
            reason`` (the server said no for good; the task stopped).
    """

    def __init__(
        self,
        url: str,
        name: str,
        *,
        loop: asyncio.AbstractEventLoop,
        previous: Classmate | None = None,
    ) -> None:
        self.url = url
        self.name = name
        self.steps: dict[str, dict[str, Any]] = {}
        self.hand: str | None = None
        self._hand_at = 0.0
        self._hand_lowered = False
        if previous is not None:
            self.steps, self.hand = previous.steps, previous.hand
            self._hand_at = previous._hand_at
            self._hand_lowered = previous._hand_lowered
        self.status = "connecting"
        self.queue: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=QUEUE_SIZE
        )
        self.overflowed = False
        self.first_backoff = FIRST_BACKOFF
        self.most_backoff = MOST_BACKOFF
        self._loop = loop
        self._wake = asyncio.Event()
        self._task = loop.create_task(self._run(), name=f"wsteach class {name}")

    def __repr__(self) -> str:
        return f"wsteach class at {self.url} as {self.name!r} · {self.status}"

    def _put(self, message: dict[str, Any]) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.overflowed = True  # The oldest is dropped: the state must go again.
        self.queue.append(message)
        self._loop.call_soon_threadsafe(self._wake.set)

    def report(self, step: str, result: str, cause: str = "") -> None:
        """Update this step's state and queue the report (see :func:`report`)."""
        step, cause = clean_step(step), clean_cause(cause)
        state = self.steps.setdefault(step, {"result": "", "fails": 0, "hints": 0})
        if result == "passed":
            state.update(result="passed", fails=0)
            state.pop("cause", None)
        elif result == "failed":
            state.update(result="failed", cause=cause, fails=state["fails"] + 1)
        elif result == "hint":
            state["hints"] += 1
        elif result == "solution":
            state["solution"] = True
        else:
            raise ValueError(f"unknown result {result!r}")
        self._put({"type": "result", "step": step, "result": result, "cause": cause})

    def raise_hand(self, text: str) -> None:
        self.hand, self._hand_at = clean_note(text), time.monotonic()
        self._put({"type": "hand", "text": self.hand})

    def lower_hand(self) -> None:
        self.hand, self._hand_lowered = None, True
        self._put({"type": "hand", "text": None})

    def join_message(self) -> dict[str, Any]:
        """What the task sends first after each connect: the whole state."""
        message: dict[str, Any] = {"type": "join", "name": self.name}
        message["steps"] = self.steps
        if self.hand is not None:
            ago = min(86_400.0, time.monotonic() - self._hand_at)
            message["hand"] = {"text": self.hand, "ago": ago}
        elif self._hand_lowered:
            message["hand"] = None
        return message

    def leave(self) -> None:
        """Stop the task and close the connection (the row stays on the board)."""
        self._task.cancel()

    async def wait_left(self) -> None:
        """Wait until the task has stopped, after :meth:`leave`."""
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        """Connect, send the state, then every report; on failure, back off and retry."""
        delay = self.first_backoff
        while True:
            try:
                async with connect(
                    self.url,
                    additional_headers={NAME_HEADER: encode_name(self.name)},
                    open_timeout=10 * TIMEOUT_FACTOR,
                    max_size=2**16,
                ) as websocket:
                    pace = RateLimit(RATE, 10, time.monotonic())
                    pace.allow(time.monotonic())  # The join message counts too.
                    self.queue.clear()  # The join message covers them.
                    self.overflowed = False
                    await websocket.send(json.dumps(self.join_message()))
                    self.status = "connected"
                    delay = self.first_backoff
                    await self._send_reports(websocket, pace)
                continue  # The queue overflowed: join again, with the whole state.
            except ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code in _FINAL:
                    self.status = f"refused: {exc.rcvd.reason}"
                    return
                why = exc.rcvd.reason if exc.rcvd is not None else "connection lost"
            except InvalidStatus as exc:
                why = f"HTTP {exc.response.status_code}"
            except (OSError, TimeoutError) as exc:
                why = type(exc).__name__
            wait = delay * random.uniform(0.8, 1.2)
            self.status = f"retrying in {wait:.0f} s ({why or 'closed'})"
            await asyncio.sleep(wait)
            delay = min(delay * 2, self.most_backoff)

    async def _send_reports(self, websocket: ClientConnection, pace: RateLimit) -> None:
        """Send what the queue holds, paced; return when it overflowed."""
        closed = asyncio.ensure_future(websocket.wait_closed())
        try:
            while not self.overflowed:
                while not self.queue:
                    self._wake.clear()
                    woke = asyncio.ensure_future(self._wake.wait())
                    await asyncio.wait({woke, closed}, return_when="FIRST_COMPLETED")
                    woke.cancel()
                    if closed.done():
                        await websocket.recv()  # Raises ConnectionClosed.
                if not pace.allow(time.monotonic()):
                    await asyncio.sleep(1 / RATE)  # A token's worth: one is back.
                    pace.allow(time.monotonic())
                await websocket.send(json.dumps(self.queue.popleft()))
        finally:
            closed.cancel()
