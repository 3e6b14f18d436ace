#!/usr/bin/env python
"""The class board under a class: from a student's report to the board page, and the server's CPU.

A real ``wsteach serve class`` process, and in this process N light students
(plain websockets clients on ``/class``, as :mod:`wsteach.join` speaks) and
one board page (the feed at ``/board``). Each student reports one step of S
every second, starting at a random moment of the first second. Each report
is a failure whose cause is its sequence number, so the page knows which
report an update carries: its latency is from just before the student's
``send`` to the moment the page has decoded the update.

The server's CPU time comes from the child process itself
(``/proc/PID/stat`` through psutil), over the measured seconds only. On a
2-core machine the students, the page and the server share the cores: the
latency includes this process's own scheduling. Run it from the
repository root::

    python benchmarks/class_board.py                      # 200 students x 40 steps, 30 s
    python benchmarks/class_board.py --students 50 --seconds 10
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import psutil
from websockets.asyncio.client import ClientConnection, connect

HOST = "127.0.0.1"


async def start_server(students: int) -> tuple[asyncio.subprocess.Process, int, str]:
    """Start ``wsteach serve class`` on a free port; return it, its port and token."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "wsteach",
        "serve",
        "class",
        "--port",
        "0",
        "--max-clients",
        str(students + 10),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    port, token = 0, ""
    while not token:
        line = (await process.stdout.readline()).decode()
        if not line:
            raise RuntimeError("wsteach serve class exited before it listened")
        if match := re.search(r"listening on ws://\S+:(\d+)", line):
            port = int(match.group(1))
        if match := re.search(r"token=(\S+)", line):
            token = match.group(1)
    # Nobody reads the connect lines: drain them so the server never blocks.
    asyncio.get_running_loop().create_task(_drain(process))
    return process, port, token


async def _drain(process: asyncio.subprocess.Process) -> None:
    assert process.stdout is not None
    while await process.stdout.read(65536):
        pass


class Run:
    """The students' send times and the page's latencies."""

    def __init__(self) -> None:
        self.sent: dict[str, float] = {}  # cause -> time.perf_counter() at send
        self.latencies: list[float] = []
        self.measuring = False
        self.reports = 0


async def student(
    url: str, name: str, steps: int, run: Run, stop: asyncio.Event
) -> None:
    async with connect(url, max_size=2**16) as websocket:
        await websocket.send(json.dumps({"type": "join", "name": name}))
        await asyncio.sleep(random.random())
        seq = 0
        next_at = time.perf_counter()
        while not stop.is_set():
            seq += 1
            cause = f"{name}#{seq}"
            index = seq % steps
            step = f"{index // 10 + 1}.{index % 10 + 1}"
            run.sent[cause] = time.perf_counter()
            await websocket.send(
                json.dumps(
                    {"type": "result", "step": step, "result": "failed", "cause": cause}
                )
            )
            run.reports += run.measuring
            next_at += 1.0
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))


async def page(websocket: ClientConnection, run: Run) -> None:
    async for message in websocket:
        update = json.loads(message)
        now = time.perf_counter()
        for row in update["students"]:
            for cell in row["cells"].values():
                sent = run.sent.pop(cell["cause"], None)
                if sent is not None and run.measuring:
                    run.latencies.append(now - sent)


async def bench(
    students: int, steps: int, seconds: float, warmup: float
) -> dict[str, Any]:
    process, port, token = await start_server(students)
    server = psutil.Process(process.pid)
    run, stop = Run(), asyncio.Event()
    try:
        async with connect(
            f"ws://{HOST}:{port}/board?token={token}", max_size=None
        ) as feed:
            await feed.recv()  # The (empty) board.
            reading = asyncio.create_task(page(feed, run))
            url = f"ws://{HOST}:{port}/class"
            tasks = []
            for i in range(students):
                tasks.append(
                    asyncio.create_task(student(url, f"s{i:03}", steps, run, stop))
                )
                if i % 20 == 19:
                    await asyncio.sleep(0.05)  # Under the open timeout on 2 cores.
            await asyncio.sleep(warmup)
            cpu_before = sum(server.cpu_times()[:2])
            own_before = time.process_time()
            started = time.perf_counter()
            run.measuring = True
            await asyncio.sleep(seconds)
            run.measuring = False
            elapsed = time.perf_counter() - started
            cpu = sum(server.cpu_times()[:2]) - cpu_before
            own = time.process_time() - own_before
            stop.set()
            await asyncio.gather(*tasks)
            reading.cancel()
    finally:
        process.terminate()
        await process.wait()
    latencies = sorted(run.latencies)
    q = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "students": students,
        "steps": steps,
        "seconds": round(elapsed, 1),
        "reports_per_s": round(run.reports / elapsed, 1),
        "seen": len(latencies),
        "p50_ms": round(q[49] * 1000, 1),
        "p99_ms": round(q[98] * 1000, 1),
        "max_ms": round(latencies[-1] * 1000, 1) if latencies else 0.0,
        "server_cpu_percent": round(cpu / elapsed * 100, 1),
        "clients_cpu_percent": round(own / elapsed * 100, 1),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--students", type=int, default=200)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--warmup", type=float, default=5.0)
    args = parser.parse_args(argv)
    load = os.getloadavg()[0]
    print(
        f"class board: {args.students} students x {args.steps} steps, one report "
        f"a second each, {args.seconds:g} s measured; {os.cpu_count()} CPUs, "
        f"load average {load:.2f}",
        flush=True,
    )
    figures = asyncio.run(bench(args.students, args.steps, args.seconds, args.warmup))
    print(
        f"{figures['reports_per_s']} reports/s, {figures['seen']} seen on the board: "
        f"report to board p50 {figures['p50_ms']} ms, p99 {figures['p99_ms']} ms, "
        f"max {figures['max_ms']} ms; server CPU {figures['server_cpu_percent']} % "
        f"of one core (students and page: {figures['clients_cpu_percent']} %); "
        f"load average after {os.getloadavg()[0]:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
