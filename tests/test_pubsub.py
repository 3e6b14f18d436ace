"""One room across processes through Redis: a real redis-server, real server processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import redis.asyncio as aioredis
from conftest import measured
from redisserver import running_redis
from serverproc import ServerProcess
from utils import FACTOR
from websockets.exceptions import InvalidStatus

import wsteach
from wsteach import pubsub
from wsteach.limits import Limits
from wsteach.pubsub import (
    HEALTH_CHECK_INTERVAL,
    SOCKET_TIMEOUT,
    RedisRoom,
    RedisRoomError,
    _reason,
    _shown,
    redis_url,
)
from wsteach.redis_server import RedisServer

PREFIX = "Someone said: "

Start = Callable[..., Awaitable[ServerProcess]]


@pytest.fixture
def redis() -> Iterator[RedisServer]:
    with running_redis() as server:
        yield server


@pytest.fixture
async def processes() -> AsyncIterator[Start]:
    """Start ``wsteach serve`` processes; whatever is left running is killed."""
    started: list[ServerProcess] = []

    async def start(*args: str) -> ServerProcess:
        server = await ServerProcess.start(*args)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.kill()


async def room_of(start: Start, redis: RedisServer, count: int, *extra: str):
    """``count`` broadcast processes on one Redis channel, each subscribed."""
    return [
        await start(
            "broadcast", "--port", "0", "--rate", "0", "--redis", redis.url, *extra
        )
        for _ in range(count)
    ]


async def until(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    """Wait until ``condition()`` holds, checking every 10 ms, or fail saying ``what``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout * FACTOR
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def two_clients(
    room: RedisRoom, other: str
) -> AsyncIterator[tuple[wsteach.Client, wsteach.Client]]:
    """Serve ``room`` on a free port; yield alice and ``other``, both in the room."""
    server = await wsteach.start(room.handler, port=0)
    async with wsteach.crowd(server.url, "alice", other) as (alice, them):
        await until(lambda: len(room.connected) == 2, "both joined")
        yield alice, them
    await server.stop()


def texts(client: wsteach.Client) -> list[str]:
    return [str(message).removeprefix(PREFIX) for message in client.received]


# Three processes, one room


async def test_three_processes_one_room_with_joins_and_leaves(
    redis: RedisServer, processes: Start
) -> None:
    """Across 3 processes: exactly once, each sender's order, one total order, joins and leaves."""
    servers = await room_of(processes, redis, 3)
    assert "3 processes subscribed" in servers[2].lines[0]
    # Each sender sends 50 messages in three rounds; clients join and leave
    # while the second round is on its way, and are in or out for the third.
    rounds = (range(0, 20), range(20, 40), range(40, 50))
    per_sender = 50
    watchers = [
        await wsteach.connect(s.url, name=f"watch{i}") for i, s in enumerate(servers)
    ]
    senders = [
        await wsteach.connect(servers[i % 3].url, name=f"s{i}") for i in range(6)
    ]
    leavers = [
        await wsteach.connect(s.url, name=f"leave{i}") for i, s in enumerate(servers)
    ]
    for server in servers:  # Every client is in its room before anyone talks.
        await server.wait_for("connected · 4 online")
    total = per_sender * len(senders)

    async def talk(numbers: range) -> None:
        async def one(sender: wsteach.Client) -> None:
            for k in numbers:
                await sender.send(f"{sender.name} {k}")

        await asyncio.gather(*(one(sender) for sender in senders))

    async def join_and_leave() -> list[wsteach.Client]:
        joiners = [
            await wsteach.connect(s.url, name=f"join{i}") for i, s in enumerate(servers)
        ]
        for leaver in leavers:
            await leaver.close()
        for i, server in enumerate(servers):
            await server.wait_for(f"+ join{i} ")
            await server.wait_for(f"- leave{i} ")
        return joiners

    await talk(rounds[0])
    _, joiners = await asyncio.gather(talk(rounds[1]), join_and_leave())
    await talk(rounds[2])
    for client in [*watchers, *senders]:
        expected = total if client in watchers else total - per_sender
        await until(
            lambda c=client, n=expected: len(c.received) >= n, f"{client.name} has all"
        )

    order = texts(watchers[0])
    assert len(order) == len(set(order)) == total, "each message exactly once"
    for watcher in watchers[1:]:
        assert texts(watcher) == order, "every process delivers in one total order"
    for sender in senders:
        mine = [text for text in order if text.split()[0] == sender.name]
        assert mine == [f"{sender.name} {k}" for k in range(per_sender)], "sender order"
        others = [text for text in order if text.split()[0] != sender.name]
        assert texts(sender) == others, f"{sender.name}: all but its own, in order"
    for leaver in leavers:
        got = texts(leaver)
        assert got == order[: len(got)], f"{leaver.name}: a prefix of the order"
        assert len(got) <= total - len(rounds[2]) * len(senders)
    for joiner in joiners:
        got = texts(joiner)
        assert len(got) >= len(rounds[2]) * len(senders)
        assert got == order[-len(got) :], f"{joiner.name}: the rest of the order"
    for client in [*watchers, *senders, *joiners]:
        await client.close()


async def test_redis_restart_mid_run(redis: RedisServer, processes: Start) -> None:
    """While Redis is away each process serves its own clients; then the room is whole."""
    servers = await room_of(processes, redis, 3)
    pairs = [
        (
            await wsteach.connect(s.url, name=f"a{i}"),
            await wsteach.connect(s.url, name=f"b{i}"),
        )
        for i, s in enumerate(servers)
    ]
    clients = [client for pair in pairs for client in pair]
    a1, b1 = pairs[1]
    await a1.send("before")
    for client in clients:
        if client is not a1:
            assert await client.recv() == PREFIX + "before"

    redis.kill()
    for server in servers:
        line = await server.wait_for("went away")
        assert line == (
            f"redis at {redis.url} went away: this process relays between its "
            "own 2 client(s) only; reconnecting"
        )
    await a1.send("during")
    assert await b1.recv() == PREFIX + "during", "a process's own clients go on"

    redis.start()
    for server in servers:
        line = await server.wait_for("is back")
        assert line == (
            f"redis at {redis.url} is back: the room is whole again for this "
            "process's clients"
        )
    await a1.send("after")
    for client in clients:
        if client is not a1:
            # "after" comes next: "during" never reached the other processes.
            assert await client.recv() == PREFIX + "after", client.name
    for server in servers:
        assert sum("went away" in line for line in server.lines) == 1, server.lines
        assert sum("is back" in line for line in server.lines) == 1, server.lines
    for client in clients:
        await client.close()


async def test_sigterm_of_one_process(redis: RedisServer, processes: Start) -> None:
    """SIGTERM of one process closes its clients with 1001; the others go on."""
    servers = await room_of(processes, redis, 3)
    gone = await wsteach.connect(servers[0].url, name="gone")
    alice = await wsteach.connect(servers[1].url, name="alice")
    bob = await wsteach.connect(servers[2].url, name="bob")
    for server in servers:
        await server.wait_for("connected · 1 online")
    assert await servers[0].stop(signal.SIGTERM) == 0
    await gone.wait_closed()
    assert gone.close_code == 1001
    await alice.send("still here")
    assert await bob.recv() == PREFIX + "still here"
    await bob.send("me too")
    assert await alice.recv() == PREFIX + "me too"
    await alice.close()
    await bob.close()


async def test_limits_per_process(redis: RedisServer, processes: Start) -> None:
    """--max-clients counts this process's clients; a flood gets 1008, a huge message 1009."""
    servers = [
        await processes(
            "broadcast",
            "--port",
            "0",
            "--redis",
            redis.url,
            "--max-clients",
            "1",
            "--rate",
            "2",
            "--burst",
            "2",
            "--max-message",
            "100",
        )
        for _ in range(2)
    ]
    flood = await wsteach.connect(servers[0].url, name="flood")
    calm = await wsteach.connect(servers[1].url, name="calm")
    with pytest.raises(InvalidStatus) as refused:
        await wsteach.connect(servers[0].url, name="third")
    assert refused.value.response.status_code == 503
    for server in servers:
        await server.wait_for("connected · 1 online")
    for k in range(10):
        await flood.send(f"m{k}")
    await flood.wait_closed()
    assert flood.close_code == 1008
    await until(lambda: len(calm.received) >= 2, "the burst arrived")
    got = texts(calm)
    assert 2 <= len(got) < 10
    assert got == [f"m{k}" for k in range(len(got))]
    huge = await wsteach.connect(servers[0].url, name="huge")
    await huge.send("x" * 101)
    await huge.wait_closed()
    assert huge.close_code == 1009
    assert texts(calm) == got, "nothing of the huge message was relayed"
    await calm.close()


# Starting


async def run_cli(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsteach",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=measured(),
    )
    async with asyncio.timeout(20 * FACTOR):
        out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_bad_url_is_one_line() -> None:
    """A URL that isn't redis:// ends the command with one line and status 1."""
    code, out, err = await run_cli(
        "serve", "broadcast", "--port", "0", "--redis", "http://localhost:6379"
    )
    assert code == 1
    assert out == ""
    assert err == (
        "wsteach: 'http://localhost:6379' is not a redis URL: write it like "
        "redis://localhost:6379/0 (the scheme is redis://, rediss:// or unix://)\n"
    )


async def test_unreachable_redis_is_one_line(redis: RedisServer) -> None:
    """No Redis at the URL ends the command with one line and status 1."""
    url = redis.url
    redis.stop()
    code, out, err = await run_cli("serve", "broadcast", "--port", "0", "--redis", url)
    assert code == 1
    assert out == ""
    assert err == (
        f"wsteach: cannot reach redis at {url}: connection refused; "
        "start redis-server there, or correct the URL\n"
    )


async def test_port_in_use_with_redis_is_one_line(redis: RedisServer) -> None:
    """A taken port with --redis: the port's one line, status 1, Redis left clean."""
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, _, err = await run_cli(
            "serve", "broadcast", "--port", str(port), "--redis", redis.url
        )
    assert code == 1
    assert err.startswith(f"wsteach: port {port} is already in use by another program")
    client = aioredis.Redis.from_url(redis.url)
    assert await client.pubsub_numsub("wsteach") == [(b"wsteach", 0)]
    await client.aclose()


async def test_redis_with_echo_is_refused() -> None:
    """--redis is for the broadcast room: with echo, a usage error."""
    code, _, err = await run_cli("serve", "echo", "--redis", "redis://localhost")
    assert code == 2
    assert "--redis works with the broadcast server only" in err


# RedisRoom in this process


async def test_room_in_process_relays_and_says_what_happens(redis: RedisServer) -> None:
    """Two RedisRooms in one process form one room; an outage and the return are said."""
    said: list[str] = []
    first = RedisRoom(
        redis.url, say=said.append, backoff=(0.01, 0.05), limits=Limits(rate=None)
    )
    second = RedisRoom(redis.url, say=said.append)
    async with first, second:
        assert said[1].endswith(": 2 processes subscribed")
        one = await wsteach.start(first.handler, port=0)
        two = await wsteach.start(second.handler, port=0)
        async with (
            wsteach.connect(one.url, name="alice") as alice,
            wsteach.connect(one.url, name="ann") as ann,
            wsteach.connect(two.url, name="bob") as bob,
        ):
            await until(
                lambda: len(first.connected) == 2 and second.connected, "joined"
            )
            await alice.send("hi")
            assert await ann.recv() == PREFIX + "hi"
            assert await bob.recv() == PREFIX + "hi"
            assert "whole" in repr(first)
            # A burst queues up: published in batches, still in order.
            await asyncio.gather(*(alice.send(f"burst {k}") for k in range(50)))
            for k in range(50):
                assert await bob.recv() == PREFIX + f"burst {k}"
                assert await ann.recv() == PREFIX + f"burst {k}"

            redis.kill()
            await alice.send("alone")  # Published to a dead Redis: delivered here.
            assert await ann.recv() == PREFIX + "alone"
            for room in (first, second):
                await room.wait_until(whole=False)
            assert "local only" in repr(first)
            redis.start()
            for room in (first, second):
                await room.wait_until(whole=True)
            await bob.send("back")
            assert await alice.recv() == PREFIX + "back"
            assert await ann.recv() == PREFIX + "back"
    with pytest.raises(TimeoutError):
        await first.wait_until(whole=True, timeout=0.01)
    assert sum("went away" in line for line in said) == 2, said
    assert sum("is back" in line for line in said) == 2, said


async def test_messages_from_outside_arrive_as_they_are(redis: RedisServer) -> None:
    """A message another program publishes on the channel reaches every client as is."""
    async with RedisRoom(redis.url, channel="lab", say=lambda line: None) as room:
        server = await wsteach.start(room.handler, port=0)
        async with wsteach.connect(server.url, name="alice") as alice:
            await until(lambda: len(room.connected) == 1, "alice joined")
            client = aioredis.Redis.from_url(redis.url)
            await client.publish("lab", "hello from redis-cli")
            await client.aclose()
            assert await alice.recv() == "hello from redis-cli"


async def test_database_number_does_not_separate_rooms(redis: RedisServer) -> None:
    """Redis channels ignore the database number: /0 and /1 share a channel, not two."""
    quiet = {"say": lambda line: None}
    url_one = redis.url.removesuffix("/0") + "/1"
    async with (
        RedisRoom(redis.url, **quiet) as zero,
        RedisRoom(url_one, **quiet) as one,
        RedisRoom(redis.url, channel="other", **quiet) as other,
    ):
        servers = [
            await wsteach.start(room.handler, port=0) for room in (zero, one, other)
        ]
        async with (
            wsteach.connect(servers[0].url) as alice,
            wsteach.connect(servers[1].url) as bob,
            wsteach.connect(servers[2].url) as carol,
        ):
            await until(
                lambda: zero.connected and one.connected and other.connected, "in"
            )
            await alice.send("one channel")
            assert await bob.recv() == PREFIX + "one channel"
            await carol.send("another channel")
            await alice.send("again")
            assert await bob.recv() == PREFIX + "again", "nothing from channel 'other'"


async def test_unreachable_at_start_raises(redis: RedisServer) -> None:
    """start() on a URL where no Redis answers raises RedisRoomError saying so."""
    url = redis.url
    redis.stop()
    room = RedisRoom(url)
    with pytest.raises(
        RedisRoomError, match=r"cannot reach redis at .*: connection refused"
    ):
        await room.start()
    await room.close()


def test_redis_urls() -> None:
    """redis_url accepts redis://, rediss:// and unix:// and refuses the rest."""
    for url in ("redis://localhost:6379/0", "rediss://host", "unix:///tmp/redis.sock"):
        assert redis_url(url) == url
    for url in ("http://localhost:6379", "localhost:6379", "redis://", "ws://x"):
        with pytest.raises(RedisRoomError, match="is not a redis URL"):
            redis_url(url)


def test_printed_urls_hide_the_password() -> None:
    """A password in the URL never appears in what the room prints."""
    assert _shown("redis://:secret@host:6379/0") == "redis://***@host:6379/0"
    assert _shown("redis://ann:secret@host/0") == "redis://ann:***@host/0"
    assert _shown("redis://host/0") == "redis://host/0"


def test_reasons_are_short() -> None:
    """Why Redis failed, in lowercase words: the errno's name, else the error's text."""
    refused = ConnectionError("Error 111 connecting")
    refused.__context__ = ConnectionRefusedError(111, "Connect call failed")
    assert _reason(refused) == "connection refused"
    assert _reason(ConnectionError("Connection closed by server.")) == (
        "connection closed by server"
    )


async def test_start_twice_and_a_client_leaving(redis: RedisServer) -> None:
    """A second start() does nothing; a client that leaves is forgotten by this process."""
    said: list[str] = []
    async with RedisRoom(redis.url, say=said.append) as room:
        tasks = list(room._tasks)
        await room.start()
        assert room._tasks == tasks and len(said) == 1
        client = aioredis.Redis.from_url(redis.url)
        try:
            assert await client.pubsub_numsub(room.channel) == [(b"wsteach", 1)]
        finally:
            await client.aclose()
        server = await wsteach.start(room.handler, port=0)
        async with wsteach.connect(server.url, name="alice"):
            await until(lambda: len(room._local) == 1, "alice joined")
        await until(lambda: not room._local and not room.connected, "alice left")


async def test_publishing_connections_killed_mid_run(
    redis: RedisServer, processes: Start
) -> None:
    """Publishing connections killed mid-run: each message once to every other client, in order."""
    servers = await room_of(processes, redis, 3)
    senders = [
        await wsteach.connect(s.url, name=f"s{i}") for i, s in enumerate(servers)
    ]
    watchers = [
        await wsteach.connect(s.url, name=f"w{i}") for i, s in enumerate(servers)
    ]
    for server in servers:
        await server.wait_for("connected · 2 online")
    per_sender = 300

    async def talk(sender: wsteach.Client) -> None:
        for k in range(per_sender):
            await sender.send(f"{sender.name} {k}")
            if k % 10 == 0:
                await asyncio.sleep(0.002)  # A steady stream, not one burst.

    async def kill_publishers() -> None:
        admin = aioredis.Redis.from_url(redis.url)
        try:
            for _ in range(5):
                await asyncio.sleep(0.1)
                # Normal connections: the publishers (and this one, but for
                # skipme); the subscriptions stay up.
                await admin.client_kill_filter(_type="normal", skipme=True)
        finally:
            await admin.aclose()

    await asyncio.gather(kill_publishers(), *(talk(sender) for sender in senders))
    total = per_sender * len(senders)
    for client in [*watchers, *senders]:
        expected = total if client in watchers else total - per_sender
        await until(
            lambda c=client, n=expected: len(c.received) >= n, f"{client.name} has all"
        )
    await asyncio.sleep(0.2)  # Time for a message delivered twice to show.
    for client in [*watchers, *senders]:
        got = texts(client)
        assert len(got) == len(set(got)), f"{client.name}: nothing twice"
        for sender in senders:
            theirs = [text for text in got if text.split()[0] == sender.name]
            expected = [] if sender is client else list(range(per_sender))
            assert theirs == [f"{sender.name} {k}" for k in expected], (
                f"{client.name} from {sender.name}: every message once, in order"
            )
    for client in [*watchers, *senders]:
        await client.close()


async def test_subscription_lost_splits_then_heals(redis: RedisServer) -> None:
    """Redis dropping the subscription: said once, local relay meanwhile, then whole."""
    said: list[str] = []
    room = RedisRoom(
        redis.url, say=said.append, backoff=(0.5, 0.5), limits=Limits(rate=None)
    )
    async with room, two_clients(room, "ann") as (alice, ann):
        admin = aioredis.Redis.from_url(redis.url)
        try:
            assert await admin.client_kill_filter(_type="pubsub")
        finally:
            await admin.aclose()
        await room.wait_until(whole=False)
        await alice.send("split")  # Relayed here, never published.
        assert await ann.recv() == PREFIX + "split"
        await room.wait_until(whole=True)
        await alice.send("whole")
        assert await ann.recv() == PREFIX + "whole"
        await asyncio.sleep(0.1)
        assert texts(ann) == ["split", "whole"]
    assert len(said) == 3, said
    assert said[1].startswith(f"redis at {redis.url} went away: "), said
    assert said[2].startswith(f"redis at {redis.url} is back: "), said


async def test_a_message_published_twice_reaches_each_client_once(
    redis: RedisServer,
) -> None:
    """A room message that Redis publishes twice (a retried publish) is delivered once."""
    async with (
        RedisRoom(redis.url, say=lambda line: None) as here,
        RedisRoom(redis.url, say=lambda line: None) as there,
    ):
        one = await wsteach.start(here.handler, port=0)
        two = await wsteach.start(there.handler, port=0)
        listener = aioredis.Redis.from_url(redis.url)
        pubsub = listener.pubsub()
        await pubsub.subscribe(here.channel)
        async with (
            wsteach.connect(one.url, name="alice") as alice,
            wsteach.connect(one.url, name="ann") as ann,
            wsteach.connect(two.url, name="bob") as bob,
        ):
            await until(lambda: len(here.connected) == 2 and there.connected, "in")
            await alice.send("once")
            assert await bob.recv() == PREFIX + "once"
            published = None
            while published is None:
                published = await pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=5
                )
            await listener.publish(here.channel, published["data"])  # Again.
            await alice.send("next")
            assert await bob.recv() == PREFIX + "next"
            assert await ann.recv() == PREFIX + "once"
            assert await ann.recv() == PREFIX + "next"
            assert alice.received == []
        await pubsub.aclose()
        await listener.aclose()


async def test_relayed_here_then_published_is_not_delivered_again(
    redis: RedisServer,
) -> None:
    """A message relayed locally during an outage that reaches Redis later: not twice."""
    said: list[str] = []
    room = RedisRoom(redis.url, say=said.append, backoff=(0.05, 0.1))
    async with room, two_clients(room, "ann") as (alice, ann):
        redis.kill()
        await room.wait_until(whole=False)
        await alice.send("during")  # Message 1 of this process: relayed here.
        assert await ann.recv() == PREFIX + "during"
        redis.start()
        await room.wait_until(whole=True)
        late = {
            "process": room.origin,
            "number": 1,
            "client": "x",
            "text": PREFIX + "during",
        }
        admin = aioredis.Redis.from_url(redis.url)
        try:
            await admin.publish(room.channel, json.dumps(late))
        finally:
            await admin.aclose()
        await alice.send("after")
        assert await ann.recv() == PREFIX + "after"
        assert texts(ann) == ["during", "after"]


async def test_a_full_outbox_relays_here_in_order(redis: RedisServer) -> None:
    """Redis too slow (stopped), the outbox full: relayed here in order, once, then whole."""
    said: list[str] = []
    room = RedisRoom(
        redis.url,
        say=said.append,
        backoff=(0.05, 0.1),
        limits=Limits(rate=None),
        outbox=3,
    )
    async with room, two_clients(room, "ann") as (alice, ann):
        assert redis.process is not None
        redis.process.send_signal(signal.SIGSTOP)
        await alice.send("m0")
        await until(lambda: bool(room._in_flight), "m0 being published")
        for k in range(1, 6):  # m4 finds the outbox full.
            await alice.send(f"m{k}")
        await until(lambda: len(ann.received) >= 6, "all relayed here")
        # The publish that was under way fails now: relayed already.
        redis.kill()
        await until(lambda: not room._in_flight, "the publish failed")
        redis.start()
        await room.wait_until(whole=True, timeout=20 * FACTOR)
        await alice.send("after")
        await until(lambda: len(ann.received) >= 7, "after")
        await asyncio.sleep(0.2)  # Time for a message delivered twice to show.
        assert texts(ann) == [*(f"m{k}" for k in range(6)), "after"]
    assert "went away (too slow: 3 messages waited to be published)" in said[1]


async def test_what_a_room_remembers_is_bounded(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The numbers remembered per process and for local relays stay under their bounds."""
    monkeypatch.setattr(pubsub, "ORIGINS", 2)
    monkeypatch.setattr(pubsub, "RELAYED_HERE", 2)
    room = RedisRoom(redis.url, say=lambda line: None, limits=Limits(rate=None))
    async with room, two_clients(room, "ann") as (alice, ann):
        admin = aioredis.Redis.from_url(redis.url)
        try:
            for origin in ("p1", "p2", "p3", "p1"):
                message = {"process": origin, "number": 1, "client": "c"}
                message["text"] = origin
                await admin.publish(room.channel, json.dumps(message))
        finally:
            await admin.aclose()
        # p1 was forgotten (two processes at most), so its 1 is new again.
        await until(lambda: len(ann.received) >= 4, "four")
        assert texts(ann) == ["p1", "p2", "p3", "p1"]
        redis.kill()
        await room.wait_until(whole=False)
        for k in range(3):
            await alice.send(f"here {k}")
        await until(lambda: len(ann.received) >= 7, "relayed here")
        assert len(room._relayed_here) == 2


async def test_a_frozen_redis_is_noticed(redis: RedisServer) -> None:
    """A Redis that stops answering (SIGSTOP) is noticed by the subscription's ping."""
    said: list[str] = []
    async with RedisRoom(redis.url, say=said.append, backoff=(0.05, 0.1)) as room:
        # Quiet for longer than the ping interval: pinged, answered, whole.
        await asyncio.sleep(HEALTH_CHECK_INTERVAL * 1.5)
        assert room.whole
        assert redis.process is not None
        redis.process.send_signal(signal.SIGSTOP)
        try:
            limit = HEALTH_CHECK_INTERVAL + SOCKET_TIMEOUT + 2
            await room.wait_until(whole=False, timeout=limit * FACTOR)
        finally:
            redis.process.send_signal(signal.SIGCONT)
        await room.wait_until(whole=True, timeout=10 * FACTOR)
    assert said[1].startswith(f"redis at {redis.url} went away: "), said


async def test_malformed_room_messages_are_dropped_and_counted(
    redis: RedisServer,
) -> None:
    """A malformed room message or an over-long foreign one: dropped, counted, no outage."""
    said: list[str] = []
    limits = Limits(rate=None, max_message=100)
    async with (
        RedisRoom(redis.url, say=said.append, limits=limits) as room,
        two_clients(room, "bob") as (alice, bob),
    ):
        client = aioredis.Redis.from_url(redis.url)
        try:
            for bad in (
                '{"process": "x", "client": "y", "text": 5}',
                '{"process": "x", "number": "1", "client": "y", "text": "t"}',
                '{"process": 7}',
                "x" * 101,
            ):
                await client.publish(room.channel, bad)
            await client.publish(room.channel, "[1, 2]")  # Foreign: as it is.
        finally:
            await client.aclose()
        assert await bob.recv() == "[1, 2]"
        await alice.send("still here")
        assert await bob.recv() == PREFIX + "still here"
        assert room.malformed == 4
        assert room.whole
    assert len(said) == 1, said


class _Buggy(RedisRoom):
    """A room with two bugs: delivering "boom" raises, and so does publishing "crash"."""

    def _deliver(self, data: bytes) -> None:
        if b"boom" in data:
            raise RuntimeError("a bug")
        super()._deliver(data)

    async def _publish(self, batch: list[tuple[int, str, str]]) -> None:
        if any("crash" in text for _, _, text in batch):
            raise RuntimeError("another bug")
        await super()._publish(batch)


async def test_a_bug_while_relaying_is_logged_and_the_room_recovers(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in one of the room's loops is logged; the room resubscribes, never mute."""
    said: list[str] = []
    async with (
        _Buggy(redis.url, say=said.append, backoff=(0.01, 0.05)) as room,
        two_clients(room, "bob") as (alice, bob),
    ):
        with caplog.at_level("ERROR", logger="wsteach.pubsub"):
            await alice.send("boom")
            await until(lambda: any("is back" in s for s in said), "back")
        await alice.send("still here")
        assert await bob.recv() == PREFIX + "still here"
    assert "the redis room's subscriber failed; restarting it" in caplog.text
    assert "RuntimeError: a bug" in caplog.text
    assert "went away (an internal error; see the log)" in said[1], said


async def test_a_bug_while_publishing_loses_nothing_here(
    redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A bug in publishing: the message is relayed here, the error logged, the room goes on."""
    said: list[str] = []
    async with (
        _Buggy(redis.url, say=said.append, backoff=(0.01, 0.05)) as room,
        two_clients(room, "bob") as (alice, bob),
    ):
        with caplog.at_level("ERROR", logger="wsteach.pubsub"):
            await alice.send("crash")
            assert await bob.recv() == PREFIX + "crash"
            await until(lambda: any("is back" in s for s in said), "back")
        await alice.send("still here")
        assert await bob.recv() == PREFIX + "still here"
    assert "the redis room's publisher failed; restarting it" in caplog.text
    assert "RuntimeError: another bug" in caplog.text


def test_unknown_host_reason_names_the_lookup() -> None:
    """A failed name lookup reads as such, not as os.strerror's "unknown error -2"."""
    lookup = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    error = ConnectionError("Error -2 connecting to no-such-host.invalid:6379.")
    error.__cause__ = lookup
    assert (
        _reason(error) == "its host name does not resolve (name or service not known)"
    )


async def test_unknown_host_is_one_line() -> None:
    """--redis with a host that doesn't exist: one line naming the lookup, status 1."""
    url = "redis://no-such-host.invalid:6379/0"
    code, _, err = await run_cli("serve", "broadcast", "--port", "0", "--redis", url)
    assert code == 1
    assert err.startswith(
        f"wsteach: cannot reach redis at {url}: its host name does not resolve ("
    ), err
    assert "unknown error" not in err
    assert err.endswith("start redis-server there, or correct the URL\n")


async def test_close_drops_what_was_not_published(redis: RedisServer) -> None:
    """close() drops the outbox: the room started again publishes nothing stale."""
    room = RedisRoom(redis.url, say=lambda line: None, limits=Limits(rate=None))
    async with RedisRoom(redis.url, say=lambda line: None) as watching:
        there = await wsteach.start(watching.handler, port=0)
        async with wsteach.connect(there.url, name="bob") as bob:
            await until(lambda: len(watching.connected) == 1, "bob joined")
            await room.start()
            here = await wsteach.start(room.handler, port=0)
            alice = await wsteach.connect(here.url, name="alice")
            await until(lambda: len(room.connected) == 1, "alice joined")
            assert redis.process is not None
            redis.process.send_signal(signal.SIGSTOP)
            try:
                await alice.send("sent")
                await until(lambda: bool(room._in_flight), "being published")
                await alice.send("stale 1")
                await alice.send("stale 2")
                await until(lambda: room._outbox.qsize() == 2, "both waiting")
                await alice.close()
                await room.close()
            finally:
                redis.process.send_signal(signal.SIGCONT)
            await room.start()
            async with wsteach.connect(here.url, name="ada") as ada:
                await until(lambda: len(room.connected) == 1, "ada joined")
                await ada.send("fresh")
                await until(lambda: "fresh" in texts(bob), "fresh arrived")
            await asyncio.sleep(0.2)  # Time for a stale message to show.
            assert [t for t in texts(bob) if t != "sent"] == ["fresh"], texts(bob)
            await room.close()


async def test_publishing_that_keeps_failing_splits_the_room_in_time(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Writes paused (CLIENT PAUSE WRITE) while the subscription is fine: split in time, then whole."""
    monkeypatch.setattr(pubsub, "SOCKET_TIMEOUT", 0.2)
    monkeypatch.setattr(pubsub, "HEALTH_CHECK_INTERVAL", 0.2)
    said: list[str] = []
    room = RedisRoom(
        redis.url, say=said.append, backoff=(0.05, 0.1), limits=Limits(rate=None)
    )
    async with room, two_clients(room, "ann") as (alice, ann):
        admin = aioredis.Redis.from_url(redis.url)
        try:
            await admin.execute_command("CLIENT", "PAUSE", "1500", "WRITE")
            await alice.send("paused")
            # Relayed here once the room gave up on publishing it.
            assert await ann.recv(timeout=5 * FACTOR) == PREFIX + "paused"
            await admin.execute_command("CLIENT", "UNPAUSE")
        finally:
            await admin.aclose()
        await room.wait_until(whole=True)
        await alice.send("after")
        await until(lambda: "after" in texts(ann), "after")
        assert texts(ann) == ["paused", "after"]
    assert "went away: this process relays" in said[1], said


async def test_redis_refusing_publish_is_said_with_its_reason(
    redis: RedisServer,
) -> None:
    """A user Redis won't let publish (ACL): the room says why, and relays here."""
    admin = aioredis.Redis.from_url(redis.url)
    try:
        await admin.acl_setuser(
            "student",
            enabled=True,
            nopass=True,
            keys=["*"],
            channels=["*"],
            commands=["+@all", "-publish"],
        )
    finally:
        await admin.aclose()
    url = redis.url.replace("redis://", "redis://student@")
    said: list[str] = []
    room = RedisRoom(
        url, say=said.append, backoff=(0.05, 0.1), limits=Limits(rate=None)
    )
    async with room, two_clients(room, "ann") as (alice, ann):
        await alice.send("refused")
        assert await ann.recv() == PREFIX + "refused"
    assert "went away (" in said[1] and "permission" in said[1], said
