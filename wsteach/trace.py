"""What happened on the wire, read from websockets' own debug logging.

websockets logs every frame it reads (``"< %s"``) and writes (``"> %s"``) at the
DEBUG level, and every record carries the connection in ``record.websocket``:
undocumented details, read through :mod:`wsteach.internals`.
:class:`Trace` is a :class:`logging.Handler` that turns those records into a list
of :class:`Event` objects. It never wraps or changes your handler: what it shows
is what websockets really sent and received.

Clients are labelled by the name they sent in the ``X-Wsteach-Name`` request
header (see :func:`wsteach.connect` and :func:`wsteach.names.client_name`),
else ``client 1``, ``client 2``… in the order they connected. The text has no
ports, addresses or timestamps, so a scenario that runs step by step prints the
same text every time.

Every diagram of the kit puts the clients on the left, in the order they
connected, and the server on the right.
"""

from __future__ import annotations

import collections
import logging
import unicodedata
from dataclasses import dataclass
from typing import Any

from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State

from .internals import (
    FRAME_RECEIVED,
    FRAME_SENT,
    STATE_CHANGED,
    close_code_name,
    log_connection,
)
from .names import NAME_HEADER, client_name

__all__ = ["NAME_HEADER", "Event", "Trace", "mermaid_text"]

SERVER = "server"
PREVIEW = 60  # Characters of a message shown before it is cut short.
# Bytes of a message kept to show its first PREVIEW characters: UTF-8 takes at
# most 4 bytes per character. The rest is counted, not kept.
_HEAD = 4 * PREVIEW
# UTF-8 continuation bytes: every other byte starts a character.
_CONTINUATION = bytes(range(0x80, 0xC0))


@dataclass(frozen=True)
class Event:
    """One line of a trace.

    ``sender`` and ``receiver`` are labels such as ``"server"`` or ``"alice"``;
    ``what`` is ``"connects"``, a message preview (``'Hello'``, ``b'...'``), a
    close frame (``close 1000 (normal closure)``) or, when the TCP connection
    ended without a closing handshake, ``"disconnects without a close frame"``.
    ``kind`` says which: ``"connect"``, ``"message"``, ``"close"`` or
    ``"disconnect"``.
    """

    sender: str
    receiver: str
    what: str
    kind: str = "message"


def preview(data: str | bytes) -> str:
    """Return a short, one-line, printable description of a message."""
    if isinstance(data, bytes):
        return _described(data[:PREVIEW], len(data), "bytes")
    return _described(data[:PREVIEW], len(data), "characters")


def _described(head: str | bytes, length: int, unit: str) -> str:
    more = f" … ({length} {unit})" if length > PREVIEW else ""
    return f"{head[:PREVIEW]!r}{more}"


def describe_close(frame: Frame) -> str:
    """Describe a close frame as ``close 1000 (OK)``, with the reason if any."""
    try:
        close = Close.parse(frame.data)
    except Exception:
        return f"close (invalid: {preview(bytes(frame.data))})"
    text = f"close {close.code}"
    name = close_code_name(close.code)
    if name is not None:
        text += f" ({name})"
    if close.reason:
        text += f": {close.reason}"
    return text


class _Message:
    """A data message being reassembled from its fragments, for its preview.

    Only the first bytes are kept, however long the message grows: enough to
    show :data:`PREVIEW` characters. The rest is only counted.
    """

    __slots__ = ("binary", "continuation", "head", "length")

    def __init__(self, frame: Frame) -> None:
        self.binary = frame.opcode is Opcode.BINARY
        self.head = b""
        self.length = 0  # Bytes.
        self.continuation = 0  # Bytes that continue a character, for text.
        self.add(frame.data)

    def add(self, data: bytes | bytearray | memoryview) -> None:
        data = bytes(data) if not isinstance(data, bytes) else data
        if len(self.head) < _HEAD:
            self.head += data[: _HEAD - len(self.head)]
        self.length += len(data)
        if not self.binary and not data.isascii():  # isascii() is a fast check.
            self.continuation += len(data) - len(data.translate(None, _CONTINUATION))

    def text(self) -> str:
        if self.binary:
            return _described(self.head, self.length, "bytes")
        # The head may end in the middle of a character, or an invalid
        # message may be traced before websockets rejects it: never raise.
        shown = self.head.decode("utf-8", errors="replace")
        return _described(shown, self.length - self.continuation, "characters")


class Trace(logging.Handler):
    """Record connects, messages and closes of one server, in order.

    Only the last ``limit`` events are kept; :attr:`dropped` counts the others.
    Ping and pong frames (keepalive) are left out because their timing varies.
    A message in fragments is kept only in part (its first bytes) until its
    last fragment, and forgotten if its connection ends before that.

    In JupyterLab a trace shows as a sequence diagram, with the same events as
    a table under it (click "as a table"); ``print(trace)`` prints the table.
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
        connection = log_connection(record)
        if connection is None:
            return
        try:
            self._read(record, connection)
        except Exception:  # A trace must never break a server.
            self.handleError(record)

    def _read(self, record: logging.LogRecord, connection: Any) -> None:
        message = record.msg
        if message == STATE_CHANGED:
            state = record.args[0] if record.args else None
            if state == State.OPEN.name:
                label = self._label(connection)
                self._add(Event(label, SERVER, "connects", "connect"))
            elif state == State.CLOSED.name:
                label = self._labels.pop(connection.id, None)
                if label is not None and connection.id not in self._closing:
                    self._add(
                        Event(
                            label,
                            SERVER,
                            "disconnects without a close frame",
                            "disconnect",
                        )
                    )
                self._closing.discard(connection.id)
                self._partial.pop((connection.id, "in"), None)
                self._partial.pop((connection.id, "out"), None)
        elif message in (FRAME_RECEIVED, FRAME_SENT) and record.args:
            # websockets logs these two with the Frame itself as the argument.
            frame = record.args[0]
            self._frame(connection, frame, incoming=message == FRAME_RECEIVED)

    def _label(self, connection: Any) -> str:
        # Called once per connection, when it opens.
        self._count += 1
        name = client_name(getattr(connection, "request", None))
        label = name or f"client {self._count}"
        # One label, one participant: a client named "server", or a second
        # "alice", gets the number of its connection too.
        if label == SERVER or label in self._labels.values():
            label = f"{label} ({self._count})"
        self._labels[connection.id] = label
        return label

    def _frame(self, connection: Any, frame: Frame, *, incoming: bool) -> None:
        # Frames flow only between OPEN, which labels the connection, and
        # CLOSED, which forgets it.
        label = self._labels[connection.id]
        sender, receiver = (label, SERVER) if incoming else (SERVER, label)
        key = (connection.id, "in" if incoming else "out")
        if frame.opcode is Opcode.CLOSE:
            self._closing.add(connection.id)
            self._add(Event(sender, receiver, describe_close(frame), "close"))
        elif frame.opcode in (Opcode.TEXT, Opcode.BINARY):
            pending = _Message(frame)
            if frame.fin:
                self._add(Event(sender, receiver, pending.text()))
            else:
                self._partial[key] = pending
        elif frame.opcode is Opcode.CONT and key in self._partial:
            self._partial[key].add(frame.data)
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
        """Client labels in order of first appearance, then the server, last."""
        seen: dict[str, None] = {}
        for event in self.events:
            for label in (event.sender, event.receiver):
                if label != SERVER:
                    seen.setdefault(label)
        return [*seen, SERVER]

    def table(self, last: int | None = None) -> str:
        """Return the events as a plain-text table, one line per event.

        Args:
            last: Show only the last ``last`` events; all by default.
        """
        if not self.events:
            return "(nothing happened yet: no client has connected)"
        events = list(self.events)
        if last is not None:
            events = events[-last:]
        hidden = len(self.events) - len(events)
        skipped = hidden + self.dropped
        rows = [("#", "from", "to", "what")]
        rows += [
            (str(skipped + 1 + n), *map(_one_line, (e.sender, e.receiver, e.what)))
            for n, e in enumerate(events)
        ]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = []
        if skipped:
            lines.append(
                f"({skipped} earlier events not {'shown' if hidden else 'kept'})"
            )
        for row in rows:
            cells = [row[i].ljust(widths[i]) for i in range(3)]
            lines.append("  ".join([*cells, row[3]]).rstrip())
        return "\n".join(lines)

    def mermaid(self, last: int = 60) -> str:
        """Return the last ``last`` events as a Mermaid sequence diagram.

        Clients are on the left, in the order they appear, the server on the
        right. Every label and message is written with Mermaid's entity codes
        (:func:`mermaid_text`), so any text renders as it is: quotes, ``;``,
        ``#``, ``-->``, ``<script>``, newlines, emoji.
        """
        events = list(self.events)[-last:]
        labels = [label for label in self.participants if label != SERVER]
        keys = {label: f"C{n}" for n, label in enumerate(labels, 1)}
        keys[SERVER] = "S"
        lines = ["sequenceDiagram"]
        lines += [
            f"    participant {key} as {mermaid_text(label)}"
            for label, key in keys.items()
        ]
        skipped = len(self.events) - len(events) + self.dropped
        if skipped:
            lines.append(f"    Note over S: {skipped} earlier events not shown")
        for event in events:
            source, target = keys[event.sender], keys[event.receiver]
            if event.kind in ("connect", "disconnect"):
                text = mermaid_text(f"{event.sender} {event.what}")
                lines.append(f"    Note over {source}: {text}")
            else:
                arrow = "-)" if event.kind == "close" else "->>"
                lines.append(f"    {source}{arrow}{target}: {mermaid_text(event.what)}")
        return "\n".join(lines)

    def markdown(self, last: int = 60) -> str:
        """Return the diagram and, folded under it, the same events as a table.

        This is what JupyterLab shows: the table is one click away ("as a
        table"), for reading exact bytes or copying text.
        """
        if not self.events:
            return self.table()
        table = self.table(last=last)
        fence = "`" * max(3, _longest_run(table, "`") + 1)
        return (
            f"```mermaid\n{self.mermaid(last=last)}\n```\n\n"
            "<details><summary>as a table</summary>\n\n"
            f"{fence}text\n{table}\n{fence}\n\n</details>"
        )

    def __str__(self) -> str:
        return self.table()

    def __repr__(self) -> str:
        return f"<Trace: {len(self.events)} events>"

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, str]:
        """Show the diagram and the table in JupyterLab, the table elsewhere."""
        return {"text/markdown": self.markdown(), "text/plain": self.table()}


def _one_line(text: str) -> str:
    """Escape line breaks and control characters (a close reason may have any)."""
    if text.isprintable():
        return text
    return "".join(
        repr(char)[1:-1] if unicodedata.category(char) in _BREAKING else char
        for char in text
    )


_BREAKING = {"Cc", "Zl", "Zp", "Cs"}


def _longest_run(text: str, char: str) -> int:
    longest = run = 0
    for c in text:
        run = run + 1 if c == char else 0
        longest = max(longest, run)
    return longest


# Characters written as they are in a Mermaid label or message: letters and
# digits of any script, space and punctuation that means nothing to Mermaid.
# Everything else becomes an entity code: ";" and "#" end a statement, ":"
# separates, "<", ">", "&" are HTML, "%%" starts a comment or a directive, "-"
# and ">" draw arrows, "{" and "`" mean something in newer diagrams. (Mermaid
# also drops the last ";" of a line that reads "style…:…#…;", which can't
# happen when ":" and ";" are always codes.)
_MERMAID_PLAIN = frozenset(" .,!?'()_/*+=@$^|~")


def mermaid_text(text: str) -> str:
    """Write ``text`` for a Mermaid label or message, so that it shows as it is.

    Mermaid's own escape syntax: ``#`` + the decimal code point + ``;``, so
    ``I'm here; #1`` becomes ``I'm here#59; #35;1``. Letters and digits of any
    script, spaces and harmless punctuation stay as they are; spaces at either
    end become codes too, because Mermaid would trim them. The empty text
    becomes a zero-width space, because Mermaid needs some text.
    """
    if not text:
        return "#8203;"
    written = "".join(
        char if char.isalnum() or char in _MERMAID_PLAIN else f"#{ord(char)};"
        for char in text
    )
    start = len(written) - len(written.lstrip(" "))
    end = max(start, len(written.rstrip(" ")))
    return "#32;" * start + written[start:end] + "#32;" * (len(written) - end)
