"""wsteach.run_script: students' scripts as real processes, from a notebook."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import textwrap
import time
from pathlib import Path

import pytest
from kernel import Kernel as NotebookKernel
from utils import MS

import wsteach
from wsteach import scripts
from wsteach.processes import signal_group
from wsteach.scripts import _Screen

T = 10_000 * MS

SERVER = """
import asyncio
from websockets.asyncio.server import serve

async def echo(websocket):
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)

async def main():
    async with serve(echo, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        print(f"Server listening on port {port}")
        await server.serve_forever()

asyncio.run(main())
"""

CRASH = """
print("starting")
1 / 0
"""

STUBBORN = """
import signal, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
print("you can't stop me", flush=True)
while True:
    time.sleep(1)
"""

ASKER = """
while True:
    message = input("Enter message: ")
    if message == "quit":
        break
    print("You said: " + message)
print("bye")
"""

SLEEPER = """
import os, time
print(f"pid {os.getpid()}", flush=True)
while True:
    time.sleep(1)
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A notebook folder holding the test scripts, as the working directory."""
    for name, code in [
        ("server.py", SERVER),
        ("crash.py", CRASH),
        ("stubborn.py", STUBBORN),
        ("asker.py", ASKER),
        ("sleeper.py", SLEEPER),
    ]:
        (tmp_path / name).write_text(textwrap.dedent(code))
    monkeypatch.chdir(tmp_path)
    return tmp_path


async def start_server() -> tuple[wsteach.Script, str]:
    server = await wsteach.run_script(
        "server.py", wait_for="listening on port", timeout=T
    )
    port = server.output.split("port ")[1].split()[0]
    return server, f"ws://127.0.0.1:{port}"


async def test_script_serves_and_prints(
    folder: Path, capsys: pytest.CaptureFixture[str]
):
    """A server script runs as a process; its prints show, prefixed, as they happen."""
    server, url = await start_server()
    assert server.running and server.returncode is None
    assert repr(server) == f"script server.py · running (pid {server.pid})"
    async with wsteach.connect(url, name="alice") as alice:
        await alice.send("Hello server")
        assert await alice.recv() == "Pong: Hello server"
    await server.wait_for_output(
        "Received message from client: Hello server", timeout=T
    )
    shown = capsys.readouterr().out
    assert "[server.py] Server listening on port" in shown
    assert "[server.py] A client just connected\n" in shown
    assert "[server.py] Received message from client: Hello server\n" in shown
    await server.stop()


async def test_stop_is_ctrl_c(folder: Path, capsys: pytest.CaptureFixture[str]):
    """stop() sends SIGINT: the script's KeyboardInterrupt traceback is shown and kept."""
    server, _ = await start_server()
    await server.stop()
    assert server.returncode == -signal.SIGINT
    assert not server.running
    assert server.output.rstrip().endswith("KeyboardInterrupt")
    shown = capsys.readouterr().out
    assert "[server.py] KeyboardInterrupt\n" in shown
    assert "[server.py] (after Ctrl+C: ended by signal SIGINT)\n" in shown
    assert repr(server) == "script server.py · ended by signal SIGINT"
    await server.stop()  # A second stop does nothing.


async def test_crash_shows_the_traceback(folder: Path):
    """A crashing script: wait_for raises with its traceback, returncode says 1."""
    with pytest.raises(wsteach.ScriptExited) as caught:
        await wsteach.run_script("crash.py", wait_for="never printed", timeout=T)
    message = str(caught.value)
    assert message.startswith("crash.py ended (exited with code 1) without printing")
    assert "    ZeroDivisionError: division by zero" in message
    assert "    starting" in message


async def test_port_in_use_is_explained(folder: Path):
    """A script that can't bind its port: one short message says what holds it."""
    server, url = await start_server()
    port = int(url.rsplit(":", 1)[1])
    (folder / "bind.py").write_text(
        f"import socket\nsocket.create_server(('127.0.0.1', {port}))\n"
    )
    with pytest.raises(wsteach.ScriptExited) as caught:
        await wsteach.run_script("bind.py", wait_for="listening", timeout=T)
    assert str(caught.value) == (
        f"bind.py ended (exited with code 1) without printing 'listening': port {port} "
        "is already in use by another program\n"
        "fix: stop it (a notebook's: await server.stop(), or await "
        "wsteach.stop_all(), in the notebook that started it), or use another "
        f"port, such as {port + 1}"
    ), "one short message: the traceback already shows under the cell"
    await server.stop()

    ours = await wsteach.start(wsteach.echo, host="127.0.0.1", port=0)
    (folder / "bind.py").write_text(
        f"import socket\nsocket.create_server(('127.0.0.1', {ours.port}))\n"
    )
    with pytest.raises(wsteach.ScriptExited) as caught:
        await wsteach.run_script("bind.py", wait_for="listening", timeout=T)
    assert (
        f"port {ours.port} is already in use by a wsteach server of this notebook\n"
    ) in str(caught.value)
    await ours.stop()

    (folder / "plain.py").write_text(
        "raise OSError(98, 'Address already in use')\n"  # No address in it.
    )
    with pytest.raises(wsteach.ScriptExited) as caught:
        await wsteach.run_script(
            "plain.py", wait_for="listening", timeout=T, quiet=True
        )
    assert str(caught.value).startswith(
        "plain.py ended (exited with code 1) without printing 'listening': its port "
        "is already in use\nfix: stop the server that holds it (a notebook's: await "
        "server.stop(), or await wsteach.stop_all(), in that notebook), or use "
        "another port\nits output:\n"
    ), "quiet: nothing showed under the cell, so the output comes with it"


async def test_port_in_use_by_another_kernel_names_its_notebook(
    folder: Path, monkeypatch: pytest.MonkeyPatch
):
    """A script whose asyncio server finds the port held by another kernel's server: named."""
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    holder = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "import asyncio, wsteach\n"
        "async def main():\n"
        f"    await wsteach.start(wsteach.echo, port={port})\n"
        "    print('up', flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n",
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "JPY_SESSION_NAME": "/class/04-broadcast.ipynb"},
    )
    try:
        assert holder.stdout is not None
        assert await asyncio.wait_for(holder.stdout.readline(), 2 * T) == b"up\n"
        (folder / "serve.py").write_text(
            "import asyncio\n"
            f"asyncio.run(asyncio.start_server(lambda r, w: None, '127.0.0.1', {port}))\n"
        )
        with pytest.raises(wsteach.ScriptExited) as caught:
            await wsteach.run_script("serve.py", wait_for="listening", timeout=T)
        assert str(caught.value).startswith(
            "serve.py ended (exited with code 1) without printing 'listening': "
            f"port {port} is already in use by a wsteach server in another kernel: "
            "04-broadcast.ipynb (pid "
        )
        assert "Traceback" not in str(caught.value)
    finally:
        holder.kill()
        await holder.wait()


async def test_crash_returncode(folder: Path, capsys: pytest.CaptureFixture[str]):
    """Without wait_for, the crash shows under the cell and returncode is 1."""
    script = await wsteach.run_script("crash.py")
    with pytest.raises(wsteach.ScriptExited):
        await script.wait_for_output("anything", timeout=T)
    assert script.returncode == 1
    assert repr(script) == "script crash.py · exited with code 1"
    shown = capsys.readouterr().out
    assert "[crash.py] ZeroDivisionError: division by zero\n" in shown
    assert "[crash.py] (exited with code 1)\n" in shown


async def test_stop_kills_what_ignores_ctrl_c(folder: Path):
    """A script that ignores SIGINT is killed once stop()'s timeout passes."""
    script = await wsteach.run_script(
        "stubborn.py", wait_for="can't stop me", timeout=T
    )
    started = time.monotonic()
    await script.stop(timeout=0.5)
    assert script.returncode == -signal.SIGKILL
    assert time.monotonic() - started < T
    assert repr(script) == "script stubborn.py · ended by signal SIGKILL"


async def test_kill(folder: Path):
    """kill() ends the script at once; its clients see the connection drop (1006)."""
    server, url = await start_server()
    alice = await wsteach.connect(url, name="alice")
    await server.kill()
    assert server.returncode == -signal.SIGKILL
    await alice.wait_closed(T)
    assert alice.close_code == 1006


async def test_send_line_to_input(folder: Path, capsys: pytest.CaptureFixture[str]):
    """send_line answers input(): the prompt and the typed line show like a terminal."""
    asker = await wsteach.run_script("asker.py", wait_for="Enter message: ", timeout=T)
    await asker.send_line("Hello")
    await asker.wait_for_output("You said: Hello", timeout=T)
    await asker.wait_for_output("Enter message: ", timeout=T)
    await asker.send_line("quit")
    await asker.wait_for_output("bye", timeout=T)
    assert await asker.wait(timeout=T) == 0
    await asker.stop()  # Nothing left to stop: returns at once.
    assert asker.returncode == 0
    assert asker.output == "Enter message: \nYou said: Hello\nEnter message: \nbye\n"
    shown = capsys.readouterr().out
    assert "[asker.py] Enter message: Hello\n[asker.py] You said: Hello\n" in shown
    assert "[asker.py] Enter message: quit\n[asker.py] bye\n" in shown
    with pytest.raises(wsteach.ScriptExited, match="can't read input"):
        await asker.send_line("anyone?")


async def test_websockets_cli_talks_to_a_script(
    folder: Path, capsys: pytest.CaptureFixture[str]
):
    """python -m websockets runs with -m, talks to the server script, shows plain lines."""
    server, url = await start_server()
    client = await wsteach.run_script(
        "-m", "websockets", url, wait_for="Connected to", timeout=T
    )
    await client.wait_for_output("> ", timeout=T)  # Its prompt: it reads input now.
    await client.send_line("Hello")
    await client.wait_for_output("< Pong: Hello", timeout=T)
    await server.wait_for_output("Received message from client: Hello", timeout=T)
    await server.stop()
    await client.wait_for_output("Connection closed: 1001", timeout=T)
    assert "\x1b" not in client.output
    shown = capsys.readouterr().out
    assert f"[websockets] Connected to {url}.\n" in shown
    assert "[websockets] > Hello\n" in shown
    assert "[websockets] < Pong: Hello\n" in shown
    assert "[websockets] Connection closed: 1001 (going away).\n" in shown


async def test_rerun_stops_the_old_one(
    folder: Path, capsys: pytest.CaptureFixture[str]
):
    """Starting a script again under the same name stops the earlier process first."""
    first = await wsteach.run_script("sleeper.py", wait_for="pid", timeout=T)
    second = await wsteach.run_script("sleeper.py", wait_for="pid", timeout=T)
    assert first.returncode == -signal.SIGINT
    assert second.running
    assert (
        f"(stopped the earlier sleeper.py, pid {first.pid})" in capsys.readouterr().out
    )
    other = await wsteach.run_script("sleeper.py", name="another", wait_for="pid")
    assert second.running and other.running
    await wsteach.stop_all()
    assert not second.running and not other.running


async def test_rerun_interrupted_while_stopping_the_old_one(folder: Path):
    """A re-run interrupted during the old script's stop leaves it for stop_all to end."""
    first = await wsteach.run_script("stubborn.py", wait_for="can't stop me", timeout=T)
    rerun = asyncio.create_task(wsteach.run_script("stubborn.py"))
    # The old one ignores Ctrl+C, so the re-run waits in its stop: interrupt it.
    deadline = time.monotonic() + T
    while not first._stopping and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    assert not rerun.done()
    rerun.cancel()
    with pytest.raises(asyncio.CancelledError):
        await rerun
    assert first.running
    assert scripts._scripts["stubborn.py"] is first
    await wsteach.stop_all()
    assert first.returncode == -signal.SIGKILL


async def test_wait_for_output_finds_each_occurrence(folder: Path):
    """Each wait_for_output looks after the previous match; a timeout says so."""
    asker = await wsteach.run_script("asker.py", wait_for="Enter message", timeout=T)
    with pytest.raises(
        TimeoutError, match=r"didn't print 'Enter message' within 0\.2 s"
    ):
        await asker.wait_for_output("Enter message", timeout=0.2)
    await asker.send_line("one")
    await asker.wait_for_output("Enter message", timeout=T)
    assert asker.running
    with pytest.raises(TimeoutError, match=r"still runs after 0\.1 s: stop it with"):
        await asker.wait(timeout=0.1)
    await asker.stop()


async def test_bad_arguments(folder: Path):
    """A missing file, no arguments, or -m without a module: clear errors."""
    with pytest.raises(
        FileNotFoundError, match=r"there is no file nope\.py in .*%%writefile"
    ):
        await wsteach.run_script("nope.py")
    with pytest.raises(TypeError, match="run_script needs a script"):
        await wsteach.run_script()
    with pytest.raises(TypeError, match="needs a module name"):
        await wsteach.run_script("-m")


async def test_prefix_and_env(folder: Path, capsys: pytest.CaptureFixture[str]):
    """prefix='' shows bare lines; env reaches the script."""
    (folder / "env.py").write_text("import os\nprint('PORT is', os.environ['PORT'])\n")
    script = await wsteach.run_script("env.py", prefix="", env={"PORT": "1234"})
    await script.wait_for_output("PORT is 1234", timeout=T)
    await asyncio.wait_for(asyncio.shield(script._reader), T)
    assert capsys.readouterr().out == "PORT is 1234\n(exited with code 0)\n"


def test_screen_plain_lines():
    """Lines split across reads come out whole; CRLF counts as one newline."""
    screen = _Screen()
    assert screen.feed("one\ntw") == ["one"]
    assert screen.feed("o\r\nthree") == ["two"]
    assert screen.partial == "three"
    assert screen.close() == ["three"]


def test_screen_websockets_cli():
    """The websockets CLI's print-above-prompt and replace-prompt codes become lines."""
    screen = _Screen()
    assert screen.feed("Connected to ws://x.\n> ") == ["Connected to ws://x."]
    above = "\x1b7\n\x1b[A\x1b[L< Pong: Hello\n\x1b8\x1b[B"
    # Split in the middle of the control sequence, as two reads may do.
    assert screen.feed(above[:9]) == []
    assert screen.feed(above[9:]) == ["< Pong: Hello"]
    assert screen.partial == "> "
    assert screen.feed("\r\x1b[KConnection closed: 1000 (OK).\n") == [
        "Connection closed: 1000 (OK)."
    ]
    assert screen.feed("\x1b[31mred\x1b[0m\n") == ["red"]
    assert screen.feed("50%\r") == []
    assert screen.feed("100%\n") == ["100%"]
    assert screen.close() == []


# In a real kernel -----------------------------------------------------------


class Kernel(NotebookKernel):
    """An IPython kernel started the way Jupyter starts it (``tests/kernel.py``)."""

    async def run(self, code: str) -> dict[str, str]:
        """Run a cell; return the stream text of every cell, by message id, until idle."""
        msg_id = self.client.execute(textwrap.dedent(code))
        streams: dict[str, str] = {}
        async with asyncio.timeout(60):
            while True:
                msg = await self.client.get_iopub_msg()
                parent = msg["parent_header"].get("msg_id", "")
                if msg["msg_type"] == "stream":
                    streams[parent] = streams.get(parent, "") + msg["content"]["text"]
                elif msg["msg_type"] == "error":
                    raise AssertionError("\n".join(msg["content"]["traceback"]))
                elif (
                    msg["msg_type"] == "status"
                    and msg["content"]["execution_state"] == "idle"
                    and parent == msg_id
                ):
                    streams["this cell"] = streams.get(msg_id, "")
                    return streams


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def gone(pid: int) -> bool:
    """Whether the process ends within the test timeout (polled, not slept)."""
    deadline = time.monotonic() + T
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


@pytest.mark.parametrize("now", [False, True], ids=["shutdown", "killed kernel"])
async def test_kernel_end_stops_scripts(folder: Path, now: bool):
    """Scripts end with their kernel, after a shutdown and after a SIGKILL of the kernel."""
    kernel = await Kernel.start(folder)
    try:
        await kernel.run(
            "import wsteach\n"
            "s = await wsteach.run_script('sleeper.py', wait_for='pid')\n"
            "print(s.pid)"
        )
        pid = int((await kernel.run("print(s.pid)"))["this cell"])
        assert alive(pid)
    finally:
        kernel.client.stop_channels()
        await kernel.manager.shutdown_kernel(now=now)
    assert await gone(pid)


async def test_output_shows_under_the_running_cell(folder: Path):
    """In a kernel, a script's lines show under the cell running when they come."""
    kernel = await Kernel.start(folder)
    try:
        first = await kernel.run(
            "import wsteach\n"
            "asker = await wsteach.run_script('asker.py', wait_for='Enter message')"
        )
        assert first["this cell"] == ""  # The prompt's line isn't finished yet.
        second = await kernel.run(
            "await asker.send_line('Hello')\n"
            "await asker.wait_for_output('You said: Hello')\n"
            "print('done')"
        )
        assert second["this cell"] == (
            "[asker.py] Enter message: Hello\n[asker.py] You said: Hello\ndone\n"
        )
        # A cell that doesn't touch the script shows its lines too (they come
        # through stdin written directly, and a poll with a deadline).
        third = await kernel.run(
            "import asyncio, time\n"
            "asker.process.stdin.write(b'Hi\\n')\n"
            "deadline = time.monotonic() + 10\n"
            "while 'You said: Hi' not in asker.output and time.monotonic() < deadline:\n"
            "    await asyncio.sleep(0.01)\n"
            "print('polled')"
        )
        assert third["this cell"] == "[asker.py] Enter message: You said: Hi\npolled\n"
        # A kernel interrupt (SIGINT to the kernel's process group) spares it.
        await kernel.manager.interrupt_kernel()
        fourth = await kernel.run("print(asker.running)\nawait asker.stop()")
        # As in a terminal, Ctrl+C's traceback starts after the waiting prompt.
        assert fourth["this cell"].startswith(
            "True\n[asker.py] Enter message: Traceback"
        )
        assert "[asker.py] KeyboardInterrupt\n" in fourth["this cell"]
    finally:
        kernel.client.stop_channels()
        await kernel.manager.shutdown_kernel(now=True)


async def test_kill_and_signal_after_the_end(folder: Path):
    """kill() on a script that ended does nothing; a signal to a gone process is no error."""
    script = await wsteach.run_script("crash.py")
    assert await script.wait(timeout=T) == 1
    await script.kill()
    assert script.returncode == 1
    signal_group(script.process, "kill")  # Its process group is gone.
    signal_group(script.process, "interrupt")
    assert scripts._ending(None) == "still running"


HOLDER = """
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print(f"child {child.pid}", flush=True)
"""


async def test_exit_kills_only_scripts_still_running(folder: Path):
    """At exit, a running script is killed; one that ended (its output still open) is not signalled."""
    (folder / "holder.py").write_text(HOLDER)
    sleeper = await wsteach.run_script("sleeper.py", wait_for="pid", timeout=T)
    holder = await wsteach.run_script("holder.py", wait_for="child", timeout=T)
    child = int(holder.output.split("child ")[1].split()[0])
    try:
        # The holder's process ended, but its child keeps the output open.
        async with asyncio.timeout(T):
            for _ in iter(lambda: holder.process.returncode is None, False):
                await asyncio.sleep(0.01)
        assert holder.process.returncode == 0
        assert scripts._scripts.get("holder.py") is holder
        scripts._kill_at_exit()
        assert await sleeper.wait(timeout=T) == -signal.SIGKILL
        assert alive(child)
    finally:
        os.kill(child, signal.SIGKILL)
    await holder.wait(timeout=T)
    assert not holder.running


def test_ending_names_a_signal_python_does_not_know():
    """A script ended by a signal without a name says its number."""
    assert scripts._ending(-signal.SIGKILL) == "ended by signal SIGKILL"
    assert scripts._ending(-100) == "ended by signal 100"
