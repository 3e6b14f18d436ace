"""Tests for benchmarks/harness.py: child-process servers, CPU time, echo, memory.

Sizes are tiny and nothing here asserts a timing threshold.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import harness

from wsteach import waves


async def test_fanout_in_a_separate_process_reports_server_cpu() -> None:
    """With the server in a child process, its CPU time gives a per-recipient cost."""
    async with harness.running("room") as server:
        result = await harness.run_fanout(server, kind="room", receivers=2, messages=5)
    assert isinstance(result, harness.BenchResult)
    assert result.delivered == result.expected == 10
    assert result.server_cpu > 0
    assert result.client_cpu > 0
    assert result.cpu_per_recipient_us == pytest.approx(result.server_cpu / 10 * 1e6)
    assert "µs per recipient" in str(result)


async def test_stalled_cpu_counts_the_stalled_recipient() -> None:
    """The server writes to the stalled client too: it counts as a recipient."""
    async with (
        harness.running("broadcast") as reading,
        harness.running("broadcast") as slow,
    ):
        _, result = await harness.run_stall_pair(
            reading, slow, kind="broadcast", receivers=2, messages=4, payload=100
        )
    assert result.delivered == 8
    assert result.cpu_per_recipient_us == pytest.approx(
        result.server_cpu / (4 * 3) * 1e6
    )


def test_cpu_per_recipient_of_a_run_that_sent_nothing_is_nan() -> None:
    """With no message sent, the CPU per recipient is nan, not a division error."""
    result = harness.BenchResult(
        "room", receivers=2, messages=5, stalled=False, payload=10
    )
    assert math.isnan(result.cpu_per_recipient_us)


async def test_server_process_that_fails_to_start_is_reported() -> None:
    """A child process that exits at once raises an error naming the server."""
    server = harness.ServerProcess("chat")
    with pytest.raises(RuntimeError, match="chat server process exited with status 1"):
        await server.start()
    await server.stop()  # Nothing left to stop: does nothing.


async def test_server_process_answers_commands() -> None:
    """The child answers cpu and connections, and None to a command it doesn't know."""
    async with harness.running("broadcast") as server:
        assert isinstance(server, harness.ServerProcess)
        assert await server.cpu() > 0
        assert await server.connections() == 0
        assert await server.ask("dance") is None


async def test_echo_rate_against_each_echo_server() -> None:
    """echo_rate counts round trips against plain serve and start, traced or not."""
    for kind in harness.ECHO_KINDS:
        async with harness.running(kind, separate_process=False) as server:
            rate = await harness.echo_rate(server, clients=2, round_trips=5)
            assert rate > 0
            await waves.wait_for_connections(server, 0)


async def test_idle_memory_counts_bytes_per_connection() -> None:
    """Each idle connection costs the server some traced memory."""
    per_connection = await harness.idle_memory("room", connections=10, warmup=2)
    # A connection holds a protocol, buffers and a handler task: kilobytes.
    assert per_connection > 1000


async def test_class_board_benchmark_sees_every_report() -> None:
    """benchmarks/class_board.py at a tiny size: a few students, each report reaches the page."""
    import class_board

    figures = await class_board.bench(students=3, steps=10, seconds=1.5, warmup=0.5)
    assert figures["seen"] > 0
    assert figures["p99_ms"] >= figures["p50_ms"] > 0
    assert figures["server_cpu_percent"] >= 0
