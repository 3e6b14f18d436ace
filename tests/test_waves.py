"""Tests for wsteach.waves: the fan-out, wave by wave, and what its result counts.

The servers measured are wsteach.measure's (``serving``); this module itself
knows none. Sizes are tiny and nothing here asserts a timing threshold.
"""

from __future__ import annotations

import math

import pytest

from wsteach import measure, waves

# Enough data to fill a stalled client's buffers several times over (about
# 1.6 MB fills them on loopback here), in few messages.
STALL = {"messages": 150, "payload": 64 * 1024}


async def test_stalled_reader_stops_the_video_loop() -> None:
    """One client that stops reading stops the loop's deliveries to everyone."""
    async with measure.serving("loop") as server:
        (result,) = await waves.run_interleaved(
            [(server, "loop", True)], receivers=2, **STALL
        )
        # The run ended cleanly: the server has no clients left.
        assert await server.connections() == 0
    assert result.stalled_after is not None
    assert result.stalled_after < STALL["messages"]
    assert result.sent == result.stalled_after + 1
    # Everything before the stuck message arrived, nothing after it did, and
    # the stuck one reached at most the receivers ahead of the stalled client.
    stuck = result.stalled_after
    assert 2 * stuck <= result.delivered < 2 * (stuck + 1)
    assert result.p99 == math.inf
    assert "stuck after" in str(result)
    assert "never" in str(result)


async def test_an_empty_fanout_is_refused() -> None:
    """A fan-out with no receiver or no message is refused with a clear error."""
    async with measure.serving("broadcast") as server:
        for receivers, messages in ((0, 2), (2, 0)):
            with pytest.raises(ValueError, match="at least one receiver"):
                await waves.run_interleaved(
                    [(server, "broadcast", False)],
                    receivers=receivers,
                    messages=messages,
                )


def test_percentiles_count_missing_deliveries_as_never() -> None:
    """p50 and p99 use nearest rank; a missing delivery is infinitely late."""

    def result(latencies: list[float], messages: int) -> waves.FanoutResult:
        return waves.FanoutResult(
            kind="loop",
            receivers=1,
            messages=messages,
            stalled=False,
            payload=10,
            sent=messages,
            latencies=latencies,
        )

    full = result([i / 1000 for i in range(1, 101)], 100)
    assert full.p50 == pytest.approx(50)
    assert full.p99 == pytest.approx(99)
    assert full.percentile(100) == pytest.approx(100)
    one_missing = result([i / 1000 for i in range(1, 100)], 100)
    assert one_missing.p99 == pytest.approx(99)
    assert one_missing.percentile(100) == math.inf
    two_missing = result([i / 1000 for i in range(1, 99)], 100)
    assert two_missing.p99 == math.inf
    assert math.isnan(result([], 0).p50)
    assert result([], 3).p50 == math.inf


async def test_connecting_to_nothing_raises_and_leaves_nothing_open() -> None:
    """A fan-out whose server is gone raises the connection error, for every client kind."""
    async with measure.serving("broadcast") as server:
        pass  # Stopped: its port refuses connections now.
    with pytest.raises(OSError):
        await waves.connect_many(server.url, 3)
    with pytest.raises(OSError):
        await waves._connect_stalled(server.url)
    with pytest.raises(OSError):
        await waves.run_interleaved(
            [(server, "broadcast", False)], receivers=2, messages=2
        )


async def test_a_failed_run_drops_the_clients_of_every_server() -> None:
    """When one server of a run fails, the clients already open elsewhere are dropped."""
    async with measure.serving("broadcast") as gone:
        pass
    async with measure.serving("broadcast") as server:
        with pytest.raises(OSError):
            await waves.run_interleaved(
                [(server, "broadcast", False), (gone, "broadcast", False)],
                receivers=2,
                messages=2,
            )
        await waves.wait_for_connections(server, 0)


async def test_waiting_for_clients_that_never_come_times_out() -> None:
    """wait_for_connections polls until its deadline, then raises TimeoutError."""
    async with measure.serving("broadcast") as server:
        with pytest.raises(TimeoutError):
            await waves.wait_for_connections(server, 1, timeout=0.05)


async def test_hooks_run_around_the_waves_of_every_group() -> None:
    """A group's hooks run after every group has connected and before anyone leaves."""
    events: list[tuple[str, str]] = []

    class Noted(waves._Group):
        async def open(self) -> None:
            await super().open()
            events.append(("open", self.result.kind))

        async def before_waves(self) -> None:
            events.append(("before", self.result.kind))

        async def wave(self, seq: int) -> None:
            await super().wave(seq)
            events.append(("wave", self.result.kind))

        async def after_waves(self) -> None:
            events.append(("after", self.result.kind))

        async def close(self) -> None:
            events.append(("close", self.result.kind))
            await super().close()

    async with measure.serving("room") as one, measure.serving("broadcast") as two:
        groups = [
            Noted(server, waves.FanoutResult(kind, 2, 2, False, 10), 1.0)
            for server, kind in ((one, "room"), (two, "broadcast"))
        ]
        await waves._interleave(groups)
    assert [step for step, _ in events] == [
        *["open"] * 2,
        *["before"] * 2,
        *["wave"] * 4,
        *["after"] * 2,
        *["close"] * 2,
    ]
    # Message 1 goes out on each server in turn, message 2 starts one further on.
    order = [kind for step, kind in events if step == "wave"]
    assert order == ["room", "broadcast", "broadcast", "room"]
    assert [group.result.delivered for group in groups] == [4, 4]
