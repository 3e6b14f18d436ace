"""wsteach.nesting: nest-asyncio2 applied in a running loop, then undone."""

from __future__ import annotations

import asyncio

import nest_asyncio2
import pytest

from wsteach.nesting import save_asyncio


async def _answer():
    return 42


async def test_restore_undoes_nest_asyncio2():
    """Nested run_until_complete works after apply(), and fails again after restore()."""
    loop = asyncio.get_running_loop()
    original_run = asyncio.run
    saved = save_asyncio()
    nest_asyncio2.apply()
    try:
        assert hasattr(asyncio, "_nest_patched")
        assert loop.run_until_complete(_answer()) == 42
    finally:
        saved.restore()
    assert not hasattr(asyncio, "_nest_patched")
    assert not hasattr(type(loop), "_nest_patched")
    assert asyncio.run is original_run
    coroutine = _answer()
    with pytest.raises(RuntimeError, match="This event loop is already running"):
        loop.run_until_complete(coroutine)
    coroutine.close()
    assert await _answer() == 42


def test_save_without_a_running_loop():
    """Outside a running loop, save_asyncio records the current loop's class."""
    loop = asyncio.new_event_loop()
    try:
        asyncio.set_event_loop(loop)
        saved = save_asyncio()
        saved.restore()  # Nothing was patched: restoring changes nothing.
        assert loop.run_until_complete(_answer()) == 42
    finally:
        asyncio.set_event_loop(None)
        loop.close()
