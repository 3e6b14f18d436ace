"""benchmarks/redis_fanout.py: a small run, for real, prints its table and figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_small_run_delivers_everything(tmp_path: Path) -> None:
    """Two RedisRoom processes beside one Room: every delivery arrives, figures written."""
    figures = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "redis_fanout.py"),
            *("--receivers", "5", "--rounds", "1", "--messages", "3"),
            *("--json", str(figures)),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "| 5 | two RedisRoom processes + Redis |" in done.stdout
    assert "Redis hop alone" in done.stdout
    (row,) = json.loads(figures.read_text())["rows"]
    assert row["delivered"] is True
    assert row["redis"]["cpu_per_recipient_us"] > 0
    assert row["room"]["p99_ms"] > 0 and row["redis"]["p99_ms"] > 0
