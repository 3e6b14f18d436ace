"""What happened on the wire, read from websockets' own debug logging.

websockets logs every frame it reads (``"< %s"``) and writes (``"> %s"``) at the
DEBUG level, and every record carries the connection in ``record.websocket``.
:class:`Trace` is a :class:`logging.Handler` that turns those records into a list
of :class:`Event` objects. It never wraps or changes your handler: what it shows
is what websockets really sent and received.

Clients are labelled by the name they sent in the ``X-Wsteach-Name`` request
header (see :func:`wsteach.connect`), else ``client 1``, ``client 2``… in the
order they connected. The text has no ports, addresses or timestamps, so a
scenario that runs step by step prints the same text every time.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass
from typing import Any

from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State

__all__ = ["NAME_HEADER", "Event", "Trace"]

NAME_HEADER = "X-Wsteach-Name"
"""Request header in which :func:`wsteach.connect` sends the client's name."""

SERVER = "server"
PREVIEW = 60  # Characters of a message shown before it is cut short.


@dataclass(frozen=True)
class Event:
    """One line of a trace.

    ``sender`` and ``receiver`` are labels such as ``"server"`` or ``"alice"``;
    ``what`` is ``"connects"``, a message preview (``'Hello'``, ``b'...'``), a
    close frame (``close 1000 (normal closure)``) or, when the TCP connection
    ended without a closing handshake, ``"disconnects without a close frame"``.
    """

    sender: str
    receiver: str
    what: str


def preview(data: str | bytes) -> str:
    """Return a short, one-line, printable description of a message."""
    if isinstance(data, bytes):
        shown = repr(data[:PREVIEW])
        more = f" … ({len(data)} bytes)" if len(data) > PREVIEW else ""
        return f"{shown}{more}"
    shown = repr(data[:PREVIEW])
    more = f" … ({len(data)} characters)" if len(data) > PREVIEW else ""
    return f"{shown}{more}"


def describe_close(frame: Frame) -> str:
    """Describe a close frame as ``close 1000 (OK)``, with the reason if any."""
    try:
        close = Close.parse(frame.data)
    except Exception:
        return f"close (invalid: {preview(frame.data)})"
    text = f"close {close.code}"
    if close.code in CloseCode._value2member_map_:
        text += f" ({CloseCode(close.code).name.replace('_', ' ').lower()})"
    if close.reason:
        text += f": {close.reason}"
    return text


class _Message:
    """A data message being reassembled from its fragments."""

    __slots__ = ("binary", "parts")

    def __init__(self, frame: Frame) -> None:
        self.binary = frame.opcode is Opcode.BINARY
        self.parts = [frame.data]

    def text(self) -> str:
        data = b"".join(self.parts)
        if self.binary:
            return preview(data)
        return preview(data.decode("utf-8", errors="replace"))


class Trace(logging.Handler):
    """Record connects, messages and closes of one server, in order.

    Only the last ``limit`` events are kept; :attr:`dropped` counts the others.
    Ping and pong frames (keepalive) are left out because their timing varies.
    """

    def __init__(self, limit: int = 2000) -> None:
        super().__init__(logging.DEBUG)
        self.events: collections.deque[Event] = collections.deque(maxlen=limit)
        self.dropped = 0
        self._labels: dict[Any, str] = {}
        self._partial: dict[tuple[Any, str], _Message] = {}
        self._count = 0
        self._closing: set[Any] = set()  # Connections that exchanged a close frame.

    # Building the trace from log records

    def emit(self, record: logging.LogRecord) -> None:
        connection = getattr(record, "websocket", None)
        if connection is None:
            return
        try:
            self._read(record, connection)
        except Exception:  # pragma: no cover - a trace must never break a server
            self.handleError(record)

    def _read(self, record: logging.LogRecord, connection: Any) -> None:
        message = record.msg
        if message == "= connection is %s":
            state = record.args[0] if record.args else None
            if state == State.OPEN.name:
                label = self._label(connection)
                self._add(Event(label, SERVER, "connects"))
            elif state == State.CLOSED.name:
                label = self._labels.pop(connection.id, None)
                if label is not None and connection.id not in self._closing:
                    self._add(Event(label, SERVER, "disconnects without a close frame"))
                self._closing.discard(connection.id)
        elif message in ("< %s", "> %s") and record.args:
            frame = record.args[0]
            if isinstance(frame, Frame):
                self._frame(connection, frame, incoming=message == "< %s")

    def _label(self, connection: Any) -> str:
        label = self._labels.get(connection.id)
        if label is None:
            self._count += 1
            name = None
            request = getattr(connection, "request", None)
            if request is not None:
                name = request.headers.get(NAME_HEADER)
            label = name or f"client {self._count}"
            if label in self._labels.values():
                label = f"{label} ({self._count})"
            self._labels[connection.id] = label
        return label

    def _frame(self, connection: Any, frame: Frame, *, incoming: bool) -> None:
        if connection.id not in self._labels:
            return  # Frames before the handshake completed, or after the end.
        label = self._labels[connection.id]
        sender, receiver = (label, SERVER) if incoming else (SERVER, label)
        key = (connection.id, "in" if incoming else "out")
        if frame.opcode is Opcode.CLOSE:
            self._closing.add(connection.id)
            self._add(Event(sender, receiver, describe_close(frame)))
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            pending = _Message(frame)
            if frame.fin:
                self._add(Event(sender, receiver, pending.text()))
            else:
                self._partial[key] = pending
        elif frame.opcode is Opcode.CONT and key in self._partial:
            self._partial[key].parts.append(frame.data)
            if frame.fin:
                self._add(Event(sender, receiver, self._partial.pop(key).text()))

    def _add(self, event: Event) -> None:
        if len(self.events) == self.events.maxlen:
            self.dropped += 1
        self.events.append(event)

    # Reading the trace

    def clear(self) -> None:
        """Forget recorded events; connected clients keep their labels."""
        self.events.clear()
        self.dropped = 0

    @property
    def participants(self) -> list[str]:
        """Labels in order of first appearance, the server first."""
        seen = [SERVER]
        for event in self.events:
            for label in (event.sender, event.receiver):
                if label not in seen:
                    seen.append(label)
        return seen

    def table(self) -> str:
        """Return the events as a plain-text table, one line per event."""
        if not self.events:
            return "(nothing happened yet: no client has connected)"
        rows = [("#", "from", "to", "what")]
        first = self.dropped + 1
        rows += [
            (str(first + n), e.sender, e.receiver, e.what)
            for n, e in enumerate(self.events)
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = []
        if self.dropped:
            lines.append(f"({self.dropped} earlier events not kept)")
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines)

    def mermaid(self, last: int = 60) -> str:
        """Return the last ``last`` events as a Mermaid sequence diagram."""
        events = list(self.events)[-last:]
        names = {label: f"P{n}" for n, label in enumerate(self.participants)}
        lines = ["sequenceDiagram"]
        lines += [f"    participant {key} as {label}" for label, key in names.items()]
        skipped = len(self.events) - len(events) + self.dropped
        if skipped:
            lines.append(f"    Note over P0: {skipped} earlier events not shown")
        for event in events:
            arrow = "-)" if event.what.startswith("close") else "->>"
            if not event.what.startswith(("close", "'", "b'")):
                side = names[event.sender]
                lines.append(f"    Note over {side}: {event.sender} {event.what}")
            else:
                source, target = names[event.sender], names[event.receiver]
                lines.append(f"    {source}{arrow}{target}: {_escape(event.what)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Trace: {len(self.events)} events>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        """Show the diagram in JupyterLab, the table everywhere else."""
        diagram = self.mermaid() if self.events else "sequenceDiagram"
        return {
            "text/markdown": f"```mermaid\n{diagram}\n```",
            "text/plain": self.table(),
        }


_MERMAID_ESCAPES = str.maketrans({"#": "#35;", ";": "#59;", "<": "#lt;", ">": "#gt;"})


def _escape(text: str) -> str:
    """Escape characters that Mermaid would read as syntax."""
    return text.translate(_MERMAID_ESCAPES)
