"""A real Redis for tests: ``redis-server`` on a free port, in a temp folder.

Tests use :func:`running_redis` (through a fixture) to get a private Redis that
writes nothing to disk. Where no ``redis-server`` exists, the test fails with
the one line that says how to get one; it is never skipped.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from wsteach.redis_server import RedisNotFoundError, RedisServer, find_redis_server

__all__ = ["running_redis"]


@contextlib.contextmanager
def running_redis() -> Iterator[RedisServer]:
    """Start a private Redis, yield it, stop it (whatever the test did to it)."""
    try:
        executable = find_redis_server()
    except RedisNotFoundError as exc:
        pytest.fail(str(exc), pytrace=False)
    with RedisServer(executable=executable) as server:
        yield server
