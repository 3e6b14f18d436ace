"""tools/private_network.py: the tests never depend on the lessons' ports being free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, load_tool
from utils import FACTOR

TOOL = ROOT / "tools" / "private_network.py"

# Listens on 127.0.0.1:7890 and [::1]:7890 where it can; a port that another
# program listens on already is just as busy. Then says so in a file and waits.
# SO_REUSEADDR, as servers do: connections on 7890 that earlier tests closed
# (TIME_WAIT) must not keep it from listening.
HOLDER = """
import errno, socket, sys, time
held = []
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, 7890))
        sock.listen()
        held.append(sock)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:
            raise
open(sys.argv[1], "w").write("ready")
time.sleep(600)
"""

# What a notebook test does: listen on 7890, on both loopback addresses.
LISTENS = """
import socket
for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
    sock = socket.socket(family)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 7890))
    sock.listen()
print("listening on 7890")
"""


private_network = load_tool("private_network")


def outside_env(**changes: str) -> dict[str, str]:
    """This environment as if no private network were set up around it yet."""
    env = {**os.environ, **changes}
    env.pop(private_network.INSIDE, None)
    return env


@pytest.fixture
def port_7890_held(tmp_path: Path) -> Iterator[None]:
    """Another process listening on 127.0.0.1:7890 and [::1]:7890."""
    ready = tmp_path / "ready"
    log = (tmp_path / "holder.log").open("wb")
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(ready)], stdout=log, stderr=log
    )
    try:
        deadline = time.monotonic() + 30 * FACTOR
        while not ready.exists():
            assert holder.poll() is None, (tmp_path / "holder.log").read_text()
            assert time.monotonic() < deadline, "the holder did not start"
            time.sleep(0.05)
        assert {host for _, host in private_network.busy_ports([7890])} >= {"127.0.0.1"}
        yield
    finally:
        holder.kill()
        holder.wait()
        log.close()


def test_lesson_ports_are_those_the_notebooks_use(tmp_path):
    """Ports written in the solution notebooks' code count; prose and 7890 as always."""
    solutions = tmp_path / "notebooks" / "solutions"
    solutions.mkdir(parents=True)
    cells = [
        {
            "cell_type": "code",
            "source": ["PORT = 8765\n", "url = 'ws://localhost:7891'"],
        },
        {"cell_type": "markdown", "source": ["open http://localhost:8888/"]},
    ]
    (solutions / "x.ipynb").write_text(json.dumps({"cells": cells}))
    assert private_network.lesson_ports(tmp_path) == [7890, 7891, 8765]
    assert 7890 in private_network.lesson_ports()


def test_held_port_does_not_stop_the_run(tmp_path, port_7890_held):
    """With 7890 held on both loopbacks, the command runs in its own network, or one line stops it."""
    problem = private_network.namespace_problem()
    result = subprocess.run(
        [sys.executable, TOOL, "--", sys.executable, "-c", LISTENS],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(),
    )
    if problem is None:
        assert result.returncode == 0, result.stderr
        assert result.stdout == "listening on 7890\n"
        assert result.stderr.startswith(
            "lesson ports (7890): tests run in a private network namespace"
        )
    else:
        assert result.returncode == 1
        assert result.stdout == ""
        assert result.stderr.startswith("port 7890 is already in use on 127.0.0.1")


def test_without_unshare_a_held_port_gets_one_line_up_front(tmp_path, port_7890_held):
    """Where no namespace is possible (no unshare), a held 7890 stops the run in one line."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = subprocess.run(
        [sys.executable, TOOL, "--", sys.executable, "-c", "print('ran')"],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(PATH=str(empty)),
    )
    assert result.returncode == 1
    assert result.stdout == "", "the command ran"
    (line,) = result.stderr.splitlines()
    assert line.startswith("port 7890 is already in use on 127.0.0.1 and ::1, ")
    assert "the notebook tests start the lessons' servers on it" in line
    assert "(no unshare command)" in line
    assert "Kernel → Shut Down Kernel" in line


def test_exit_status_is_the_commands(tmp_path):
    """The command's exit status comes back through the tool."""
    result = subprocess.run(
        [sys.executable, TOOL, "--quiet", "--", sys.executable, "-c", "exit(3)"],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(),
    )
    assert result.returncode == 3
    assert result.stderr == ""


def test_available_says_whether_make_test_may_run_its_stages_side_by_side(tmp_path):
    """--available runs nothing: 0 where a namespace works here, 1 without unshare."""
    here = subprocess.run(
        [sys.executable, TOOL, "--available"],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(),
    )
    assert here.returncode == (0 if private_network.namespace_problem() is None else 1)
    assert here.stdout == here.stderr == ""
    empty = tmp_path / "empty"
    empty.mkdir()
    without = subprocess.run(
        [sys.executable, TOOL, "--available"],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(PATH=str(empty)),
    )
    assert without.returncode == 1


def test_nameservers_are_read_from_resolv_conf(tmp_path):
    """Each DNS server once, loopback ones (nothing listens there inside) left out."""
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# generated\nnameserver 10.0.0.53\nnameserver 127.0.0.53\n"
        "nameserver fe80::1%eth0\nnameserver 10.0.0.53\nsearch example.org\n"
    )
    assert private_network.nameservers(conf) == ["10.0.0.53", "fe80::1"]
    assert private_network.nameservers(tmp_path / "missing") == []


def test_a_name_lookup_inside_fails_at_once(tmp_path):
    """Inside the private network a lookup fails as offline, not after the resolver's 5 s timeout."""
    lookup = (
        "import socket, time\n"
        "start = time.monotonic()\n"
        "try:\n"
        "    socket.getaddrinfo('name.invalid', 1)\n"
        "except OSError as error:\n"
        "    print(type(error).__name__, round(time.monotonic() - start, 1))\n"
    )
    result = subprocess.run(
        [sys.executable, TOOL, "--quiet", "--", sys.executable, "-c", lookup],
        capture_output=True,
        text=True,
        timeout=60,
        env=outside_env(),
    )
    name, seconds = result.stdout.split()
    assert name == "gaierror", result.stderr
    if private_network.namespace_problem() is None:
        assert float(seconds) < 2, "the lookup waited for a DNS server"
    # Without a namespace the lookup is this machine's own, as fast as its DNS.


def fake_unshare(folder: Path, status: int) -> str:
    """A PATH whose ``unshare`` prints what a refusing one prints and exits ``status``."""
    script = folder / "unshare"
    script.write_text(
        "#!/bin/sh\necho 'unshare: unshare failed: Operation not permitted' >&2\n"
        f"exit {status}\n"
    )
    script.chmod(0o755)
    return f"{folder}{os.pathsep}{os.environ['PATH']}"


def test_the_mapped_root_is_said_when_no_user_comes_back(tmp_path, monkeypatch):
    """Where a nested user namespace is refused, the command stays the mapped root, and a line says so."""
    monkeypatch.setenv("PATH", fake_unshare(tmp_path, 1))
    uid = os.geteuid() + 1  # Someone else: as --map-root-user leaves the command.
    back, problem = private_network.own_user(uid, 1000)
    assert back == []
    assert problem == (
        f"private network: the command runs as root mapped from user {uid}, not as "
        f"user {uid} (unshare --user --map-user={uid} --map-group=1000: unshare: "
        "unshare failed: Operation not permitted); what it writes still belongs "
        "to you outside"
    )


def test_the_own_user_comes_back_where_it_can(tmp_path, monkeypatch):
    """A nested user namespace that works gives the command its user; the same user needs none."""
    monkeypatch.setenv("PATH", fake_unshare(tmp_path, 0))
    uid = os.geteuid()
    back, problem = private_network.own_user(uid + 1, 1000)
    assert (back[:2], problem) == (["unshare", "--user"], None)
    assert private_network.own_user(uid, 1000) == ([], None)
