#!/usr/bin/env python3
"""Fuzz `wsteach serve echo` and plain websockets with the Autobahn|Testsuite.

``make autobahn`` runs this: the Autobahn|Testsuite fuzzing client (cases 1-7,
9 and 10: framing, pings, reserved bits, opcodes, fragmentation, UTF-8, close
handling, big messages, auto-fragmentation) against three echo servers on free
ports, each a real process:

- ``wsteach``: ``wsteach serve echo`` as a class gets it, classroom limits on
  (64 kB messages, 10 messages a second): the big-message and many-message
  cases of 9 are meant to end with 1009 or 1008 there;
- ``wsteach-open``: ``wsteach serve echo`` with those limits lifted to what
  the plain server allows (16 MiB messages, no rate limit);
- ``websockets``: websockets' own ``serve`` with an echo handler and the same
  16 MiB ``max_size``.

It prints each server's count per outcome and every case where
``wsteach-open`` did worse than ``websockets``, and exits 1 if there is one.
The HTML reports are in ``.autobahn/reports/``.

The testsuite runs on Python 2.7 only: set ``PYTHON27`` to one, else
``python2.7`` on ``PATH`` is used. It is installed with that Python's pip into
``.autobahn/lib`` the first time. ``make test`` never runs this.

Arguments, if any, replace the cases: ``tools/autobahn.py "1.*" 5.1``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".autobahn"
LIB = WORK / "lib"
CASES = ["1.*", "2.*", "3.*", "4.*", "5.*", "6.*", "7.*", "9.*", "10.*"]
BIG = str(16 * 2**20)
PACKAGE = "autobahntestsuite==25.10.1"
# addsitedir, not PYTHONPATH: zope is a namespace package, made by a .pth file.
RUN = (
    "import site, sys; site.addsitedir(sys.argv.pop(1)); "
    "from autobahntestsuite.wstest import run; run()"
)

# websockets' own echo server, as its documentation writes it.
PLAIN_ECHO = f"""
import asyncio
from websockets.asyncio.server import serve

async def echo(websocket):
    async for message in websocket:
        await websocket.send(message)

async def main():
    async with serve(echo, "127.0.0.1", 0, max_size={BIG}) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"listening on ws://127.0.0.1:{{port}}", flush=True)
        await server.serve_forever()

asyncio.run(main())
"""

SERVERS = {
    "wsteach": ["-m", "wsteach", "serve", "echo", "--host", "127.0.0.1", "--port", "0"],
    "wsteach-open": [
        *("-m", "wsteach", "serve", "echo", "--host", "127.0.0.1", "--port", "0"),
        *("--max-message", BIG, "--rate", "0", "--max-queued", "0"),
    ],
    "websockets": ["-c", PLAIN_ECHO],
}

# Outcomes from best to worst, as the testsuite names them.
RANK = {"OK": 0, "NON-STRICT": 1, "INFORMATIONAL": 1, "UNIMPLEMENTED": 2}


def python27() -> str:
    """Return a working Python 2.7, or exit with a line that says how to get one."""
    candidate = os.environ.get("PYTHON27") or shutil.which("python2.7")
    if candidate:
        try:
            check = subprocess.run(
                [candidate, "-c", "import sys; assert sys.version_info[:2] == (2, 7)"],
                capture_output=True,
            )
        except OSError:  # Not there, or not a program.
            pass
        else:
            if check.returncode == 0:
                return candidate
    sys.exit(
        "autobahn: the Autobahn|Testsuite needs Python 2.7, and none was found: "
        "pass PYTHON27=/path/to/python2.7 (make autobahn PYTHON27=...)"
    )


def install(python: str) -> None:
    """Install the testsuite into .autobahn/lib, once."""
    if (LIB / "autobahntestsuite").is_dir():
        return
    print("autobahn: installing autobahntestsuite for Python 2.7 into .autobahn/lib")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--target", str(LIB), PACKAGE],
        check=True,
    )


def start(name: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start one echo server; return it and its URL, read from its first line."""
    log = WORK / f"{name}.log"
    output = log.open("wb")
    process = subprocess.Popen(
        [sys.executable, *SERVERS[name]],
        stdout=output,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        match = re.search(r"listening on (ws://\S+)", log.read_text(errors="replace"))
        if match:
            return process, match.group(1)
        if process.poll() is not None:
            break
        time.sleep(0.1)
    process.kill()
    sys.exit(f"autobahn: {name} did not start; it printed:\n{log.read_text()}")


def worse(ours: dict[str, str], theirs: dict[str, str]) -> bool:
    """Whether a case's outcome for ours is worse than for theirs."""

    def rank(result: dict[str, str]) -> tuple[int, int]:
        return tuple(
            RANK.get(result.get(key, "FAILED"), 3)
            for key in ("behavior", "behaviorClose")
        )

    return any(a > b for a, b in zip(rank(ours), rank(theirs), strict=True))


def main() -> int:
    python = python27()
    WORK.mkdir(exist_ok=True)
    install(python)
    running = {name: start(name) for name in SERVERS}
    spec = {
        "outdir": str(WORK / "reports"),
        "servers": [{"agent": name, "url": url} for name, (_, url) in running.items()],
        "cases": sys.argv[1:] or CASES,
        "exclude-cases": [],
        "exclude-agent-cases": {},
    }
    spec_file = WORK / "fuzzingclient.json"
    spec_file.write_text(json.dumps(spec, indent=2))
    try:
        subprocess.run(
            [
                python,
                "-c",
                RUN,
                str(LIB),
                "--mode",
                "fuzzingclient",
                "--spec",
                str(spec_file),
            ],
            cwd=WORK,
            stdout=(WORK / "wstest.log").open("wb"),
            stderr=subprocess.STDOUT,
            check=True,
        )
    finally:
        for process, _ in running.values():
            process.terminate()
            process.wait(timeout=10)
    results = json.loads((WORK / "reports" / "index.json").read_text())
    for name in SERVERS:
        counts: dict[str, int] = {}
        for result in results[name].values():
            outcome = f"{result['behavior']}/{result['behaviorClose']}"
            counts[outcome] = counts.get(outcome, 0) + 1
        summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items()))
        print(f"{name:13} {len(results[name])} cases: {summary}")
    bad = [
        case
        for case, result in results["wsteach-open"].items()
        if worse(result, results["websockets"][case])
    ]
    limited = [
        case
        for case, result in results["wsteach"].items()
        if worse(result, results["websockets"][case])
    ]
    print(
        f"wsteach with classroom limits did worse in {len(limited)} cases: {' '.join(limited) or '-'}"
    )
    print(
        f"wsteach-open did worse than websockets in {len(bad)} cases: {' '.join(bad) or 'none'}"
    )
    print(f"reports: {WORK / 'reports' / 'index.html'}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
