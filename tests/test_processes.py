"""wsteach.processes: children in a group of their own, signalled as a group, never left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from utils import FACTOR

from wsteach import processes

T = 10 * FACTOR

# A child that starts a grandchild, prints both pids, and waits.
PARENT = (
    "import subprocess, sys, time\n"
    "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
    "print(child.pid, flush=True)\n"
    "time.sleep(60)\n"
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def gone(pid: int) -> bool:
    """Whether process ``pid`` ends within the test timeout (polled)."""
    deadline = time.monotonic() + T
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _family() -> tuple[subprocess.Popen[bytes], int]:
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT], stdout=subprocess.PIPE, **processes.own_group()
    )
    assert parent.stdout is not None
    return parent, int(parent.stdout.readline())


def test_own_group_is_a_new_session_on_posix() -> None:
    """On POSIX, own_group() starts the child in a session (and group) of its own."""
    assert processes.own_group() == {"start_new_session": True}
    parent, grandchild = _family()
    try:
        assert os.getpgid(parent.pid) == parent.pid != os.getpgid(0)
        assert os.getpgid(grandchild) == parent.pid
    finally:
        processes.signal_group(parent, "kill")
        parent.wait()


def test_kill_reaches_the_whole_group() -> None:
    """signal_group(kill) ends the child and its children; again, it's no error."""
    parent, grandchild = _family()
    processes.signal_group(parent, "kill")
    assert parent.wait(T) == -signal.SIGKILL
    assert gone(grandchild)
    processes.signal_group(parent, "kill")  # The group is gone: nothing happens.


def test_interrupt_is_ctrl_c() -> None:
    """signal_group(interrupt) is SIGINT to the group: Python raises KeyboardInterrupt."""
    parent, grandchild = _family()
    processes.signal_group(parent, "interrupt")
    assert parent.wait(T) == -signal.SIGINT  # Python's exit on KeyboardInterrupt.
    assert gone(grandchild)


OWNER = """
import os, signal, subprocess, sys, tempfile
from wsteach import processes

def child():
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        **processes.own_group(),
    )

kept, canary = child(), child()
folder, canary_folder = tempfile.mkdtemp(), tempfile.mkdtemp()
for pid, path in ((kept.pid, folder), (canary.pid, canary_folder)):
    processes.watch_group(pid)
    processes.watch_folder(path)
if sys.argv[1] == "forget":
    processes.forget_group(kept.pid)
    processes.forget_folder(folder)
print(kept.pid, folder, canary.pid, canary_folder, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def until_gone(path: Path) -> bool:
    deadline = time.monotonic() + T
    while path.exists():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.mark.parametrize("forget", [False, True], ids=["watched", "forgotten"])
def test_watchdog_cleans_up_after_a_killed_owner(forget: bool) -> None:
    """When its owner is SIGKILLed, the watchdog kills the watched groups, deletes the watched folders, and spares the forgotten."""
    argv = [sys.executable, "-c", OWNER, "forget" if forget else "watch"]
    owner = subprocess.run(argv, capture_output=True, text=True, timeout=T)
    assert owner.returncode == -signal.SIGKILL, owner.stderr
    pid, folder, canary, canary_folder = owner.stdout.split()
    # The watchdog deletes folders last: once the canary's is gone, it is done.
    assert gone(int(canary)) and until_gone(Path(canary_folder))
    if forget:
        assert alive(int(pid)) and Path(folder).is_dir()
        os.killpg(int(pid), signal.SIGKILL)
        Path(folder).rmdir()
    else:
        assert gone(int(pid)) and not Path(folder).exists()
