"""Which wsteach servers run in the other kernels of this user, on which ports.

Each kernel runs its own Python process, so a server started in one notebook is
invisible to the next one, which then only sees "address already in use". To
say *which* notebook holds a port, every running :func:`wsteach.start` writes a
small record (port, host, process id, notebook) in the Jupyter runtime folder
(:func:`jupyter_core.paths.jupyter_runtime_dir`, or ``$JUPYTER_RUNTIME_DIR``),
the folder where Jupyter keeps its own kernel and server files. The record goes
away when the server stops or its process exits.

A killed kernel (SIGKILL, a crash, a full machine) can't remove its records, so
a record is never trusted blindly: it counts only while its process is alive,
is the same process (its start time matches: process ids are reused) and still
listens on the port. Any other record is stale, and whoever finds it deletes it.

The notebook's path comes from ``$JPY_SESSION_NAME``, which jupyter_server sets
for each kernel it starts for a notebook (ipykernel also copies it to the
notebook's ``__session__`` variable). A kernel started another way, or a plain
script, is named by its process id.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "Record",
    "folder",
    "forget",
    "holder",
    "holds",
    "is_live",
    "others",
    "remember",
]

logger = logging.getLogger(__name__)

PREFIX = "wsteach-server-"

# Records written by this process, removed at exit.
_mine: set[Path] = set()


@dataclass(frozen=True)
class Record:
    """One server, as another process sees it.

    Attributes:
        port: The TCP port it listens on.
        host: The interface it listens on, as given to ``start``.
        url: The address clients connect to.
        name: The handler's name.
        pid: The process (kernel) running it.
        started: When that process started (seconds since the epoch), to tell
            it apart from a later process that got the same pid.
        notebook: The notebook's path, when the kernel knows it.
        kernel: Whether that process is a Jupyter kernel.
    """

    port: int
    host: str
    url: str
    name: str
    pid: int
    started: float
    notebook: str | None
    kernel: bool

    @property
    def where(self) -> str:
        """Where the server runs: ``another kernel: 00-start-here.ipynb (pid 1234)``."""
        if self.notebook:
            return f"another kernel: {Path(self.notebook).name} (pid {self.pid})"
        if self.kernel:
            return f"another kernel (pid {self.pid})"
        return f"another process (pid {self.pid})"

    def __repr__(self) -> str:
        return f"wsteach server '{self.name}' on {self.url} · in {self.where}"


def folder() -> Path:
    """The folder that holds the records: Jupyter's runtime folder."""
    # Imported here: `import wsteach` and the CLI load no jupyter package.
    from jupyter_core.paths import jupyter_runtime_dir

    return Path(jupyter_runtime_dir())


def _this_process() -> tuple[int, float]:
    import psutil

    process = psutil.Process()
    return process.pid, process.create_time()


def _in_kernel() -> bool:
    # Don't import ipykernel for a script: if it isn't loaded, this isn't a kernel.
    app = sys.modules.get("ipykernel.kernelapp")
    return app is not None and app.IPKernelApp.initialized()


def remember(*, port: int, host: str, url: str, name: str) -> Path | None:
    """Record a server of this process; return the record's path.

    Stale records of the same port (a killed kernel's) are deleted on the way.

    Returns :obj:`None`, and logs why, when the runtime folder can't be
    written: the server runs anyway, only other kernels can't name it.
    """
    # This process holds the port now: any other record of it is stale.
    others(port)
    pid, started = _this_process()
    record = Record(
        port=port,
        host=host,
        url=url,
        name=name,
        pid=pid,
        started=started,
        notebook=os.environ.get("JPY_SESSION_NAME") or None,
        kernel=_in_kernel(),
    )
    path = folder() / f"{PREFIX}{pid}-{port}.json"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(asdict(record)), encoding="utf-8")
        # Readers never see half a record: the rename replaces it at once.
        os.replace(partial, path)
    except OSError as exc:
        logger.warning("can't record the server on port %s in %s: %s", port, path, exc)
        return None
    _mine.add(path)
    return path


def forget(path: Path | None) -> None:
    """Remove a record written by :func:`remember`; a missing one is fine."""
    if path is None:
        return
    _mine.discard(path)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


@atexit.register
def _forget_mine() -> None:
    for path in list(_mine):
        with contextlib.suppress(OSError):
            forget(path)


def _read(path: Path) -> Record | None:
    try:
        return Record(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:  # pragma: no cover - removed while we listed it
        return None
    except (OSError, ValueError, TypeError):
        return None  # Unreadable or from another version: not a record.


def is_live(record: Record) -> bool:
    """Whether ``record``'s process is alive, is the same one, and holds the port."""
    import psutil

    try:
        process = psutil.Process(record.pid)
        if abs(process.create_time() - record.started) > 1:
            return False  # The pid now belongs to a later process.
        listening = process.net_connections(kind="inet")
    except psutil.NoSuchProcess:  # Includes zombies: a killed, unreaped kernel.
        return False
    except psutil.AccessDenied:  # pragma: no cover - another user's process
        return True  # Alive and the same process; trust the port, as we can't see.
    return any(
        socket.status == psutil.CONN_LISTEN and socket.laddr.port == record.port
        for socket in listening
    )


def others(port: int | None = None) -> list[Record]:
    """Return the live servers of other processes, by port; delete stale records.

    Args:
        port: Only this port's servers; :obj:`None` for all of them.
    """
    try:
        paths = sorted(folder().glob(f"{PREFIX}*.json"))
    except OSError:  # pragma: no cover - no runtime folder, no records
        return []
    pid = os.getpid()
    found = []
    for path in paths:
        record = _read(path)
        if record is None or record.pid == pid:
            continue
        if port is not None and record.port != port:
            continue
        if is_live(record):
            found.append(record)
        else:
            logger.debug("removing stale record %s", path)
            with contextlib.suppress(OSError):
                path.unlink()
    return sorted(found, key=lambda record: (record.port, record.pid))


def holds(port: int) -> bool:
    """Whether a wsteach server of this process, as recorded, listens on ``port``."""
    return any(path.name.endswith(f"-{port}.json") for path in _mine)


def holder(port: int) -> Record | None:
    """The wsteach server of another process that listens on ``port``, if any."""
    found = others(port)
    return found[0] if found else None
