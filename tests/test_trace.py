"""The trace: what websockets logged, as a table and a Mermaid diagram."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st
from rawws import KEY, Raw, close_frame, frame
from websockets.frames import Frame, Opcode

import wsteach
from wsteach.trace import PREVIEW, Event, Trace, _Message, mermaid_text, preview


async def pong(websocket):
    async for message in websocket:
        await websocket.send("Pong: " + message)


async def scenario() -> str:
    """A sequential scenario: two clients, an echo and a room."""
    server = await wsteach.start(pong, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("Hello server")
        await alice.recv()
    async with wsteach.connect(server.url) as anonymous:
        await anonymous.send("again")
        await anonymous.recv()
    room = wsteach.Room()
    chat = await wsteach.start(room.handler, port=0)
    async with wsteach.crowd(chat.url, "alice", "bob", "carol") as (a, b, c):
        await a.send("hi")
        await b.recv()
        await c.recv()
    await asyncio.sleep(0.05)
    text = server.trace.table() + "\n\n" + chat.trace.table()
    await wsteach.stop_all()
    return text


EXPECTED = """\
#   from      to        what
1   alice     server    connects
2   alice     server    'Hello server'
3   server    alice     'Pong: Hello server'
4   alice     server    close 1000 (normal closure)
5   server    alice     close 1000 (normal closure)
6   client 2  server    connects
7   client 2  server    'again'
8   server    client 2  'Pong: again'
9   client 2  server    close 1000 (normal closure)
10  server    client 2  close 1000 (normal closure)

#   from    to      what
1   alice   server  connects
2   bob     server  connects
3   carol   server  connects
4   alice   server  'hi'
5   server  bob     'Someone said: hi'
6   server  carol   'Someone said: hi'
7   alice   server  close 1000 (normal closure)
8   server  alice   close 1000 (normal closure)
9   bob     server  close 1000 (normal closure)
10  server  bob     close 1000 (normal closure)
11  carol   server  close 1000 (normal closure)
12  server  carol   close 1000 (normal closure)"""


async def test_same_text_every_run():
    """A sequential scenario prints the same text on every run, with no ports."""
    first = await scenario()
    second = await scenario()
    assert first == second
    assert first == EXPECTED
    assert "127.0.0.1" not in first and "localhost" not in first


async def test_mermaid_diagram():
    """The diagram has the clients on the left, the server on the right, syntax escaped."""
    server = await wsteach.start(pong, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("a;b#c<d>")
        await alice.recv()
    diagram = server.trace.mermaid()
    assert diagram.splitlines()[:3] == [
        "sequenceDiagram",
        "    participant C1 as alice",
        "    participant S as server",
    ]
    assert "    Note over C1: alice connects" in diagram
    assert "    C1->>S: 'a#59;b#35;c#60;d#62;'" in diagram
    assert "    C1-)S: close 1000 (normal closure)" in diagram
    bundle = server.trace._repr_mimebundle_()
    assert bundle["text/markdown"].startswith("```mermaid\nsequenceDiagram\n")
    assert bundle["text/plain"] == server.trace.table() == str(server.trace)


async def test_jupyterlab_gets_the_diagram_and_the_table():
    """The markdown JupyterLab shows has the diagram, then the table folded under it."""
    server = await wsteach.start(pong, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("```")
        await alice.recv()
    markdown = server.trace._repr_mimebundle_()["text/markdown"]
    diagram, table = markdown.split("\n```\n\n<details><summary>as a table</summary>")
    assert diagram == "```mermaid\n" + server.trace.mermaid()
    # The message's own backticks can't close the table's fence.
    assert table == f"\n\n````text\n{server.trace.table()}\n````\n\n</details>"


def traced(*events: Event) -> Trace:
    """A trace holding ``events``, as if a server had logged them."""
    trace = Trace()
    trace.events.extend(events)
    return trace


HARD = [
    "I'm here; #1",
    'say "hi"',
    "a --> b -) c ->> d",
    "<script>alert(1)</script>",
    "two\nlines\r\n",
    "emoji 😀🎉 and Łukasz",
    "%%{init: {'theme': 'dark'}}%%",
    "style x:y#z; classDef a:b#c;",
    "&lt; &amp; #35; ﬂ°°1¶ß",
    "`code` {braces} [brackets]",
    "end",
    "x" * 10_000,
]


def test_any_text_is_written_with_mermaid_entity_codes():
    """Quotes, ;, #, arrows, HTML, newlines and emoji reach Mermaid only as #N; codes."""
    assert mermaid_text("I'm here; #1") == "I'm here#59; #35;1"
    assert mermaid_text("a-->b") == "a#45;#45;#62;b"
    assert mermaid_text("<script>") == "#60;script#62;"
    assert mermaid_text("one\ntwo") == "one#10;two"
    assert mermaid_text("😀") == "#128512;"
    assert mermaid_text("Łukasz") == "Łukasz"
    assert mermaid_text(" a b ") == "#32;a b#32;"
    assert mermaid_text("") == "#8203;"
    for text in HARD:
        assert_plain(mermaid_text(text))
        assert decode(mermaid_text(text)) == text


async def test_hard_messages_and_names_in_a_real_trace():
    """A real server's trace of hard messages and names is one valid line per event."""
    server = await wsteach.start(pong, port=0)
    names = ["server", "I'm; #1", "<b>x</b>", "Łukasz 😀"]
    async with wsteach.crowd(server.url, *names) as clients:
        for client in clients:
            for text in HARD:
                await client.send(text)
                await client.recv()
    trace = server.trace
    assert trace.participants == [
        "server (1)",
        "I'm; #1",
        "<b>x</b>",
        "Łukasz 😀",
        "server",
    ]
    assert "    participant C1 as server (1)" in trace.mermaid()
    assert_valid_diagram(trace, last=1000)


def test_a_client_named_server_is_not_the_server():
    """Events of a client labelled "server" and of the server stay on two lifelines."""
    trace = traced(
        Event("server (1)", "server", "connects", "connect"),
        Event("server (1)", "server", "'hi'"),
        Event("server", "server (1)", "'hi'"),
    )
    assert trace.mermaid().splitlines()[1:5] == [
        "    participant C1 as server (1)",
        "    participant S as server",
        "    Note over C1: server (1) connects",
        "    C1->>S: 'hi'",
    ]


def test_table_of_the_last_events():
    """table(last=n) numbers the rows as in the whole trace and says what it left out."""
    trace = traced(*(Event("a", "server", repr(str(n))) for n in range(5)))
    assert trace.table(last=2).splitlines() == [
        "(3 earlier events not shown)",
        "#  from  to      what",
        "4  a     server  '3'",
        "5  a     server  '4'",
    ]


def decode(text: str) -> str:
    """Undo Mermaid's entity codes, as Mermaid does before drawing."""
    if text == "#8203;":
        return ""  # How mermaid_text writes the empty text.
    return re.sub(r"#(\d+);", lambda m: chr(int(m.group(1))), text)


PLAIN = re.compile(r"(?:[^\W_]|[ .,!?'()_/*+=@$^|~]|#\d+;)*")


def assert_plain(text: str) -> None:
    """``text`` is letters, digits, harmless punctuation and #N; codes only."""
    assert PLAIN.fullmatch(text), text
    # Nothing Mermaid reads as syntax: statement ends, comments, directives, HTML.
    assert "%%" not in text and "<" not in text and "\n" not in text
    assert text and text == text.strip()
    assert not re.search(r"style.*:\S*#.*;|classDef.*:\S*#.*;", text)


LINE = re.compile(
    r"    (?:participant (C\d+|S) as (?P<label>.+)"
    r"|Note over (C\d+|S): (?P<note>.+)"
    r"|(C\d+|S)(?:->>|-\))(C\d+|S): (?P<message>.+))"
)


def assert_valid_diagram(trace: Trace, last: int = 60) -> None:
    """Each line of the diagram is a statement of the grammar, its text plain."""
    lines = trace.mermaid(last=last).splitlines()
    assert lines[0] == "sequenceDiagram"
    shown = list(trace.events)[-last:]
    participants = trace.participants
    assert len(lines) == 1 + len(participants) + (len(trace.events) > last) + len(shown)
    texts = []
    for line in lines[1:]:
        match = LINE.fullmatch(line)
        assert match, line
        text = match.group("label") or match.group("note") or match.group("message")
        assert_plain(text)
        texts.append(decode(text))
    assert texts[: len(participants)] == participants
    assert texts[-len(shown) :] == [
        f"{e.sender} {e.what}" if e.kind in ("connect", "disconnect") else e.what
        for e in shown
    ]


labels = st.text(min_size=1, max_size=50)
events = st.lists(
    st.builds(
        lambda client, what, kind, incoming: Event(
            *((client, "server") if incoming else ("server", client)), what, kind
        ),
        st.sampled_from(["alice", "server (2)", "I'm; #1"])
        | labels.filter(lambda label: label != "server"),
        st.text(max_size=200),
        st.sampled_from(["connect", "message", "close", "disconnect"]),
        st.booleans(),
    ),
    max_size=30,
)


@settings(deadline=None)  # A busy shared machine must not fail a case.
@given(st.text())
@example("  ")
@example("")
def test_mermaid_text_property(text: str) -> None:
    """Any text is written plain, and Mermaid's decoding gives it back unchanged."""
    written = mermaid_text(text)
    assert_plain(written)
    assert decode(written) == text


@settings(deadline=None)  # A busy shared machine must not fail a case.
@given(events, st.integers(min_value=1, max_value=40))
def test_diagram_property(events: list[Event], last: int) -> None:
    """Any events make a diagram of valid statements, one per event, text intact."""
    trace = traced(*events)
    if events:
        assert_valid_diagram(trace, last=last)
    table = trace.table().splitlines()
    assert len(table) == (len(events) + 1 if events else 1)


@settings(deadline=None)  # A busy shared machine must not fail a case.
@given(st.text(max_size=300), st.lists(st.integers(0, 1200), max_size=8))
def test_fragmented_preview_property(text: str, cuts: list[int]) -> None:
    """A message cut anywhere into fragments previews as the whole message does."""
    data = text.encode()
    bounds = sorted({0, len(data), *(c for c in cuts if c < len(data))})
    parts = [data[a:b] for a, b in itertools.pairwise(bounds)] or [b""]
    for opcode, whole in ((Opcode.TEXT, text), (Opcode.BINARY, data)):
        message = _Message(Frame(opcode, parts[0], fin=len(parts) == 1))
        for part in parts[1:]:
            message.add(part)
        assert message.text() == preview(whole)
        assert len(message.head) <= 4 * PREVIEW


async def test_binary_long_and_fragmented_messages():
    """Binary, long and fragmented messages are shown as one short line each."""
    server = await wsteach.start(wsteach.echo, port=0)
    async with wsteach.connect(server.url) as client:
        await client.send(b"\x00\x01")
        await client.send(["frag", "mented"])
        await client.send("x" * 100)
        for _ in range(3):
            await client.recv()
    what = [event.what for event in server.trace.events]
    assert "b'\\x00\\x01'" in what
    assert "'fragmented'" in what
    assert f"{'x' * 60!r} … (100 characters)" in what
    assert preview(b"y" * 61) == f"{b'y' * 60!r} … (61 bytes)"


async def test_limit_keeps_last_events():
    """Only the last events are kept; the table says how many were dropped."""
    trace = Trace(limit=3)
    server = await wsteach.start(pong, port=0)
    server.server.logger.removeHandler(server.trace)
    server.server.logger.addHandler(trace)
    async with wsteach.connect(server.url) as client:
        for n in range(5):
            await client.send(str(n))
            await client.recv()
    assert len(trace.events) == 3 and trace.dropped > 0
    table = trace.table()
    assert table.startswith(f"({trace.dropped} earlier events not kept)")
    assert "earlier events not shown" in trace.mermaid(last=2)
    trace.clear()
    assert trace.table() == "(nothing happened yet: no client has connected)"
    assert trace._repr_mimebundle_() == {
        "text/markdown": "(nothing happened yet: no client has connected)",
        "text/plain": "(nothing happened yet: no client has connected)",
    }
    assert repr(trace) == "<Trace: 0 events>"


async def test_abrupt_disconnect_and_odd_close():
    """A client that vanishes, or sends an unknown close code, is still described."""
    server = await wsteach.start(wsteach.echo, port=0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
    writer.transport.abort()  # Gone, without a closing handshake.
    async with wsteach.connect(server.url) as client:
        await client.close(4000, "bye")
    await asyncio.sleep(0.1)
    what = [event.what for event in server.trace.events]
    assert "disconnects without a close frame" in what
    assert "close 4000: bye" in what


def handshake(*extra: str) -> bytes:
    """An opening handshake request with ``extra`` header lines, repeats allowed."""
    lines = [
        "GET / HTTP/1.1",
        "Host: localhost",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {KEY}",
        "Sec-WebSocket-Version: 13",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def test_two_name_headers_dont_break_the_trace(capsys):
    """A client that sends X-Wsteach-Name twice is traced as "client 1", no logging error."""
    server = await wsteach.start(pong, port=0)
    raw = await Raw.connect(server.port)
    raw.send(handshake("X-Wsteach-Name: alice", "X-Wsteach-Name: mallory"))
    assert (await raw.response())[0] == 101
    raw.send(frame(0x1, b"hi"))
    assert (await raw.read_frame()).payload == b"Pong: hi"
    raw.send(close_frame(1000))
    assert await raw.close_code() == (1000, "")
    await raw.aclose()
    assert [(e.sender, e.what) for e in server.trace.events][:2] == [
        ("client 1", "connects"),
        ("client 1", "'hi'"),
    ]
    assert "Logging error" not in capsys.readouterr().err


async def test_half_received_message_is_bounded_and_forgotten():
    """A fragmented message keeps only its first bytes, and none once its connection ends."""
    server = await wsteach.start(pong, port=0)
    raw = await Raw.open(server.port)
    raw.send(frame(0x1, b"start ", fin=False))
    for _ in range(32):
        raw.send(frame(0x0, b"x" * 16_384, fin=False))
    await raw.writer.drain()
    trace = server.trace
    pending = trace._partial
    await eventually(lambda: [m.length for m in pending.values()] == [6 + 32 * 16_384])
    assert [len(message.head) for message in pending.values()] == [4 * PREVIEW]
    raw.reset()
    await eventually(lambda: trace.events[-1].kind == "disconnect")
    assert pending == {}


async def eventually(condition, seconds: float = 5) -> None:
    """Wait until ``condition()`` is true, or fail after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after {seconds} s")


NOTEBOOKS = sorted(Path(__file__).resolve().parents[1].glob("notebooks/**/*.ipynb"))
ARROW = re.compile(
    r"^\s*([^\s:>+-][^:>]*?)\s*(?:-{1,2}>>|-{1,2}\)|-{1,2}>|-{1,2}x)\s*\+?-?([^:]+?)\s*:"
)


def lifelines(diagram: str) -> list[tuple[str, str]]:
    """The (id, label) of each participant of a sequence diagram, left to right."""
    found: dict[str, str] = {}
    for line in diagram.splitlines():
        declared = re.match(r"\s*(?:participant|actor)\s+(\S+)(?:\s+as\s+(.+))?$", line)
        if declared:
            found.setdefault(declared.group(1), declared.group(2) or declared.group(1))
        elif arrow := ARROW.match(line):
            for key in arrow.groups():
                found.setdefault(key, key)
    return list(found.items())


def test_every_sequence_diagram_has_the_clients_left_and_the_server_right():
    """Each notebook's sequence diagrams, as the trace's, put the server last."""
    checked = 0
    for notebook in NOTEBOOKS:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
        for cell in cells:
            text = "".join(cell["source"])
            if cell["cell_type"] != "markdown":
                continue
            for diagram in re.findall(
                r"```mermaid\n(sequenceDiagram\n.*?)```", text, re.S
            ):
                order = lifelines(diagram)
                servers = [n for n, (_, label) in enumerate(order) if "server" in label]
                assert servers and servers[-1] == len(order) - 1, (notebook.name, order)
                assert servers == list(range(len(order) - len(servers), len(order)))
                checked += 1
    assert checked >= 2
    trace = traced(Event("alice", "server", "connects", "connect"))
    assert lifelines(trace.mermaid()) == [("C1", "alice"), ("S", "server")]


async def test_invalid_close_frame_is_traced_as_invalid():
    """A close frame whose payload is too short to parse shows as "close (invalid: …)"."""
    server = await wsteach.start(pong, port=0)
    raw = await Raw.open(server.port)
    raw.send(frame(0x8, b"\x03"))
    assert (await raw.close_code())[0] == 1002
    await raw.aclose()
    await eventually(lambda: len(server.trace.events) >= 3)
    assert [(e.sender, e.what) for e in server.trace.events][:2] == [
        ("client 1", "connects"),
        ("client 1", "close (invalid: b'\\x03')"),
    ]


async def test_ping_and_pong_frames_are_left_out():
    """A ping from the client and the server's pong add no event to the trace."""
    server = await wsteach.start(pong, port=0)
    raw = await Raw.open(server.port)
    raw.send(frame(0x9, b"are you there"))
    reply = await raw.read_frame()
    assert (reply.opcode, reply.payload) == (0xA, b"are you there")
    raw.send(frame(0x1, b"hi"))
    assert (await raw.read_frame()).payload == b"Pong: hi"
    raw.send(close_frame(1000))
    assert await raw.close_code() == (1000, "")
    await raw.aclose()
    assert [(e.sender, e.what) for e in server.trace.events][:3] == [
        ("client 1", "connects"),
        ("client 1", "'hi'"),
        ("server", "'Pong: hi'"),
    ]


def test_a_record_the_trace_cannot_read_never_raises(monkeypatch):
    """A record the trace can't make sense of goes to handleError, not up to the server."""
    import logging

    from wsteach.internals import STATE_CHANGED
    from wsteach.trace import Trace

    trace = Trace()
    handled = []
    monkeypatch.setattr(trace, "handleError", handled.append)
    record = logging.LogRecord(
        "websockets.server", logging.DEBUG, "", 0, STATE_CHANGED, ("CLOSED",), None
    )
    record.websocket = object()  # A "connection" without an id.
    trace.emit(record)
    assert handled == [record]
