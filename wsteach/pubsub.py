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

**Delivery is at most once.** Redis keeps no copy of a published message: a
process that is not subscribed at that moment never gets it. Messages that were
on their way when Redis went away are lost.

**While Redis is away** each process goes on as a plain ``Room``: its own
clients still hear each other, relayed locally, but not the other processes'.
It says so in one line, reconnects with exponential backoff (0.1 s doubling up
to 5 s, with jitter), and says when the room is whole again. A Redis that
vanishes without closing its connections (a cable pulled between two
machines) is noticed only when TCP gives up, which can take minutes.

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
import uuid
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from websockets.asyncio.server import ServerConnection

from .limits import Limits
from .servers import Room

__all__ = ["DEFAULT_CHANNEL", "RedisRoom", "RedisRoomError", "redis_url"]

logger = logging.getLogger(__name__)

DEFAULT_CHANNEL = "wsteach"
SCHEMES = ("redis", "rediss", "unix")
BATCH = 500  # Messages published in one round trip, at most.


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
        if isinstance(cause, OSError) and cause.errno:
            return os.strerror(cause.errno).lower()
    text = str(exc).strip().rstrip(".") or type(exc).__name__
    return text[:1].lower() + text[1:]


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
        self._local: dict[str, ServerConnection] = {}
        self._outbox: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._broken = asyncio.Event()
        self._changed = asyncio.Event()
        self._client: aioredis.Redis | None = None
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
        # No retries inside redis-py: a failure must reach this class at
        # once, which says so and reconnects with its own backoff.
        self._client = aioredis.Redis.from_url(
            self.url, retry=None, socket_connect_timeout=5
        )
        try:
            pubsub, count = await self._subscribe()
        except (RedisError, OSError, TimeoutError) as exc:
            await self._client.aclose()
            self._client = None
            raise RedisRoomError(
                f"cannot reach redis at {_shown(self.url)}: {_reason(exc)}; "
                "start redis-server there, or correct the URL"
            ) from exc
        self._set_whole(True)
        self.say(
            f"room {self.channel!r} through redis at {_shown(self.url)}: "
            f"{count} {'process' if count == 1 else 'processes'} subscribed"
        )
        self._tasks = [
            asyncio.create_task(self._stay_subscribed(pubsub)),
            asyncio.create_task(self._publish_forever()),
        ]

    async def close(self) -> None:
        """Unsubscribe and disconnect from Redis; messages not yet published are dropped."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        self._set_whole(False)
        if self._client is not None:
            await self._client.aclose()
            self._client = None

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
        self._outbox.put_nowait((sender.id.hex, message))

    # Publishing

    async def _publish_forever(self) -> None:
        """Publish queued messages in order; deliver them locally while Redis is away."""
        while True:
            batch = [await self._outbox.get()]
            while len(batch) < BATCH and not self._outbox.empty():
                batch.append(self._outbox.get_nowait())
            if self.whole:
                try:
                    await self._publish(batch)
                    continue
                except (RedisError, OSError) as exc:
                    self._lost(exc)
                    self._broken.set()
            for sender, message in batch:
                super().relay(self._local.get(sender), message)  # type: ignore[arg-type]

    async def _publish(self, batch: list[tuple[str, str]]) -> None:
        assert self._client is not None
        payloads = [
            json.dumps({"process": self.origin, "client": sender, "text": text})
            for sender, text in batch
        ]
        if len(payloads) == 1:
            await self._client.publish(self.channel, payloads[0])
            return
        # One round trip for the lot; Redis runs them in this order.
        async with self._client.pipeline(transaction=False) as pipe:
            for payload in payloads:
                pipe.publish(self.channel, payload)
            await pipe.execute()

    # Subscribing

    async def _subscribe(self) -> tuple[Any, int]:
        """Subscribe; return the pubsub once Redis confirmed, and the subscriber count."""
        assert self._client is not None
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(self.channel)
            # The subscription is active once Redis confirms it.
            async with asyncio.timeout(5):
                reply = None
                while reply is None or reply["type"] != "subscribe":
                    reply = await pubsub.get_message(timeout=None)
            # The connection that publishes works too (it may be stale after
            # an outage: this replaces it).
            await self._client.ping()
            ((_, count),) = await self._client.pubsub_numsub(self.channel)
        except BaseException:
            await pubsub.aclose()
            raise
        return pubsub, int(count)

    async def _stay_subscribed(self, pubsub: Any) -> None:
        """Deliver what the channel brings; after an outage, resubscribe with backoff."""
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
            if listening.done() and not listening.cancelled():
                exc = listening.exception()
                if exc is not None and not isinstance(exc, RedisError | OSError):
                    # A bug, not an outage: say so, and start afresh.
                    logger.error("relaying from redis failed", exc_info=exc)
                self._lost(exc or RedisError("the subscription ended"))
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            pubsub = None
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _listen(self, pubsub: Any) -> None:
        # Subscribed to one channel, its "subscribe" reply read by _subscribe:
        # from then on Redis sends only messages on this connection.
        async for message in pubsub.listen():
            self._deliver(message["data"])

    def _deliver(self, data: bytes) -> None:
        """Relay one message from the channel to this process's clients."""
        try:
            fields = json.loads(data)
            origin, sender, text = fields["process"], fields["client"], fields["text"]
        except (ValueError, TypeError, KeyError):
            # Published by something else (redis-cli PUBLISH wsteach hello):
            # everyone here gets it as it is.
            origin, sender = None, None
            text = data.decode(errors="replace")
        own = self._local.get(sender) if origin == self.origin else None
        super().relay(own, text)  # type: ignore[arg-type]

    def _lost(self, exc: BaseException) -> None:
        """Say once that Redis went away; the room goes on locally."""
        if not self.whole:
            return
        self._set_whole(False)
        count = len(self.connected)
        logger.info("redis went away: %s", exc)
        # A lost connection is what "went away" says; anything else (Redis
        # refused a command) is worth its own words.
        lost = isinstance(
            exc, RedisConnectionError | RedisTimeoutError | OSError | TimeoutError
        )
        why = "" if lost else f" ({_reason(exc)})"
        self.say(
            f"redis at {_shown(self.url)} went away{why}: this process "
            f"relays between its own {count} client(s) only; reconnecting"
        )
