"""wsteach.nesting: nest-asyncio2 applied in a running loop, then undone."""

from __future__ import annotations

import asyncio
import sys

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


def test_save_for_a_given_loop_restores_its_class():
    """save_asyncio(loop) records that loop's class, and restore() unpatches it."""
    loop = asyncio.new_event_loop()
    try:
        saved = save_asyncio(loop)
        nest_asyncio2.apply(loop)
        try:
            assert hasattr(type(loop), "_nest_patched")
        finally:
            saved.restore()
        assert not hasattr(type(loop), "_nest_patched")
        assert not hasattr(asyncio, "_nest_patched")
        assert loop.run_until_complete(_answer()) == 42
    finally:
        loop.close()


async def test_restore_puts_tornado_futures_back():
    """With tornado imported, restore() puts back tornado.concurrent's Future and FUTURES."""
    import tornado.concurrent as concurrent

    future, futures = concurrent.Future, concurrent.FUTURES
    saved = save_asyncio()
    nest_asyncio2.apply()
    try:
        # The pure-Python Future nest-asyncio2 puts in place of asyncio's C one.
        assert concurrent.Future is asyncio.Future is not future
        assert asyncio.Future in concurrent.FUTURES
    finally:
        saved.restore()
    assert (concurrent.Future, concurrent.FUTURES) == (future, futures)


async def test_save_without_tornado_leaves_it_unimported(monkeypatch):
    """In a kernel without tornado, save and restore work and don't import tornado."""
    for name in [name for name in sys.modules if name.split(".")[0] == "tornado"]:
        monkeypatch.delitem(sys.modules, name)
    saved = save_asyncio()
    nest_asyncio2.apply()
    saved.restore()
    assert "tornado.concurrent" not in sys.modules
    assert not hasattr(asyncio, "_nest_patched")
    assert await _answer() == 42
