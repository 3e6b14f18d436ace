"""Child processes in a group of their own: started, signalled, never left behind.

- :func:`own_group`: the options that start a child in a process group of its
  own, so that Kernel → Interrupt (SIGINT to the kernel's group) doesn't reach
  it, and stopping it reaches its children too.
- :func:`signal_group`: interrupt (Ctrl+C) or kill that group.
- The watchdog: :func:`watch_group` and :func:`watch_folder` (and their
  ``forget_`` pairs).

``atexit`` runs on a normal exit only; a kernel killed by Jupyter (or by the
system, out of memory) leaves its children running. The watchdog is a small
separate Python process that holds the read end of a pipe: this process
writes to it the process groups and folders to clean up, and when this
process dies the pipe closes, and the watchdog kills each group still listed
(SIGKILL) and deletes each folder still listed.

Used by :func:`wsteach.run_script`, the 8.x exercises' processes and
:class:`wsteach.redis_server.RedisServer`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from typing import Any

__all__ = [
    "forget_folder",
    "forget_group",
    "own_group",
    "signal_group",
    "watch_folder",
    "watch_group",
]

WINDOWS = sys.platform == "win32"


def own_group() -> dict[str, Any]:
    """Options for :func:`asyncio.create_subprocess_exec` (or ``Popen``): a group of its own."""
    if WINDOWS:  # pragma: no cover - tested on POSIX only
        return {"creationflags": subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def signal_group(
    process: asyncio.subprocess.Process | subprocess.Popen[bytes], how: str
) -> None:
    """Interrupt (``"interrupt"``, Ctrl+C) or kill (``"kill"``) a child's group.

    The child must have been started with :func:`own_group`. A group that
    already ended is no error.
    """
    try:
        if WINDOWS:  # pragma: no cover - tested on POSIX only
            if how == "interrupt":
                process.send_signal(signal.CTRL_BREAK_EVENT)
            else:
                process.kill()
        else:
            sig = signal.SIGINT if how == "interrupt" else signal.SIGKILL
            os.killpg(process.pid, sig)
    except ProcessLookupError:  # It just ended on its own.
        pass


_WATCHDOG = """
import os, shutil, signal, sys
groups, folders = set(), set()
for line in sys.stdin:
    command, _, what = line.rstrip("\\n").partition(" ")
    if command == "group":
        groups.add(int(what))
    elif command == "spare":
        groups.discard(int(what))
    elif command == "folder":
        folders.add(what)
    elif command == "keep":
        folders.discard(what)
for pid in groups:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass
for folder in folders:
    shutil.rmtree(folder, ignore_errors=True)
"""

_watchdog: subprocess.Popen[bytes] | None = None


def _tell(command: str, what: object) -> None:
    global _watchdog
    if WINDOWS:  # pragma: no cover - no process groups to kill; atexit only
        return
    if _watchdog is None or _watchdog.poll() is not None:
        _watchdog = subprocess.Popen(
            [sys.executable, "-c", _WATCHDOG],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    assert _watchdog.stdin is not None
    try:
        _watchdog.stdin.write(f"{command} {what}\n".encode())
        _watchdog.stdin.flush()
    except OSError:  # pragma: no cover - the watchdog died; atexit still works
        pass


def watch_group(pid: int) -> None:
    """Kill process group ``pid`` (a child started in a session of its own) if we die."""
    _tell("group", pid)


def forget_group(pid: int) -> None:
    """The group ``pid`` ended (or was stopped): no longer kill it."""
    _tell("spare", pid)


def watch_folder(path: str | os.PathLike[str]) -> None:
    """Delete the folder ``path`` if we die before :func:`forget_folder`."""
    _tell("folder", os.fspath(path))


def forget_folder(path: str | os.PathLike[str]) -> None:
    """The folder ``path`` was deleted (or is kept on purpose): leave it."""
    _tell("keep", os.fspath(path))
