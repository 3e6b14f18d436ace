"""tools/find_redis.py: the redis-server make test uses, found for real, or one line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "find_redis.py"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_prints_the_redis_server_on_path() -> None:
    """With redis-server on PATH, it prints that path and exits 0."""
    done = run("--install")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{shutil.which('redis-server')}\n"
    assert done.stderr == ""


def test_a_wrong_variable_is_one_line_even_with_install() -> None:
    """A WSTEACH_REDIS_SERVER that is no program: one line, status 1, nothing installed."""
    done = run("--install", WSTEACH_REDIS_SERVER="/nonexistent/redis-server")
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == (
        "find_redis: WSTEACH_REDIS_SERVER=/nonexistent/redis-server is not a "
        "program: point it at redis-server, or unset it\n"
    )
