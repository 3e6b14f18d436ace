#!/usr/bin/env python
"""Fan-out through Redis: two RedisRoom processes against one Room, in the same run.

One sender and N receivers, as in ``wsteach.waves`` (through
``harness.BenchGroup``, which adds the CPU time): the sender sends a
message, waits until every receiver has it, then sends the next. Two setups
are measured wave by wave in turn, so a hiccup of the machine hits both:

- ``room``: one ``wsteach.Room`` process, every client on it;
- ``redis``: two ``wsteach.pubsub.RedisRoom`` processes on one private Redis
  (:class:`wsteach.redis_server.RedisServer`), the receivers split between
  them, the sender on the first one. Every message goes to Redis and back
  before any client gets it.

Both run without the classroom rate limit (the sender would be cut off).
Server CPU counts the server processes; for ``redis`` the Redis server's CPU
is shown apart (from ``/proc``, Linux only). The table quotes medians over
the rounds. Run it from the repository root::

    python benchmarks/redis_fanout.py                # 100 and 1000 receivers
    python benchmarks/redis_fanout.py --receivers 50 --rounds 1
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness.py, next to this file

from wsteach import waves
from wsteach.redis_server import RedisServer

HOST = "127.0.0.1"
THIS = str(Path(__file__).resolve())


# A RedisRoom in a child process, driven like harness.ServerProcess


class RedisRoomProcess(harness.ServerProcess):
    """A child process serving a ``RedisRoom`` on ``redis_url``, on a free port."""

    def __init__(self, redis_url: str) -> None:
        super().__init__("redis")
        self.redis_url = redis_url

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            sys.executable,
            THIS,
            "--child",
            self.redis_url,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        port = (await self._answer())["port"]
        self.url = f"ws://{HOST}:{port}"


async def _child(redis_url: str) -> None:  # runs in the child process
    from wsteach import start
    from wsteach.limits import Limits
    from wsteach.pubsub import RedisRoom

    harness.raise_fd_limit()
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), sys.stdin
    )
    room = RedisRoom(redis_url, limits=Limits(rate=None), say=lambda line: None)
    await room.start()
    server = await start(room.handler, host=HOST, port=0, trace=False)

    def say(answer: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()

    say({"port": server.port})
    try:
        while line := (await reader.readline()).decode().strip():
            if line == "cpu":
                say({"cpu": time.process_time()})
            elif line == "connections":
                say({"connections": len(server.connections)})
            else:
                say({line: None})
    finally:
        await server.stop()
        await room.close()


class Pair:
    """Two RedisRoom processes measured as one server: CPU and clients added up."""

    def __init__(self, processes: Sequence[RedisRoomProcess], redis: RedisServer):
        self.processes = list(processes)
        self.redis = redis

    @property
    def urls(self) -> list[str]:
        return [process.url for process in self.processes]

    async def cpu(self) -> float:
        return sum([await process.cpu() for process in self.processes])

    async def connections(self) -> int:
        return sum([await process.connections() for process in self.processes])

    def redis_cpu(self) -> float | None:
        """The Redis server's CPU seconds so far (its main thread), or None off Linux."""
        assert self.redis.process is not None
        try:
            # The first field: nanoseconds on a CPU, finer than /proc/PID/stat's ticks.
            text = Path(f"/proc/{self.redis.process.pid}/schedstat").read_text()
        except OSError:
            return None
        return int(text.split()[0]) / 1e9


class _SpreadGroup(harness.BenchGroup):
    """A fan-out whose receivers are split between the pair's processes.

    Its hooks also read the Redis server's CPU time around the waves.
    """

    server: Pair

    async def open(self) -> None:
        urls = self.server.urls
        receivers = self.result.receivers
        for index, url in enumerate(urls):
            count = receivers // len(urls) + (1 if index < receivers % len(urls) else 0)
            readers = await waves.connect_many(url, count)
            self.clients += readers
            self.tasks += [asyncio.create_task(self._read(c)) for c in readers]
        (self.sender,) = await waves.connect_many(urls[0], 1)
        self.clients.append(self.sender)
        await waves.wait_for_connections(self.server, len(self.clients))

    async def before_waves(self) -> None:
        await super().before_waves()
        self.redis_before = self.server.redis_cpu()

    async def after_waves(self) -> None:
        await super().after_waves()
        after = self.server.redis_cpu()
        self.redis_cpu = (
            None
            if self.redis_before is None or after is None
            else after - self.redis_before
        )


@dataclasses.dataclass
class Round:
    room: harness.BenchResult
    redis: harness.BenchResult
    redis_cpu: float | None  # Redis server CPU seconds during the waves.


async def measure_round(
    room: harness.ServerProcess, pair: Pair, *, receivers: int, messages: int
) -> Round:
    """One round: the same fan-out on both setups, their waves alternating."""
    common = dict(receivers=receivers, messages=messages, stalled=False, payload=1024)
    spread = _SpreadGroup(pair, harness.BenchResult("redis", **common), 5.0)
    one = harness.BenchGroup(room, harness.BenchResult("room", **common), 5.0)
    await harness.run_groups([one, spread])
    return Round(one.result, spread.result, spread.redis_cpu)


def _median(values: Sequence[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def _fmt(value: float | None, unit: str, digits: int = 1) -> str:
    if value is None or math.isnan(value):
        return "—"
    if math.isinf(value):
        return "never"
    return f"{value:.{digits}f} {unit}"


def summarize(receivers: int, rounds: Sequence[Round]) -> dict[str, Any]:
    """Medians over the rounds, for one number of receivers."""
    messages = rounds[0].redis.sent or 1

    def med(attr: str, kind: str) -> float | None:
        return _median([getattr(getattr(r, kind), attr) for r in rounds])

    redis_us = _median(
        [None if r.redis_cpu is None else r.redis_cpu / messages * 1e6 for r in rounds]
    )
    room_p99, redis_p99 = med("p99", "room"), med("p99", "redis")
    return {
        "receivers": receivers,
        "messages": messages,
        "rounds": len(rounds),
        "delivered": all(
            r.room.delivered == r.room.expected
            and r.redis.delivered == r.redis.expected
            for r in rounds
        ),
        "room": {
            "p50_ms": med("p50", "room"),
            "p99_ms": room_p99,
            "cpu_per_recipient_us": med("cpu_per_recipient_us", "room"),
        },
        "redis": {
            "p50_ms": med("p50", "redis"),
            "p99_ms": redis_p99,
            "cpu_per_recipient_us": med("cpu_per_recipient_us", "redis"),
            "redis_server_cpu_per_message_us": redis_us,
        },
        "p99_ratio": (
            redis_p99 / room_p99 if room_p99 and redis_p99 is not None else None
        ),
    }


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| receivers | setup | p50 | p99 | server CPU per recipient "
        "| Redis CPU per message (with its idle timer) | p99 ratio (target ≤ 2) | met |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        room, redis = row["room"], row["redis"]
        ratio = row["p99_ratio"]
        met = "—" if ratio is None else ("yes" if ratio <= 2 else "**no**")
        lines.append(
            f"| {row['receivers']} | one Room process | {_fmt(room['p50_ms'], 'ms')} "
            f"| {_fmt(room['p99_ms'], 'ms')} "
            f"| {_fmt(room['cpu_per_recipient_us'], 'µs')} | — | | |"
        )
        lines.append(
            f"| {row['receivers']} | two RedisRoom processes + Redis "
            f"| {_fmt(redis['p50_ms'], 'ms')} | {_fmt(redis['p99_ms'], 'ms')} "
            f"| {_fmt(redis['cpu_per_recipient_us'], 'µs')} "
            f"| {_fmt(redis['redis_server_cpu_per_message_us'], 'µs')} "
            f"| {_fmt(ratio, '×', 2)} | {met} |"
        )
    return "\n".join(lines)


async def redis_hop(url: str, count: int = 300) -> dict[str, float]:
    """Time PUBLISH to the subscriber's receipt, alone: the hop every message adds."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe("hop")
    await pubsub.get_message(timeout=5)
    times = []
    try:
        for number in range(count):
            started = time.perf_counter()
            await client.publish("hop", str(number))
            while (
                await pubsub.get_message(ignore_subscribe_messages=True, timeout=5)
            ) is None:
                pass
            times.append((time.perf_counter() - started) * 1000)
    finally:
        await pubsub.aclose()
        await client.aclose()
    times.sort()
    return {"p50_ms": times[len(times) // 2], "p99_ms": times[int(len(times) * 0.99)]}


async def run(
    receivers: Sequence[int], messages: int, rounds: int
) -> tuple[list[dict], dict[str, float]]:
    harness.raise_fd_limit()
    rows = []
    with RedisServer() as redis:
        hop = await redis_hop(redis.url)
        processes = [RedisRoomProcess(redis.url) for _ in range(2)]
        async with harness.running("room") as room:
            try:
                for process in processes:
                    await process.start()
                pair = Pair(processes, redis)
                for count in receivers:
                    results = []
                    for number in range(rounds):
                        result = await measure_round(
                            room, pair, receivers=count, messages=messages
                        )
                        print(
                            f"  {count} receivers, round {number + 1}: "
                            f"room p99 {_fmt(result.room.p99, 'ms')}, "
                            f"redis p99 {_fmt(result.redis.p99, 'ms')}",
                            flush=True,
                        )
                        results.append(result)
                    rows.append(summarize(count, results))
            finally:
                for process in processes:
                    await process.stop()
    return rows, hop


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--receivers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--child", metavar="REDIS_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        asyncio.run(_child(args.child))
        return 0
    load = os.getloadavg()[0]
    started = time.perf_counter()
    print(
        f"fan-out through Redis: {args.rounds} rounds of {args.messages} messages, "
        f"{os.cpu_count()} CPUs, load average {load:.2f}",
        flush=True,
    )
    rows, hop = asyncio.run(run(args.receivers, args.messages, args.rounds))
    print(table(rows))
    print(
        f"Redis hop alone (PUBLISH to the subscriber's receipt, one client): "
        f"p50 {hop['p50_ms']:.2f} ms, p99 {hop['p99_ms']:.2f} ms"
    )
    print(
        f"{time.perf_counter() - started:.0f} s; load average "
        f"{load:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    if args.json:
        figures = {"rows": rows, "hop": hop, "load": [load, os.getloadavg()[0]]}
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
    if not all(row["delivered"] for row in rows):
        print("some deliveries never arrived: see the rounds above")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
