"""Run a Python script as a real process from a notebook, like in a terminal.

The video runs ``python server_echo.py`` in one terminal and a client in
another. In a notebook, :func:`run_script` does the same and returns at once;
the kernel keeps reading the script's output::

    server = await wsteach.run_script("server_echo.py", wait_for="Server listening")
    client = await wsteach.run_script("-m", "websockets", "ws://127.0.0.1:7890")
    await client.send_line("Hello server")
    await server.stop()                      # like Ctrl+C in its terminal

What the script prints (stdout and stderr, in order) appears line by line under
the cell that is running when it prints, or under the cell run last when none
is running, as a terminal would show it next to what you type. A cell that
ends with ``await script.wait_for_output("...")`` therefore shows (and saves)
the lines up to that text. Each line starts with the script's name in brackets.
Terminal control codes (the cursor moves of ``python -m websockets``) are
turned into plain lines.

Running the same script again (same ``name``) stops the earlier process first,
so re-running a cell never leaves two servers fighting for a port. Scripts
stop when the kernel shuts down. On Linux and macOS they stop even when the
kernel is killed: a small watchdog process ends them when the kernel's end of a
pipe closes. On Windows (untested) a killed kernel leaves them running.

Limits: input is line by line (:meth:`Script.send_line`); there is no
terminal, so programs that need one (``curses``, password prompts) don't work.
A partial line (a prompt such as ``input("Message: ")``) is shown once the
line ends, or when you answer it with :meth:`Script.send_line`. Lines that come
while JupyterLab asks the kernel something else (a Tab completion, say) go with
that request and are not shown; :attr:`Script.output` still has them.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import contextlib
import contextvars
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from . import registry
from .processes import forget_group, own_group, signal_group, watch_group

__all__ = ["Script", "ScriptExited", "run_script", "stop_scripts"]

# Scripts started by this process, by name. Re-running a cell finds them here.
_scripts: dict[str, Script] = {}


class ScriptExited(RuntimeError):
    """The script ended before printing what :func:`run_script` waited for."""


# What ``python -m websockets`` writes around a line it prints above the
# prompt ("< Pong: Hello"), and around the line that replaces the prompt.
_CONTROL = re.compile(
    r"\x1b7\n\x1b\[A\x1b\[L(?P<above>[^\n]*)\n\x1b8\x1b\[B"
    r"|(?P<newline>\r?\n)"
    r"|(?P<erase>\r\x1b\[K|\r(?!$))"
    r"|\x1b\[[0-9;?]*[A-Za-z]|\x1b[78]"
)


class _Screen:
    """Turn a terminal program's output into complete lines.

    Understands what print-and-prompt programs write: newlines, a carriage
    return that starts the line again, and the save-cursor / insert-line
    sequence that puts a line above the prompt. Other control sequences are
    dropped. Text after the last newline stays in :attr:`partial`.
    """

    def __init__(self) -> None:
        self.partial = ""
        self._pending = ""

    def feed(self, text: str) -> list[str]:
        """Add output; return the lines it completed."""
        text = self._pending + text
        self._pending = ""
        # A line printed above the prompt may arrive in two reads: wait for
        # the end of its sequence before reading it.
        start = text.rfind("\x1b7")
        if start != -1 and "\x1b8" not in text[start:] and len(text) - start < 4096:
            text, self._pending = text[:start], text[start:]
        lines = []
        position = 0
        for match in _CONTROL.finditer(text):
            self.partial += text[position : match.start()]
            position = match.end()
            if match["above"] is not None:
                lines.append(match["above"])
            elif match["newline"]:
                lines.append(self.partial)
                self.partial = ""
            elif match["erase"]:
                self.partial = ""
        rest = text[position:]
        # Keep an unfinished control sequence (split across two reads) for
        # the next call; give up on it once it grows past any real sequence.
        cut = rest.find("\x1b")
        if cut == -1 and rest.endswith("\r"):
            cut = len(rest) - 1
        if cut != -1 and len(rest) - cut < 16 and not self._pending:
            self._pending = rest[cut:]
            rest = rest[:cut]
        self.partial += rest.replace("\x1b", "")
        return lines

    def close(self) -> list[str]:
        """End of output: return the last, unfinished line if there is one."""
        lines = self.feed("")
        last = self.partial + self._pending.replace("\x1b", "")
        self.partial = self._pending = ""
        return [*lines, last] if last else lines


class Script:
    """A script started by :func:`run_script`: its output, input and exit.

    Attributes:
        name: Identifies the script for re-runs and labels its output.
        args: The command line after ``python -u``.
        pid: The process id.
        prefix: Written before each line of output shown in the notebook.
    """

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        name: str,
        args: list[str],
        prefix: str,
        quiet: bool = False,
    ) -> None:
        self.process = process
        self.name = name
        self.args = args
        self.pid = process.pid
        self.prefix = prefix
        self.quiet = quiet
        self._screen = _Screen()
        self._lines: list[str] = []
        self._grown = asyncio.Event()
        self._cursor = 0
        self._stopping = ""
        self._reader = asyncio.create_task(self._read(), name=f"output of {name}")

    # State

    @property
    def output(self) -> str:
        """Everything the script printed so far (stdout and stderr, in order)."""
        lines = "".join(line + "\n" for line in self._lines)
        return lines + self._screen.partial

    @property
    def returncode(self) -> int | None:
        """The exit status once it ended (negative: ended by that signal), else None."""
        if self._reader.done():
            return self.process.returncode
        return None

    @property
    def running(self) -> bool:
        """Whether the process is still running."""
        return self.returncode is None

    def __repr__(self) -> str:
        code = self.returncode
        state = f"running (pid {self.pid})" if code is None else _ending(code)
        return f"script {self.name} · {state}"

    # Output

    def _show(self, line: str) -> None:
        """Print one line under the cell that runs now (or ran last)."""
        if not self.quiet:
            _write_under_current_cell(f"{self.prefix}{line}\n")

    async def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        while chunk := await stream.read(65536):
            self._add(self._screen.feed(decoder.decode(chunk)))
        self._add(self._screen.feed(decoder.decode(b"", final=True)))
        self._add(self._screen.close())
        await self.process.wait()
        forget_group(self.pid)
        # Off the registry, unless a successor holds the name already (two
        # re-runs at once): only this script's own entry goes.
        for name in [name for name, script in _scripts.items() if script is self]:
            del _scripts[name]
        ending = _ending(self.process.returncode)
        self._show(f"({self._stopping}{ending})")
        self._grown.set()

    def _add(self, lines: list[str]) -> None:
        for line in lines:
            self._lines.append(line)
            self._show(line)
        self._grown.set()
        self._grown = asyncio.Event()

    async def wait_for_output(self, text: str, *, timeout: float = 10) -> None:
        """Wait until the script prints ``text`` (:attr:`output` holds it all).

        Each call looks only after the previous match, so waiting twice for
        ``"Pong"`` waits for the second one. It returns once the line holding
        ``text`` is shown (up to 0.2 s more for a prompt without a newline).

        Raises:
            ScriptExited: If the script ends without printing ``text``.
            TimeoutError: If ``timeout`` seconds pass first (it keeps running).
        """
        try:
            async with asyncio.timeout(timeout):
                while True:
                    grown = self._grown
                    found = self.output.find(text, self._cursor)
                    if found != -1:
                        self._cursor = found + len(text)
                        await self._line_shown(found)
                        return
                    if self._reader.done():
                        raise ScriptExited(self._ended_without(text))
                    await grown.wait()
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} didn't print {text!r} within {timeout:g} s; "
                f"it is still running; its output so far:\n{_indent(self.output)}"
            ) from None

    def _ended_without(self, text: str) -> str:
        """Why the script ended before printing ``text``, and what to do.

        A port already in use gets one short message that names what holds
        it; the traceback is not repeated when it already shows under the cell.
        """
        ended = (
            f"{self.name} ended ({_ending(self.returncode)}) without printing {text!r}"
        )
        taken = _port_in_use(self.output)
        if taken is None:
            return f"{ended}; its output:\n{_indent(self.output)}"
        # Its output shows under the cell as it comes, unless quiet.
        output = f"\nits output:\n{_indent(self.output)}" if self.quiet else ""
        return f"{ended}: {taken}{output}"

    async def wait(self, *, timeout: float = 10) -> int:
        """Wait until the script ends by itself; return its exit status.

        Raises:
            TimeoutError: If it still runs after ``timeout`` seconds.
        """
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            raise TimeoutError(
                f"{self.name} still runs after {timeout:g} s: "
                "stop it with stop() (Ctrl+C) or kill()"
            ) from None
        assert self.process.returncode is not None
        return self.process.returncode

    async def _line_shown(self, position: int) -> None:
        """Give the line holding ``position`` a moment to end, so it's shown.

        Lines are shown once complete; a print's newline often comes in a
        second read. A prompt, which never ends, is waited for 0.2 s at most.
        """
        while self.running and position >= len(self.output) - len(self._screen.partial):
            grown = self._grown
            try:
                await asyncio.wait_for(grown.wait(), 0.2)
            except TimeoutError:
                return

    # Input

    async def send_line(self, line: str) -> None:
        """Type ``line`` and Enter into the script's input (for ``input()``).

        The line is echoed in the notebook after the prompt, as a terminal
        would show it, but it is not part of :attr:`output`.

        Raises:
            ScriptExited: If the script has already ended.
        """
        stdin = self.process.stdin
        assert stdin is not None
        if not self.running or stdin.is_closing():
            raise ScriptExited(
                f"{self.name} has ended ({_ending(self.returncode)}), "
                "so it can't read input: start it again with run_script"
            )
        prompt = self._screen.partial
        self._screen.partial = ""
        self._lines.append(prompt)
        self._show(prompt + line)
        stdin.write(line.encode() + b"\n")
        with contextlib.suppress(ConnectionError):  # It ended while we wrote.
            await stdin.drain()

    # Ending

    async def stop(self, *, timeout: float = 5) -> None:
        """Interrupt the script like Ctrl+C in its terminal, then wait for it.

        Sends SIGINT to its process group (CTRL_BREAK on Windows); Python turns
        it into KeyboardInterrupt, and what the script prints then (often a
        traceback) is shown. After ``timeout`` seconds it is killed. Calling it
        on a script that ended does nothing.
        """
        if not self.running:
            return
        self._stopping = self._stopping or "after Ctrl+C: "
        signal_group(self.process, "interrupt")
        try:
            await asyncio.wait_for(asyncio.shield(self._reader), timeout)
        except TimeoutError:
            self._stopping = f"still running {timeout:g} s after Ctrl+C, so killed: "
            await self.kill()

    async def kill(self) -> None:
        """End the script at once (SIGKILL), like closing its terminal window.

        A server's clients see their connection drop without a closing
        handshake (close code 1006); a client vanishes from its server.
        """
        if not self.running:
            return
        signal_group(self.process, "kill")
        await asyncio.shield(self._reader)


def _write_under_current_cell(text: str) -> None:
    """Write ``text`` to stdout for the cell that runs now, or ran last.

    ipykernel (7 and later) sends what a task prints to the cell that created
    the task: it looks the cell up in a context variable, which each task
    copies when it is created. In a new, empty context the variable is unset,
    and ipykernel falls back to the cell of its latest request, as it does for
    threads. (tests/test_scripts.py checks this in a real kernel.)
    """
    contextvars.Context().run(_write, text)


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _ending(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"ended by signal {signal.Signals(-code).name}"
        except ValueError:  # A signal Python doesn't name (a real-time one).
            return f"ended by signal {-code}"
    return f"exited with code {code}"


# "…bind on address ('127.0.0.1', 7890): address already in use" (asyncio),
# "[Errno 98] Address already in use" (socket), "[WinError 10048] …".
_IN_USE = re.compile(
    r"address already in use|only one usage of each socket address", re.I
)
_BOUND_PORT = re.compile(r"\(\s*'[^']*',\s*(\d+)")


def _port_in_use(output: str) -> str | None:
    """Say which port is taken and by whom, when the script failed to bind one."""
    line = next((line for line in output.splitlines() if _IN_USE.search(line)), None)
    if line is None:
        return None
    found = _BOUND_PORT.search(line)
    if found is None:
        return (
            "its port is already in use\n"
            "fix: stop the server that holds it (a notebook's: await server.stop(), "
            "or await wsteach.stop_all(), in that notebook), or use another port"
        )
    port = int(found[1])
    other = registry.holder(port)
    if registry.holds(port):
        who = "a wsteach server of this notebook"
    elif other is not None:
        who = f"a wsteach server in {other.where}"
    else:
        who = "another program"
    return (
        f"port {port} is already in use by {who}\n"
        "fix: stop it (a notebook's: await server.stop(), or await "
        "wsteach.stop_all(), in the notebook that started it), or use another "
        f"port, such as {port + 1}"
    )


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in text.splitlines()) or "    (nothing)\n"


async def run_script(
    *args: str,
    name: str | None = None,
    wait_for: str | None = None,
    timeout: float = 10,
    prefix: str | None = None,
    env: dict[str, str] | None = None,
    quiet: bool = False,
) -> Script:
    """Start ``python -u <args>`` as a real process and return its :class:`Script`.

    Args:
        args: A script's path (relative to the notebook's folder) and its
            arguments, or ``"-m"``, a module name and its arguments.
        name: Identifies the script: starting one with a name already running
            stops that one first. Default: the file name or the module name.
            Give two copies of one client different names to run both.
        wait_for: Return only once the output contains this text.
        timeout: Seconds to wait for ``wait_for``.
        prefix: Written before each line of output; default ``"[name] "``,
            ``""`` for none.
        env: Extra environment variables for the script, e.g. ``{"PORT": "0"}``.
        quiet: Show nothing; the output is still kept in :attr:`Script.output`.

    Raises:
        FileNotFoundError: If there's no such script.
        ScriptExited: If it ends before printing ``wait_for``.
        TimeoutError: If ``wait_for`` doesn't appear within ``timeout`` seconds.
    """
    if not args:
        raise TypeError("run_script needs a script: run_script('server_echo.py')")
    if args[0] == "-m":
        if len(args) < 2:
            raise TypeError("run_script('-m', ...) needs a module name after '-m'")
        label = args[1]
    else:
        path = Path(args[0])
        if not path.is_file():  # noqa: ASYNC240 - one stat, before any await
            raise FileNotFoundError(
                f"there is no file {args[0]} in {Path.cwd()}: "
                "write it first (run its %%writefile cell), or check the name"
            )
        label = path.name
    name = label if name is None else name
    # Left in _scripts until it has ended (its reader removes it): a re-run
    # interrupted during this stop leaves it there, for stop_all() to find.
    previous = _scripts.get(name)
    if previous is not None and previous.running:
        previous.quiet = True  # Its last words belong to the old cell.
        await previous.stop()
        print(f"(stopped the earlier {previous.name}, pid {previous.pid})")

    # Its own process group: interrupting the kernel doesn't reach it, and
    # stopping it reaches its children too.
    options = own_group()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-u",
            *args,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONIOENCODING": "utf-8", **(env or {})},
            **options,
        )
    except NotImplementedError:  # pragma: no cover - Windows' selector loop
        raise RuntimeError(
            "this kernel's event loop can't start processes (on Windows, a "
            "selector event loop): open a terminal (File → New → Terminal in "
            f"JupyterLab) and run: python {' '.join(args)}"
        ) from None
    watch_group(process.pid)
    script = Script(
        process,
        name=name,
        args=list(args),
        prefix=f"[{name}] " if prefix is None else prefix,
        quiet=quiet,
    )
    _scripts[name] = script
    if wait_for is not None:
        await script.wait_for_output(wait_for, timeout=timeout)
    return script


async def stop_scripts() -> None:
    """Stop every script that :func:`run_script` started in this process."""
    for script in list(_scripts.values()):
        await script.stop()


# When the kernel ends ----------------------------------------------------
# A SIGKILLed kernel runs no atexit: the watchdog of wsteach.processes ends
# the scripts then.


@atexit.register
def _kill_at_exit() -> None:
    """End every script still running when the kernel exits."""
    for script in list(_scripts.values()):
        if script.process.returncode is None:
            signal_group(script.process, "kill")
