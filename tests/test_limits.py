"""wsteach.limits: the numbers, the rate limiter (no network), the client cap."""

from __future__ import annotations

import asyncio
import math
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rawws import Raw, frame, request
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import InvalidStatus

import wsteach
from wsteach.handlers import Room, echo
from wsteach.internals import close_frames, transport
from wsteach.limits import (
    NO_LIMITS,
    ClassroomConnection,
    Limits,
    RateLimit,
    client_cap,
    close_for_limit,
    size,
    unread_bytes,
)


def test_rate_limit_allows_a_burst_then_the_rate() -> None:
    """A full bucket allows `burst` messages at once, then `rate` per second."""
    bucket = RateLimit(rate=2, burst=3, now=0.0)
    assert [bucket.allow(0.0) for _ in range(4)] == [True, True, True, False]
    assert bucket.allow(0.4) is False  # 0.8 of a token
    assert bucket.allow(0.5) is True  # 1 token
    assert bucket.allow(0.5) is False


def test_rate_limit_refills_only_up_to_the_burst() -> None:
    """A long pause earns no more than `burst` messages."""
    bucket = RateLimit(rate=10, burst=2, now=0.0)
    assert [bucket.allow(100.0) for _ in range(3)] == [True, True, False]


def test_rate_limit_ignores_a_clock_going_backwards() -> None:
    """Time moving backwards earns no tokens."""
    bucket = RateLimit(rate=1, burst=1, now=10.0)
    assert bucket.allow(10.0) is True
    assert bucket.allow(5.0) is False


def test_rate_limit_reason_says_the_numbers() -> None:
    """The close reason tells the student the limit and what to do."""
    reason = RateLimit(rate=2.5, burst=4, now=0).reason()
    assert reason == (
        "too many messages: the limit is 2.5 per second (bursts of 4); "
        "slow down and reconnect"
    )
    assert len(reason.encode()) <= 123  # Fits in a close frame.


@pytest.mark.parametrize(
    "changes",
    [
        {"max_clients": 0},
        {"max_clients": 2.5},
        {"max_message": -1},
        {"rate": 0},
        {"rate": math.nan},
        {"rate": math.inf},
        {"burst": 0},
        {"burst": 1.5},
        {"ping_interval": -1},
        {"ping_timeout": math.nan},
        {"open_timeout": 0},
        {"close_timeout": math.inf},
    ],
)
def test_limits_refuse_nonsense(changes: dict[str, int]) -> None:
    """Zero, negative, fractional counts or non-finite limits are refused, named."""
    with pytest.raises(ValueError, match=next(iter(changes))):
        Limits(**changes)


def test_limits_describe() -> None:
    """describe() says every limit in force, in one line."""
    assert Limits().describe() == (
        "limits: at most 100 clients · messages up to 64 KiB · 10 messages/s per "
        "client (bursts of 20) · 1 MiB queued for a slow reader · ping every 20 s, "
        "20 s to answer"
    )
    assert NO_LIMITS.describe() == "limits: none"
    assert Limits(ping_timeout=None).describe().endswith("ping every 20 s")
    assert (
        Limits(max_clients=None)
        .describe()
        .startswith("limits: any number of clients · messages up to 64 KiB")
    )


def test_size() -> None:
    """Byte counts read the way people say them."""
    assert [size(n) for n in (1000, 1024, 65536, 2**20, 1536)] == [
        "1000 bytes",
        "1 KiB",
        "64 KiB",
        "1 MiB",
        "1536 bytes",
    ]


def test_replace_and_rate_limit() -> None:
    """replace() changes one limit; rate_limit() is None when the rate is off."""
    assert Limits().replace(rate=None).rate_limit(now=0) is None
    assert isinstance(Limits().rate_limit(now=0), RateLimit)


def test_serve_options_use_websockets_options() -> None:
    """The limits become websockets' own serve() options."""
    options = Limits(max_message=1000, ping_interval=5).serve_options()
    assert options["max_size"] == 1000
    assert options["ping_interval"] == 5
    assert options["max_queue"] == 16
    assert "process_request" not in NO_LIMITS.serve_options()
    assert NO_LIMITS.serve_options(web=True)["process_request"].__name__ == "serve_page"


async def test_client_cap_runs_the_page_first() -> None:
    """With the chat page chained, a plain GET gets the page even when full."""
    limits = Limits(max_clients=1)
    async with (
        wsteach.start(
            echo, port=0, trace=False, **limits.serve_options(web=True)
        ) as running,
        connect(running.url),
    ):
        with pytest.raises(InvalidStatus) as refused:
            await connect(running.url)
        assert refused.value.response.status_code == 503
        raw = await Raw.connect(running.port)
        raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        status, _, body = await raw.response()
        await raw.aclose()
        assert status == 200
        assert b"<html" in body.lower()


async def test_client_cap_alone() -> None:
    """client_cap without a page refuses the client past the cap."""
    async with (
        wsteach.start(
            echo, port=0, trace=False, process_request=client_cap(1)
        ) as running,
        connect(running.url),
    ):
        with pytest.raises(InvalidStatus):
            await connect(running.url)


async def test_close_never_waits_forever_for_a_client_that_never_reads() -> None:
    """Stopping the server drops a non-reading client after close_timeout."""
    limits = Limits(close_timeout=0.3, rate=None)
    async with wsteach.start(
        echo, port=0, trace=False, **limits.serve_options()
    ) as running:
        raw = await Raw.connect(running.port, rcvbuf=4096)
        raw.send(request())
        assert (await raw.response())[0] == 101
        (server_side,) = running.connections
        sock = server_side.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        # Fill the server's write buffer past write_limit: echo's send waits.
        server_side.transport.write(b"\x81\x7e\xff\xff" + b"x" * 65535)
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.wait_for(running.stop(), 3)
        assert loop.time() - started < 2
        raw.reset()


async def test_reading_stays_paused_while_writing_is_paused() -> None:
    """The handler catching up doesn't resume reading while the write buffer is full.

    websockets resumes reading once the handler drains its queue of messages;
    if that happened while writing is paused, a client that sends pings and
    never reads the pongs could grow the server's buffer without bound.
    """
    go = asyncio.Event()
    read: list[object] = []

    async def late_reader(websocket: ServerConnection) -> None:
        await go.wait()
        async for message in websocket:
            read.append(message)

    limits = Limits(rate=None, ping_interval=None)
    async with wsteach.start(
        late_reader, port=0, trace=False, **limits.serve_options()
    ) as running:
        raw = await Raw.connect(running.port, rcvbuf=4096)
        raw.send(request())
        assert (await raw.response())[0] == 101
        (server_side,) = running.connections
        sink = transport(server_side)
        sink.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        raw.send(b"".join(frame(0x1, b"m%d" % n) for n in range(40)))
        async with asyncio.timeout(5):  # More than max_queue wait: not reading.
            while sink.is_reading():  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        sink.write(b"\x8a\x00" * 100_000)  # Pongs nobody reads, in effect.
        go.set()  # The handler drains its queue: websockets would resume reading.
        async with asyncio.timeout(5):
            while len(read) < 40:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert sink.get_write_buffer_size() > 2**15  # Writing is still paused...
        assert not sink.is_reading()  # ...so reading is too.
        raw.reset()


async def test_over_the_limit_but_reading_client_closes_cleanly_and_quickly() -> None:
    """A client over the rate limit that reads gets 1008 and a full closing handshake."""
    room = Room(limits=Limits(rate=1, burst=2))
    async with (
        wsteach.start(
            room.handler, port=0, trace=False, **room.limits.serve_options()
        ) as running,
        wsteach.connect(running.url, name="ada") as ada,
    ):
        loop = asyncio.get_running_loop()
        started = loop.time()
        for n in range(5):
            await ada.send(str(n))
        await ada.wait_closed()
        assert ada.close_code == 1008
        assert loop.time() - started < 1
    sent, received, _ = close_frames(ada.connection)
    assert received.code == 1008 and sent.code == 1008  # A full handshake.


async def test_unread_bytes_peeks_without_consuming() -> None:
    """unread_bytes counts what waits in the socket and leaves it there."""
    got: asyncio.Future[asyncio.Transport] = asyncio.Future()

    class Hold(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.pause_reading()
            got.set_result(transport)

    loop = asyncio.get_running_loop()
    server = await loop.create_server(Hold, "127.0.0.1", 0)
    async with server:
        _, writer = await asyncio.open_connection(
            "127.0.0.1", server.sockets[0].getsockname()[1]
        )
        held = await got
        assert unread_bytes(held, 65536) == 0
        writer.write(b"x" * 1000)
        await writer.drain()
        async with asyncio.timeout(5):
            while unread_bytes(held, 65536) < 1000:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert unread_bytes(held, 10) == 10
        assert unread_bytes(held, 65536) == 1000
        writer.close()
        held.abort()


@settings(deadline=None, max_examples=300)
@given(
    rate=st.floats(0.1, 1000),
    burst=st.integers(1, 100),
    gaps=st.lists(st.floats(0, 10), max_size=200),
)
def test_rate_limit_never_allows_more_than_burst_plus_rate(
    rate: float, burst: int, gaps: list[float]
) -> None:
    """In any stretch of time, allowed messages <= burst + rate × its length."""
    bucket = RateLimit(rate, burst, now=0.0)
    times, now = [], 0.0
    for gap in gaps:
        now += gap
        if bucket.allow(now):
            times.append(now)
        assert 0 <= bucket.tokens <= burst
    for i, start in enumerate(times):
        for j in range(i, len(times)):
            allowed = j - i + 1
            assert allowed <= burst + rate * (times[j] - start) + 1e-6


@settings(deadline=None)
@given(rate=st.floats(0.1, 1000), burst=st.integers(1, 100), count=st.integers(0, 300))
def test_rate_limit_always_allows_a_client_within_the_rate(
    rate: float, burst: int, count: int
) -> None:
    """Messages spaced a little more than 1/rate apart are never refused."""
    bucket = RateLimit(rate, burst, now=0.0)
    assert all(bucket.allow(n * 1.001 / rate) for n in range(count))


@settings(deadline=None)
@given(
    burst=st.integers(1, 50),
    back=st.floats(0.001, 1e6),
    rate=st.floats(0.1, 100),
)
def test_rate_limit_earns_nothing_from_a_clock_going_back(
    burst: int, back: float, rate: float
) -> None:
    """After the bucket is empty, a clock that goes back earns no token."""
    bucket = RateLimit(rate, burst, now=1e6)
    while bucket.allow(1e6):
        pass
    assert not bucket.allow(1e6 - back)


class Unbuffered(ClassroomConnection):
    receive_buffer = None


class Small(ClassroomConnection):
    receive_buffer = 8192


@pytest.mark.parametrize("kind", [Small, Unbuffered])
async def test_receive_buffer_is_fixed_or_left_to_the_system(
    kind: type[ClassroomConnection],
) -> None:
    """receive_buffer fixes the socket's receive buffer; None leaves the default."""
    async with (
        wsteach.start(echo, port=0, trace=False, create_connection=kind) as running,
        connect(running.url) as client,
    ):
        await client.send("hi")
        assert await client.recv() == "hi"
        (server_side,) = running.connections
        sock = transport(server_side).get_extra_info("socket")
        fixed = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == 2 * 8192
        assert fixed is (kind is Small)


async def test_a_flooder_that_never_reads_is_dropped_after_close_timeout() -> None:
    """A flooder's connection, no longer read, is dropped after close_timeout."""
    room = Room(limits=Limits(rate=1, burst=1, ping_interval=None, close_timeout=0.5))
    options = room.limits.serve_options()
    async with wsteach.start(room.handler, port=0, trace=False, **options) as running:
        raw = await Raw.open(running.port)
        raw.send(frame(0x1, b"x" * 1000) * 2000)  # 2 MB it never waits to send.
        (server_side,) = running.connections
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await raw.close_code())[0] == 1008  # It can read why...
        await asyncio.wait_for(server_side.wait_closed(), 3)  # ...then it is dropped.
        assert 0.4 < loop.time() - started < 1.5
        sent, received, _ = close_frames(server_side)
        assert sent.code == 1008 and received is None
        await raw.aclose()


async def test_close_for_limit_on_a_closed_connection_just_closes() -> None:
    """close_for_limit after the connection closed returns at once."""
    done = asyncio.Event()

    async def handler(websocket: ServerConnection) -> None:
        await websocket.wait_closed()
        await close_for_limit(websocket, 1008, "late")
        done.set()

    async with (
        wsteach.start(
            handler, port=0, trace=False, **Limits().serve_options()
        ) as running,
    ):
        async with connect(running.url):
            pass
        await asyncio.wait_for(done.wait(), 2)
