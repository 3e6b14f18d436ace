#!/usr/bin/env python
"""Benchmark wsteach against plain websockets and print one table (``make bench``).

Every figure is measured in this run. Each wsteach figure has a baseline
written with plain websockets and the same handler; the two are measured
alternately, several rounds, and the table quotes medians. Servers run in
child processes (:class:`harness.ServerProcess`), clients in this one; the
fan-out is :mod:`wsteach.waves`'s, on the servers of :mod:`wsteach.measure`,
with CPU time counted by the harness.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import harness  # benchmarks/harness.py, next to this file
import websockets

from wsteach import measure, waves

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks" / "solutions"

# Heavy modules `import wsteach` must leave alone until they are used.
HEAVY = ("matplotlib", "IPython", "ipykernel", "jupyter", "jupyter_client")


def rotate(items: Sequence[Any], by: int) -> list[Any]:
    """Items in a different order each round, so none is always measured first."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Table:
    """The one table the benchmark prints: a row per figure."""

    HEADER = (
        "figure",
        "wsteach",
        "plain websockets",
        "video loop",
        "ratio",
        "target",
        "met",
    )

    def __init__(self) -> None:
        self.rows: list[tuple[str, ...]] = []

    def add(
        self,
        figure: str,
        wsteach: str,
        plain: str = "—",
        loop: str = "—",
        ratio: str = "—",
        target: str = "—",
        met: bool | None = None,
    ) -> None:
        verdict = "—" if met is None else ("yes" if met else "**no**")
        self.rows.append((figure, wsteach, plain, loop, ratio, target, verdict))
        print("  " + " · ".join(self.rows[-1]), flush=True)

    def markdown(self) -> str:
        lines = [
            "| " + " | ".join(self.HEADER) + " |",
            "|" + "|".join("---" for _ in self.HEADER) + "|",
        ]
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        return "\n".join(lines)


def ms(value: float) -> str:
    return "never" if math.isinf(value) else f"{value:.1f} ms"


# Echo


async def bench_echo(table: Table, rounds: int) -> None:
    kinds = ("echo-plain", "echo-wsteach", "echo-wsteach-trace")
    workloads = {
        "1 client sequential": {"clients": 1, "round_trips": 600},
        "50 clients concurrent": {"clients": 50, "round_trips": 30},
    }
    servers = {kind: harness.ServerProcess(kind) for kind in kinds}
    await asyncio.gather(*(server.start() for server in servers.values()))
    rates: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}  # Server CPU µs per round trip.
    try:
        for workload, options in workloads.items():
            for kind in kinds:  # Warm up: first connections, caches.
                await harness.echo_rate(
                    servers[kind], **(options | {"round_trips": 20})
                )
            for n in range(rounds):
                for kind in rotate(kinds, n):
                    before = await servers[kind].cpu()
                    rate = await harness.echo_rate(servers[kind], **options)
                    spent = await servers[kind].cpu() - before
                    trips = options["clients"] * options["round_trips"]
                    rates.setdefault((workload, kind), []).append(rate)
                    cpus.setdefault((workload, kind), []).append(spent / trips * 1e6)
    finally:
        await asyncio.gather(*(server.stop() for server in servers.values()))

    def paired(
        values: dict[tuple[str, str], list[float]], workload: str, kind: str
    ) -> float:
        # Rounds are paired (same round, back to back): the median of their
        # ratios is steadier than a ratio of medians when the machine is busy.
        ours, plain = values[workload, kind], values[workload, "echo-plain"]
        return median([a / b for a, b in zip(ours, plain, strict=True)])

    for workload in workloads:
        for kind, label, target in (
            ("echo-wsteach", "tracing off", 0.95),
            ("echo-wsteach-trace", "tracing on", None),
        ):
            ratio = paired(rates, workload, kind)
            table.add(
                f"echo round trips/s, {workload}: `start` {label} vs `serve`",
                f"{median(rates[workload, kind]):,.0f}",
                f"{median(rates[workload, 'echo-plain']):,.0f}",
                ratio=f"{ratio:.2f}×",
                target="≥ 0.95×" if target else "report",
                met=None if target is None else ratio >= target,
            )
            table.add(
                f"echo server CPU µs per round trip, {workload}: `start` {label}",
                f"{median(cpus[workload, kind]):.1f}",
                f"{median(cpus[workload, 'echo-plain']):.1f}",
                ratio=f"{paired(cpus, workload, kind):.2f}×",
                target="report",
            )


# Fan-out


async def bench_fanout(
    table: Table,
    rounds: int,
    sizes: dict[int, int],
    stall_sizes: dict[int, int],
    stall_rounds: int,
) -> None:
    kinds = measure.KINDS
    servers = {kind: harness.ServerProcess(kind) for kind in kinds}
    await asyncio.gather(*(server.start() for server in servers.values()))
    runs: dict[Any, list[Any]] = {}
    try:
        for kind in kinds:  # Warm up.
            await harness.run_fanout(
                servers[kind], kind=kind, receivers=10, messages=20
            )
        for receivers, messages in sizes.items():
            for n in range(rounds):
                # The three servers, wave by wave in turn (harness.run_interleaved).
                order = rotate(kinds, n)
                results = await harness.run_interleaved(
                    [(servers[kind], kind, False) for kind in order],
                    receivers=receivers,
                    messages=messages,
                )
                for kind, result in zip(order, results, strict=True):
                    runs.setdefault((kind, receivers, False, 1024), []).append(result)
        # The stalled-reader pairs: a second server of each kind, the two
        # measured wave by wave in alternation (see harness.run_stall_pair).
        seconds = {kind: harness.ServerProcess(kind) for kind in kinds}
        await asyncio.gather(*(server.start() for server in seconds.values()))
        try:
            for receivers in stall_sizes:
                for n in range(stall_rounds):
                    for kind in rotate(kinds, n):
                        # Swap the servers' roles every round.
                        pair = (servers[kind], seconds[kind])
                        reading, stalled = pair if n % 2 == 0 else pair[::-1]
                        results = await harness.run_stall_pair(
                            reading,
                            stalled,
                            kind=kind,
                            receivers=receivers,
                            messages=stall_sizes[receivers],
                            payload=measure.STALL_PAYLOAD,
                        )
                        for result in results:
                            key = (kind, receivers, result.stalled, result.payload)
                            runs.setdefault(key, []).append(result)
                    # The noise floor: the same pair of Rooms, both reading.
                    control = await harness.run_interleaved(
                        [
                            (servers["room"], "room", False),
                            (seconds["room"], "room", False),
                        ],
                        receivers=receivers,
                        messages=stall_sizes[receivers],
                        payload=measure.STALL_PAYLOAD,
                    )
                    runs.setdefault(("control", receivers), []).append(
                        control[1].p99 / control[0].p99
                    )
        finally:
            await asyncio.gather(*(server.stop() for server in seconds.values()))
    finally:
        await asyncio.gather(*(server.stop() for server in servers.values()))

    def figure(
        kind: str, receivers: int, value: Callable[[harness.BenchResult], float]
    ) -> float:
        return median([value(r) for r in runs[kind, receivers, False, 1024]])

    def cpu(r: harness.BenchResult) -> float:
        return r.cpu_per_recipient_us

    for receivers, messages in sizes.items():
        room, plain, loop = (figure(k, receivers, cpu) for k in kinds)
        paired = median(
            [
                cpu(a) / cpu(b)
                for a, b in zip(
                    runs["room", receivers, False, 1024],
                    runs["broadcast", receivers, False, 1024],
                    strict=True,
                )
            ]
        )
        table.add(
            f"fan-out to {receivers} ({messages} msgs of 1 KiB): server CPU µs per recipient",
            f"{room:.1f}",
            f"{plain:.1f}",
            f"{loop:.1f}",
            f"{paired:.2f}×",
            "≤ 1.10×",
            paired <= 1.10,
        )

        def client(r: harness.BenchResult) -> float:
            return r.client_cpu / r.delivered * 1e6

        room, plain, loop = (figure(k, receivers, client) for k in kinds)
        table.add(
            f"fan-out to {receivers}: receiving process CPU µs per delivery",
            f"{room:.1f}",
            f"{plain:.1f}",
            f"{loop:.1f}",
            target="report",
        )
        for name, value in (("p50", lambda r: r.p50), ("p99", lambda r: r.p99)):
            room, plain, loop = (figure(k, receivers, value) for k in kinds)
            ratio = median(
                [
                    value(a) / value(b)
                    for a, b in zip(
                        runs["room", receivers, False, 1024],
                        runs["broadcast", receivers, False, 1024],
                        strict=True,
                    )
                ]
            )
            target, met = "—", None
            if name == "p99" and receivers == 1000:
                target, met = "Room ≤ 50 ms", room <= 50
            table.add(
                f"fan-out to {receivers}: {name} send→receipt",
                ms(room),
                ms(plain),
                ms(loop),
                f"{ratio:.2f}×",
                target,
                met,
            )

    for receivers, messages in stall_sizes.items():
        size = f"{messages} msgs of {measure.STALL_PAYLOAD // 1024} KiB"
        reading = {
            k: median([r.p99 for r in runs[k, receivers, False, measure.STALL_PAYLOAD]])
            for k in kinds
        }
        stalled_runs = {
            k: runs[k, receivers, True, measure.STALL_PAYLOAD] for k in kinds
        }
        stalled = {k: median([r.p99 for r in stalled_runs[k]]) for k in kinds}
        table.add(
            f"{receivers} receivers, all reading ({size}): p99",
            ms(reading["room"]),
            ms(reading["broadcast"]),
            ms(reading["loop"]),
        )
        loop_runs = stalled_runs["loop"]
        delivered = median([r.delivered / r.expected for r in loop_runs])
        stuck = [r.stalled_after for r in loop_runs]
        loop_text = ms(stalled["loop"])
        if any(s is not None for s in stuck):
            after = median(
                [
                    s if s is not None else r.sent
                    for s, r in zip(stuck, loop_runs, strict=True)
                ]
            )
            loop_text += f" (stuck after {after:.0f} msgs; {delivered:.0%} delivered)"

        ratio = paired_ratio(runs, "room", receivers)
        median50 = paired_ratio(runs, "room", receivers, 50)
        plain = paired_ratio(runs, "broadcast", receivers)
        table.add(
            f"{receivers} receivers + 1 that stops reading: p99 of the others",
            ms(stalled["room"]),
            ms(stalled["broadcast"]),
            loop_text,
            f"Room {ratio:.2f}× (p50 {median50:.2f}×), broadcast {plain:.2f}×, "
            "stalled vs all reading; noise floor, two Rooms both reading: "
            f"{median(runs['control', receivers]):.2f}× "
            f"(rounds {min(runs['control', receivers]):.2f}–"
            f"{max(runs['control', receivers]):.2f}×)",
            "Room ≤ 1.2×",
            ratio <= 1.2,
        )


def paired_ratio(
    runs: dict[Any, list[waves.FanoutResult]],
    kind: str,
    receivers: int,
    percentile: float = 99,
) -> float:
    """Median over rounds of stalled / all-reading latency, at ``percentile``.

    The two runs of a round are a pair whose waves alternated.
    """
    reading = runs[kind, receivers, False, measure.STALL_PAYLOAD]
    stalled = runs[kind, receivers, True, measure.STALL_PAYLOAD]
    return median(
        [
            b.percentile(percentile) / a.percentile(percentile)
            for a, b in zip(reading, stalled, strict=True)
        ]
    )


# Memory


async def bench_memory(table: Table, rounds: int, connections: int) -> None:
    per: dict[str, list[float]] = {"room": [], "broadcast": []}
    for n in range(rounds):
        for kind in rotate(list(per), n):
            per[kind].append(await harness.idle_memory(kind, connections=connections))
    room, plain = median(per["room"]), median(per["broadcast"])
    table.add(
        f"memory per idle connection (tracemalloc, {connections} clients)",
        f"{room / 1024:.1f} KiB",
        f"{plain / 1024:.1f} KiB",
        ratio=f"{room / plain:.2f}×",
        target="report",
    )


# Import time and notebooks

IMPORT_PROBE = f"""
import json, sys, time
started = time.perf_counter()
import wsteach
elapsed = time.perf_counter() - started
heavy = sorted(
    name for name in sys.modules
    if name.split(".")[0] in {HEAVY!r} or name.startswith("jupyter")
)
print(json.dumps({{"seconds": elapsed, "heavy": heavy}}))
"""


def bench_import(table: Table, repeats: int) -> None:
    seconds, heavy = [], set()
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", IMPORT_PROBE],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        answer = json.loads(out)
        seconds.append(answer["seconds"])
        heavy.update(answer["heavy"])
    took = median(seconds)
    loaded = ", ".join(sorted({name.split(".")[0] for name in heavy})) or "none"
    table.add(
        f"`import wsteach` in a fresh interpreter (median of {repeats})",
        f"{took:.3f} s; heavy modules loaded: {loaded}",
        target="< 0.3 s, no matplotlib/IPython/jupyter",
        met=took < 0.3 and not heavy,
    )


def bench_notebooks(table: Table) -> None:
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not paths:
        table.add(
            "notebooks: wall time in a fresh kernel",
            f"no notebooks found in {NOTEBOOKS.relative_to(ROOT)}",
        )
        return
    import nbformat
    from nbclient import NotebookClient

    for path in paths:
        notebook = nbformat.read(path, as_version=4)
        client = NotebookClient(
            notebook,
            timeout=120,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        started = time.perf_counter()
        error = ""
        try:
            client.execute()
        except Exception as exc:  # A failing notebook is a figure too.
            error = f" (failed: {type(exc).__name__})"
        took = time.perf_counter() - started
        table.add(
            f"notebook `{path.name}`: wall time in a fresh kernel",
            f"{took:.1f} s{error}",
            target="< 20 s",
            met=took < 20 and not error,
        )


# Machine


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:  # pragma: no cover - not Linux
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024**2:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        pass
    return (
        f"{cpu}, {harness.cpu_count()} cores{memory}; {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}; "
        f"websockets {websockets.__version__}"
    )


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rounds", type=int, default=15, help="echo alternations (default 15)"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 rounds")
    parser.add_argument("--output", type=Path, help="also write the table here")
    parser.add_argument(
        "--skip",
        action="append",
        default=[],
        choices=["echo", "fanout", "memory", "import", "notebooks"],
    )
    args = parser.parse_args(argv)
    harness.raise_fd_limit()
    rounds = 2 if args.quick else args.rounds
    fan_rounds = 2 if args.quick else 5
    stall_rounds = 2 if args.quick else 6
    sizes = {10: 40, 100: 20} if args.quick else {10: 200, 100: 300, 1000: 60}
    # At least 52 messages of 32 KiB fill a stalled client's buffers here;
    # more messages make the p99 of 10 receivers more than one wave's worth.
    stall_sizes = {10: 100} if args.quick else {10: 400, 100: 100}

    started = time.perf_counter()
    load_before = os.getloadavg()[0]
    table = Table()
    print(f"machine: {machine()}", flush=True)
    if "echo" not in args.skip:
        await bench_echo(table, rounds)
    if "fanout" not in args.skip:
        await bench_fanout(table, fan_rounds, sizes, stall_sizes, stall_rounds)
    if "memory" not in args.skip:
        await bench_memory(table, 3, 100 if args.quick else 300)
    if "import" not in args.skip:
        bench_import(table, 7)
    if "notebooks" not in args.skip:
        bench_notebooks(table)
    took = time.perf_counter() - started

    command = (
        "make bench"
        if os.environ.get("MAKELEVEL")
        else " ".join(
            [
                "python",
                "benchmarks/run.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        )
    )
    report = "\n".join(
        [
            f"Run {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC "
            f"with `{command}` in {took:.0f} s.",
            "",
            f"Machine: {machine()}. Load average (1 min) {load_before:.2f} "
            f"before the run, {os.getloadavg()[0]:.2f} after: other work on "
            "the machine competes with the two processes measured.",
            "",
            table.markdown(),
            "",
        ]
    )
    print()
    print(report)
    if args.output:
        args.output.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
