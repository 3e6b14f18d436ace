"""Nothing lost: 8 senders × 500 messages × 20 receivers, with joins and leaves.

Every receiver open for the whole run gets every message exactly once, intact,
in each sender's order, and all of them see the same total order. A receiver
that joins or leaves mid-run gets a contiguous slice of that same order, which
includes every message sent while it was connected. Run again with a receiver
that stops reading: the others' delivery is unchanged, and the stalled one is
closed with 1008 and a reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import socket

import pytest
from rawws import Raw, request

import wsteach
from wsteach.clients import Client
from wsteach.handlers import Room
from wsteach.limits import Limits

# A stress test, not a coverage one: the Room's lines are covered by its own
# tests (tests/test_handlers.py), and tracing 80,000 deliveries twice costs
# about 7 s of a 2-core machine's time (pytest-cov's marker).
pytestmark = pytest.mark.no_cover

SENDERS, MESSAGES, RECEIVERS = 8, 500, 20
STAYING, JOINING, LEAVING = 12, 4, 4
PREFIX = "Someone said: "


def body(sender: int, seq: int) -> str:
    """A message that says who sent it, its number, and a checksum of both."""
    digest = hashlib.sha256(f"{sender}/{seq}".encode()).hexdigest()
    padding = digest * (1 + (sender * 7 + seq) % 3)
    return f"{sender}:{seq}:{padding}"


def parse(message: str) -> tuple[int, int]:
    """Check a received message is intact; return (sender, seq)."""
    assert message.startswith(PREFIX), message[:40]
    sender, seq, _ = message[len(PREFIX) :].split(":")
    key = int(sender), int(seq)
    assert message == PREFIX + body(*key), f"message {key} arrived damaged"
    return key


async def run(stalled: bool) -> None:
    limits = Limits(rate=None, max_queued=64 * 1024, close_timeout=5)
    room = Room(limits=limits)
    loop = asyncio.get_running_loop()
    async with wsteach.start(
        room.handler, port=0, trace=False, **limits.serve_options()
    ) as running:
        sent_at: dict[tuple[int, int], float] = {}
        progress = asyncio.Condition()
        done = 0

        async def send_all(client: Client, sender: int) -> None:
            nonlocal done
            for seq in range(MESSAGES):
                sent_at[sender, seq] = loop.time()
                await client.send(body(sender, seq))
                async with progress:
                    done += 1
                    progress.notify_all()
                if seq % 10 == 9:
                    # Pace the senders a little, so that joins and leaves
                    # happen while messages are still flowing.
                    await asyncio.sleep(0.002)

        async def reached(count: int) -> None:
            async with progress:
                await progress.wait_for(lambda: done >= count)

        staying = [
            await wsteach.connect(running.url, name=f"r{n}") for n in range(STAYING)
        ]
        leaving = [
            await wsteach.connect(running.url, name=f"leave{n}") for n in range(LEAVING)
        ]
        joined_at: dict[Client, float] = {}
        joining: list[Client] = []
        senders = [
            await wsteach.connect(running.url, name=f"s{n}") for n in range(SENDERS)
        ]

        slow = slow_conn = None
        if stalled:
            slow = await Raw.connect(running.port, rcvbuf=4096)
            slow.send(request(X_Wsteach_Name="stalled"))
            assert (await slow.response())[0] == 101
            slow_conn = next(
                c
                for c in room.connected
                if c.request.headers.get("X-Wsteach-Name") == "stalled"
            )
            # A small kernel buffer, as on a slow network, so that what it
            # doesn't read piles up in the server, where the bound applies.
            sock = slow_conn.transport.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)

        async def churn() -> None:
            total = SENDERS * MESSAGES
            await reached(total // 4)
            for n in range(JOINING):
                client = await wsteach.connect(running.url, name=f"join{n}")
                joined_at[client] = loop.time()
                joining.append(client)
            await reached(total // 2)
            for client in leaving:
                await client.close()

        await asyncio.gather(churn(), *(send_all(c, n) for n, c in enumerate(senders)))

        # Everyone still connected gets everything: wait for the last message.
        everything = SENDERS * MESSAGES
        async with asyncio.timeout(30):
            while any(len(c.received) < everything for c in staying):  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # Anything extra (a duplicate) would show now.

        orders = [[parse(m) for m in client.received] for client in staying]
        first = orders[0]
        assert sorted(first) == sorted(sent_at), "a message is missing or repeated"
        for sender in range(SENDERS):
            assert [seq for s, seq in first if s == sender] == list(range(MESSAGES))
        for order in orders[1:]:
            assert order == first, "receivers saw different orders"

        position = {key: n for n, key in enumerate(first)}
        for client in joining + leaving:
            got = [parse(m) for m in client.received]
            assert got, f"{client.name} got nothing"
            start = position[got[0]]
            assert got == first[start : start + len(got)], client.name
        for client, joined in joined_at.items():
            got = set(parse(m) for m in client.received)
            missed = [k for k, t in sent_at.items() if t > joined and k not in got]
            assert missed == [], f"{client.name} missed {len(missed)} messages"
        for client in leaving:
            assert len(client.received) < everything

        if stalled:
            assert slow is not None and slow_conn is not None
            assert slow_conn.protocol.close_sent is not None, (
                "stalled reader not closed"
            )
            assert slow_conn not in room.connected
            # Reading again, it finds what was queued, then the reason.
            messages = []
            while (reply := await slow.read_frame()) is not None and reply.opcode == 1:
                messages.append(parse(reply.payload.decode()))
            assert reply is not None and reply.opcode == 8
            assert reply.close.code == 1008
            assert "too slow" in reply.close.reason
            assert messages == first[: len(messages)]
            assert len(messages) < everything
            slow.reset()

        for client in staying + joining + senders:
            await client.close()


async def test_nothing_lost() -> None:
    """Every open receiver gets every message once, intact, in one shared order."""
    await run(stalled=False)


async def test_nothing_lost_with_a_stalled_reader() -> None:
    """A reader that stops reading is closed with a reason; the others lose nothing."""
    await run(stalled=True)
