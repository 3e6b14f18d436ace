"""One broadcast room across several processes, through Redis publish/subscribe.

A :class:`~wsteach.Room` lives in one Python process: its clients hear each
other, and nobody else. :class:`RedisRoom` is a ``Room`` whose processes, on
one machine or several, share a Redis channel: each process publishes what its
clients send, and delivers what the channel brings to its own clients::

    room = RedisRoom("redis://localhost:6379/0", channel="wsteach")
    await room.start()          # connects and subscribes, or raises RedisRoomError
    server = await wsteach.start(room.handler, port=7890)
    ...
    await server.stop()
    await room.close()

``wsteach serve broadcast --redis redis://HOST:PORT/DB [--channel NAME]`` runs
one such process from a terminal.

**Ordering.** Every process delivers only what comes back from its
subscription, the sender's own process included; a message is never delivered
to the local clients first. Redis runs one command at a time and sends each
published message to every subscriber of the channel in the order it ran the
``PUBLISH`` commands, so the subscription is the single ordering point: while
Redis is up, every client, on every process, sees the same messages in the same
order. A client's messages are published in the order it sent them (one queue
and one connection per process), so each sender's order is kept too.

**Delivery is at most once, and never twice.** Redis keeps no copy of a
published message: a process that is not subscribed at that moment never gets
it. Messages that were on their way when Redis went away are lost. Every
message carries its process's name and a number that grows by one per message,
and each process delivers a number at most once: a publish that redis-py
retried after a broken connection (and that Redis may have run twice), or one
that failed here, was relayed locally, and still reached Redis, reaches no
client twice.

**Talking to Redis.** The publishing connection retries a command once, on a
fresh connection, when the old one broke (Redis restarted, or a ``CLIENT
KILL``): redis-py does that (its ``Retry``). If that fails too while the
subscription is up, the room publishes the messages again, with backoff, until
they go through or the subscription says that Redis is away: a broken
publishing connection alone loses nothing. The numbers above make every retry
safe. The subscription never retries inside redis-py, so that an outage
reaches this class, which says so. Each command waits at most
``SOCKET_TIMEOUT`` seconds for its answer, and the subscription sends a
``PING`` after ``HEALTH_CHECK_INTERVAL`` seconds of silence: a Redis that
froze (stopped, or a cable pulled) is noticed within about
``HEALTH_CHECK_INTERVAL + SOCKET_TIMEOUT`` seconds, on every redis-py version
(before 8.0, redis-py waits forever by default).

**While Redis is away** each process goes on as a plain ``Room``: its own
clients still hear each other, relayed locally, but not the other processes'.
It says so in one line, reconnects with exponential backoff (0.1 s doubling up
to 5 s, with jitter), and says when the room is whole again. At most
``OUTBOX`` messages wait to be published: more than that (Redis too slow to
keep up) counts as an outage too, and they are relayed locally, in order.

**What else comes over the channel.** A message that is not JSON, published by
something else (``redis-cli PUBLISH wsteach hello``), reaches every client as
it is. A JSON object with a ``"process"`` key that is not a well-formed room
message (a ``"text"`` that is not a string, say) is dropped and counted in
:attr:`RedisRoom.malformed`: it is not an outage. A foreign message longer than
the room's ``limits.max_message`` is dropped and counted too.

The database number in the URL does not separate rooms: Redis channels are
shared by all its databases. Use another ``channel`` for another room.

Limits work per process, as in ``Room``: the rate limit, the text-only rule
and the slow-reader bound apply to the clients of this process, and the
number of clients is capped per process by the server (``max_clients``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from websockets.asyncio.server import ServerConnection

from .handlers import Room
from .limits import Limits

__all__ = [
    "DEFAULT_CHANNEL",
    "HEALTH_CHECK_INTERVAL",
    "OUTBOX",
    "SOCKET_TIMEOUT",
    "RedisRoom",
    "RedisRoomError",
    "redis_url",
]

logger = logging.getLogger(__name__)

DEFAULT_CHANNEL = "wsteach"
SCHEMES = ("redis", "rediss", "unix")
BATCH = 500  # Messages published in one round trip, at most.
#: Seconds a command waits for Redis's answer (connecting included).
SOCKET_TIMEOUT = 3.0
#: Seconds of silence on the subscription before it sends a ``PING``.
HEALTH_CHECK_INTERVAL = 2.0
#: Messages waiting to be published, at most; more is an outage.
OUTBOX = 5000
#: Processes whose last message number each process remembers.
ORIGINS = 1024
#: Numbers of this process's messages relayed locally, remembered to skip
#: them when they come back through Redis after all.
RELAYED_HERE = 10_000
#: Errors that mean the connection to Redis broke, not that Redis refused.
CONNECTION_LOST = (RedisConnectionError, RedisTimeoutError, OSError, TimeoutError)


class RedisRoomError(Exception):
    """The room can't use Redis: a bad URL, or no Redis answers there."""


def redis_url(url: str) -> str:
    """Return ``url`` if it is a Redis URL, else raise :exc:`RedisRoomError`.

    A Redis URL starts with ``redis://``, ``rediss://`` (TLS) or ``unix://``,
    for example ``redis://localhost:6379/0``.
    """
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not (parts.netloc or parts.path):
        raise RedisRoomError(
            f"{url!r} is not a redis URL: write it like redis://localhost:6379/0 "
            "(the scheme is redis://, rediss:// or unix://)"
        )
    return url


def _shown(url: str) -> str:
    """``url`` without its password, fit to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = f"{parts.username}:***@" if parts.username else "***@"
    return urlunsplit(parts._replace(netloc=user + netloc))


def _reason(exc: BaseException) -> str:
    """Say in a few lowercase words why talking to Redis failed."""
    for cause in (exc, exc.__cause__, exc.__context__):
        if isinstance(cause, socket.gaierror):
            # A name lookup's errno is negative (EAI_NONAME is -2), and
            # os.strerror knows only the positive ones: "unknown error -2".
            return f"its host name does not resolve ({str(cause.strerror).lower()})"
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:1].lower() + text[1:]


def _parse(data: bytes) -> tuple[str, int, str, str] | str | None:
    """Read one message from the channel.

    Returns:
        ``(process, number, client, text)`` for a room message; the text itself
        for a message published by something else (not a JSON object with a
        ``"process"`` key); :obj:`None` for a malformed room message.
    """
    try:
        fields = json.loads(data)
    except ValueError:
        fields = None
    if not isinstance(fields, dict) or "process" not in fields:
        return data.decode(errors="replace")
    process, number = fields.get("process"), fields.get("number")
    client, text = fields.get("client"), fields.get("text")
    if (
        isinstance(process, str)
        and type(number) is int
        and isinstance(client, str)
        and isinstance(text, str)
    ):
        return process, number, client, text
    return None


class RedisRoom(Room):
    """A :class:`~wsteach.Room` shared by every process subscribed to one Redis channel.

    Serve :attr:`handler` as with ``Room``; call :meth:`start` first and
    :meth:`close` at the end (or use ``async with RedisRoom(...) as room:``).
    See the module documentation for ordering, delivery and outages.

    Args:
        url: Where Redis listens, like ``redis://localhost:6379/0``.
        channel: The Redis channel: processes on the same one form one room.
        prefix: Put before every relayed message.
        limits: As for ``Room``: per client of this process.
        say: Called with one line when the room starts, when Redis goes away
            and when it is back; logged as warnings if omitted. The command
            line prints them.
        backoff: First and longest pause between two reconnection attempts,
            in seconds.
        outbox: Messages that may wait to be published; one more is an
            outage (see the module documentation).
    """

    def __init__(
        self,
        url: str,
        *,
        channel: str = DEFAULT_CHANNEL,
        prefix: str = "Someone said: ",
        limits: Limits | None = None,
        say: Callable[[str], None] | None = None,
        backoff: tuple[float, float] = (0.1, 5.0),
        outbox: int = OUTBOX,
    ) -> None:
        super().__init__(prefix, limits=limits)
        self.url = redis_url(url)
        self.channel = channel
        self.say = say or (lambda line: logger.warning("%s", line))
        self.backoff = backoff
        #: This process's name on the channel, so it can tell its own messages.
        self.origin = uuid.uuid4().hex
        #: Whether messages go through Redis right now (False during an outage).
        self.whole = False
        #: Messages from the channel dropped as malformed or too long.
        self.malformed = 0
        self._local: dict[str, ServerConnection] = {}
        self._outbox: asyncio.Queue[tuple[int, str, str]] = asyncio.Queue(outbox)
        # Taken from the outbox, being published.
        self._in_flight: list[tuple[int, str, str]] = []
        self._numbers = 0
        # The last number delivered from each process, oldest process first.
        self._last: OrderedDict[str, int] = OrderedDict()
        # Numbers of this process's messages relayed locally, not through Redis.
        self._relayed_here: OrderedDict[int, None] = OrderedDict()
        self._broken = asyncio.Event()
        self._changed = asyncio.Event()
        self._publisher: aioredis.Redis | None = None
        self._subscriber: aioredis.Redis | None = None
        self._pubsub: Any = None
        self._tasks: list[asyncio.Task[None]] = []

    def __repr__(self) -> str:
        state = "whole" if self.whole else "local only"
        return (
            f"<RedisRoom {self.channel!r} on {_shown(self.url)}: "
            f"{len(self.connected)} connected here · {state}>"
        )

    # Life cycle

    async def start(self) -> None:
        """Connect to Redis and subscribe to the channel.

        Returns once the subscription is active: from then on, this process
        gets every message published on the channel.

        Raises:
            RedisRoomError: No Redis answers at the URL, or it refused us.
        """
        if self._tasks:
            return
        options = {
            # Set here, not left to redis-py's defaults, which changed in 8.0
            # (no timeout before: a frozen Redis held a publish forever).
            "socket_timeout": SOCKET_TIMEOUT,
            "socket_connect_timeout": SOCKET_TIMEOUT,
            # redis-py's own health check pings only when a command is about
            # to run; the subscription waits for messages, so _listen pings it
            # itself, and a publish on a dead connection is retried anyway.
            "health_check_interval": 0,
        }
        # Publishing retries once on a fresh connection; the message numbers
        # make a command that ran twice harmless.
        self._publisher = aioredis.Redis.from_url(
            self.url,
            retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
            retry_on_error=[RedisConnectionError, RedisTimeoutError],
            **options,
        )
        # The subscription never retries inside redis-py: an outage must
        # reach this class, which says so and resubscribes with its backoff.
        self._subscriber = aioredis.Redis.from_url(
            self.url, retry=Retry(NoBackoff(), 0), **options
        )
        try:
            pubsub, count = await self._subscribe()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._disconnect()
            raise RedisRoomError(
                f"cannot reach redis at {_shown(self.url)}: {_reason(exc)}; "
                "start redis-server there, or correct the URL"
            ) from exc
        self._pubsub = pubsub
        self._set_whole(True)
        self.say(
            f"room {self.channel!r} through redis at {_shown(self.url)}: "
            f"{count} {'process' if count == 1 else 'processes'} subscribed"
        )
        self._tasks = [
            asyncio.create_task(self._supervise("subscriber", self._stay_subscribed)),
            asyncio.create_task(self._supervise("publisher", self._publish_forever)),
        ]

    async def close(self) -> None:
        """Unsubscribe and disconnect from Redis; messages not yet published are dropped."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._set_whole(False)
        # Not published now, and never later: a restarted room starts afresh.
        self._outbox = asyncio.Queue(self._outbox.maxsize)
        self._in_flight = []
        await self._disconnect()

    async def _disconnect(self) -> None:
        for client in (self._publisher, self._subscriber):
            if client is not None:
                await client.aclose()
        self._publisher = self._subscriber = None

    async def __aenter__(self) -> RedisRoom:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def wait_until(self, *, whole: bool, timeout: float = 10) -> None:
        """Wait until :attr:`whole` is ``whole``: the room is whole, or split.

        Raises:
            TimeoutError: It didn't happen within ``timeout`` seconds.
        """
        async with asyncio.timeout(timeout):
            while self.whole is not whole:
                await self._changed.wait()

    def _set_whole(self, whole: bool) -> None:
        self.whole = whole
        self._changed.set()
        self._changed = asyncio.Event()

    async def _supervise(self, name: str, run: Callable[[], Awaitable[None]]) -> None:
        """Run one of the room's loops; if a bug ends it, log that and run it again."""
        while True:
            try:
                await run()
            except Exception:
                # A bug, not an outage (those are handled inside the loops):
                # the room must not go mute because of it.
                logger.exception("the redis room's %s failed; restarting it", name)
                self._lost(RedisError("an internal error; see the log"))
                self._broken.set()
                await asyncio.sleep(self.backoff[0])

    # Clients of this process

    async def handler(self, websocket: ServerConnection) -> None:
        """Serve one client of this process for as long as it stays connected."""
        self._local[websocket.id.hex] = websocket
        try:
            await super().handler(websocket)
        finally:
            # Runs whenever a client leaves (test_pubsub polls for it), but
            # Python 3.11 reports no line events in a coroutine resumed after
            # an exception thrown into the one it awaits: coverage can't see it.
            self._local.pop(websocket.id.hex, None)  # pragma: no cover - see above

    def relay(self, sender: ServerConnection, message: str) -> None:
        """Queue ``message`` for publishing; it reaches the clients on its way back."""
        self._numbers += 1
        item = (self._numbers, sender.id.hex, message)
        try:
            self._outbox.put_nowait(item)
        except asyncio.QueueFull:
            # Redis can't keep up: an outage. What waits goes out locally, in
            # order: what is being published first, then the outbox, then this.
            waiting = self._outbox.maxsize
            self._lost(
                RedisError(f"too slow: {waiting} messages waited to be published")
            )
            self._broken.set()
            self._relay_here(self._in_flight)
            while not self._outbox.empty():
                self._relay_here([self._outbox.get_nowait()])
            self._relay_here([item])

    def _relay_here(self, batch: list[tuple[int, str, str]]) -> None:
        """Relay messages of this process's clients to its own clients only, once."""
        for number, sender, message in batch:
            if number in self._relayed_here:
                continue
            self._relayed_here[number] = None
            if len(self._relayed_here) > RELAYED_HERE:
                self._relayed_here.popitem(last=False)
            super().relay(self._local.get(sender), message)  # type: ignore[arg-type]

    # Publishing

    async def _publish_forever(self) -> None:
        """Publish queued messages in order; deliver them locally while Redis is away."""
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            self._in_flight = batch
            try:
                published = await self._publish_while_whole(batch)
            except Exception:
                self._relay_here(batch)  # Lose nothing to a bug.
                raise
            finally:
                self._in_flight = []
            if not published:
                self._relay_here(batch)

    async def _publish_while_whole(self, batch: list[tuple[int, str, str]]) -> bool:
        """Publish ``batch``; on a broken connection, try again while the room is whole.

        Returns False once the room is split (then the batch goes out locally).
        A broken publishing connection alone is no outage: the subscription
        says whether Redis is away (it breaks, or its ping goes unanswered),
        and until it does, the batch is published again, with backoff, for at
        most ``HEALTH_CHECK_INTERVAL + SOCKET_TIMEOUT`` seconds, the time the
        subscription takes to notice. A retried batch that Redis had run
        already is harmless: each number is delivered once. Redis refusing a
        command is an outage at once.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + HEALTH_CHECK_INTERVAL + SOCKET_TIMEOUT
        delay = self.backoff[0]
        while self.whole:
            try:
                await self._publish(batch)
                return True
            except CONNECTION_LOST as exc:
                if loop.time() + delay > deadline:
                    self._lost(exc)
                    self._broken.set()
                    return False
                logger.info("publishing to redis failed, trying again: %s", exc)
                with contextlib.suppress(TimeoutError):
                    await self.wait_until(whole=False, timeout=delay)
                delay = min(delay * 2, self.backoff[1])
            except RedisError as exc:
                self._lost(exc)
                self._broken.set()
        return False

    async def _publish(self, batch: list[tuple[int, str, str]]) -> None:
        assert self._publisher is not None
        payloads = [
            json.dumps(
                {"process": self.origin, "number": n, "client": sender, "text": text}
            )
            for n, sender, text in batch
        ]
        if len(payloads) == 1:
            await self._publisher.publish(self.channel, payloads[0])
            return
        # One round trip for the lot; Redis runs them in this order.
        async with self._publisher.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel, payload)
            await pipe.execute()

    # Subscribing

    async def _subscribe(self) -> tuple[Any, int]:
        """Subscribe; return the pubsub once Redis confirmed, and the subscriber count."""
        assert self._subscriber is not None and self._publisher is not None
        pubsub = self._subscriber.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            # The subscription is active once Redis confirms it.
            async with asyncio.timeout(SOCKET_TIMEOUT):
                reply = None
                while reply is None or reply["type"] != "subscribe":
                    reply = await pubsub.get_message(timeout=None)
            # The connection that publishes works too.
            await self._publisher.ping()
            ((_, count),) = await self._publisher.pubsub_numsub(self.channel)
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub, int(count)

    async def _stay_subscribed(self) -> None:
        """Deliver what the channel brings; after an outage, resubscribe with backoff."""
        # The subscription start() made, once; afresh after an outage or a bug.
        pubsub, self._pubsub = self._pubsub, None
        first, longest = self.backoff
        delay = first
        while True:
            if pubsub is None:
                try:
                    pubsub, _ = await self._subscribe()
                except (RedisError, OSError, TimeoutError):
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, longest)
                    continue
                delay = first
                self._broken.clear()
                self._set_whole(True)
                self.say(
                    f"redis at {_shown(self.url)} is back: the room is whole again "
                    "for this process's clients"
                )
            listening = asyncio.create_task(self._listen(pubsub))
            broken = asyncio.create_task(self._broken.wait())
            try:
                await asyncio.wait({listening, broken}, return_when="FIRST_COMPLETED")
            finally:
                listening.cancel()
                broken.cancel()
                await asyncio.gather(listening, broken, return_exceptions=True)
                with contextlib.suppress(RedisError, OSError, TimeoutError):
                    await pubsub.aclose()
            if listening.done() and not listening.cancelled():
                exc = listening.exception()
                if exc is not None and not isinstance(
                    exc, RedisError | OSError | TimeoutError
                ):
                    raise exc  # A bug: _supervise logs it and starts afresh.
                self._lost(exc or RedisError("the subscription ended"))
            pubsub = None
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _listen(self, pubsub: Any) -> None:
        """Deliver messages until the subscription breaks; ping it when it is quiet."""
        # Subscribed to one channel, its "subscribe" reply read by _subscribe:
        # from then on Redis sends only messages and pongs on this connection.
        loop = asyncio.get_running_loop()
        heard = loop.time()
        pinged = False
        # One read at a time, waited for in short slices: a slice that ends
        # leaves the read going (a timeout inside get_message would cancel
        # it, and Python 3.11 then stops tracing this coroutine for coverage).
        reading: asyncio.Future[Any] | None = None
        try:
            while True:
                if reading is None:
                    reading = asyncio.ensure_future(pubsub.get_message(timeout=None))
                await asyncio.wait({reading}, timeout=HEALTH_CHECK_INTERVAL / 4)
                now = loop.time()
                if reading.done():
                    reply, reading = reading.result(), None
                    heard, pinged = now, False
                    if reply is not None and reply["type"] == "message":
                        self._deliver(reply["data"])
                elif now - heard > HEALTH_CHECK_INTERVAL + SOCKET_TIMEOUT:
                    raise RedisTimeoutError(
                        f"no answer to a ping within {SOCKET_TIMEOUT:g} seconds"
                    )
                elif now - heard > HEALTH_CHECK_INTERVAL and not pinged:
                    await pubsub.ping()
                    pinged = True
        finally:
            if reading is not None:
                reading.cancel()

    def _deliver(self, data: bytes) -> None:
        """Relay one message from the channel to this process's clients, at most once."""
        parsed = _parse(data)
        if isinstance(parsed, str):
            limit = self.limits.max_message
            if limit is not None and len(data) > limit:
                self.malformed += 1
                return
            super().relay(None, parsed)  # type: ignore[arg-type]
            return
        if parsed is None:
            self.malformed += 1
            logger.info("dropped a malformed message from redis: %.200r", data)
            return
        origin, number, sender, text = parsed
        if number <= self._last.get(origin, 0):
            return  # A retried publish: delivered already.
        self._last[origin] = number
        self._last.move_to_end(origin)
        if len(self._last) > ORIGINS:
            self._last.popitem(last=False)
        if origin != self.origin:
            super().relay(None, text)  # type: ignore[arg-type]
        elif number in self._relayed_here:
            del self._relayed_here[number]  # Relayed here while Redis seemed away.
        else:
            super().relay(self._local.get(sender), text)  # type: ignore[arg-type]

    def _lost(self, exc: BaseException) -> None:
        """Say once that Redis went away; the room goes on locally."""
        if not self.whole:
            return
        self._set_whole(False)
        count = len(self.connected)
        logger.info("redis went away: %s", exc)
        # A lost connection is what "went away" says; anything else (Redis
        # refused a command, it was too slow) is worth its own words.
        why = "" if isinstance(exc, CONNECTION_LOST) else f" ({_reason(exc)})"
        self.say(
            f"redis at {_shown(self.url)} went away{why}: this process "
            f"relays between its own {count} client(s) only; reconnecting"
        )
