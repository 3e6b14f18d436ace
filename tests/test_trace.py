"""The trace: what websockets logged, as a table and a Mermaid diagram."""

from __future__ import annotations

import asyncio

import wsteach
from wsteach.trace import Trace, preview


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
    """The diagram has the server and clients as participants and escapes syntax."""
    server = await wsteach.start(pong, port=0)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("a;b#c<d>")
        await alice.recv()
    diagram = server.trace.mermaid()
    assert diagram.splitlines()[:3] == [
        "sequenceDiagram",
        "    participant P0 as server",
        "    participant P1 as alice",
    ]
    assert "    Note over P1: alice connects" in diagram
    assert "    P1->>P0: 'a#59;b#35;c#lt;d#gt;'" in diagram
    assert "    P1-)P0: close 1000 (normal closure)" in diagram
    bundle = server.trace._repr_mimebundle_()
    assert bundle["text/markdown"].startswith("```mermaid\nsequenceDiagram\n")
    assert bundle["text/plain"] == server.trace.table() == str(server.trace)


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
    assert (
        trace._repr_mimebundle_()["text/markdown"] == "```mermaid\nsequenceDiagram\n```"
    )
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
