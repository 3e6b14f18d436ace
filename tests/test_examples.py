"""The example scripts run as the video's scripts did: server in one process, client in another."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from conftest import ROOT
from utils import FACTOR

from wsteach.listening import free_port

EXAMPLES = ROOT / "examples"


class Script:
    """An example running in a subprocess, its output read line by line by a thread."""

    def __init__(self, script: str, port: int) -> None:
        env = {**os.environ, "PORT": str(port), "PYTHONUNBUFFERED": "1"}
        self.name = script
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLES / script)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def read_line(self, timeout: float = 10.0) -> str:
        """Return the next line printed, failing clearly if none comes in time."""
        try:
            return self.lines.get(timeout=timeout * FACTOR)
        except queue.Empty:
            raise AssertionError(
                f"{self.name} printed nothing in {timeout} s"
            ) from None

    def stop(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@contextmanager
def run(script: str, port: int) -> Iterator[Script]:
    """Run an example with PORT set; stop it afterwards."""
    running = Script(script, port)
    try:
        yield running
    finally:
        running.stop()


def test_echo_server_and_client():
    """client.py says hello and prints the echo server's Pong."""
    port = free_port()
    with run("server_echo.py", port) as server:
        assert server.read_line() == f"Server listening on port {port}"
        with run("client.py", port) as client:
            assert client.read_line() == "Pong: Hello server"
            assert server.read_line() == "A client just connected"
            assert server.read_line() == "Received message from client: Hello server"
        assert server.read_line() == "A client just disconnected"


def test_broadcast_server_relays_to_others_only():
    """A second client's hello reaches the first, and never comes back to the sender."""
    port = free_port()
    with run("server_echo_broadcast.py", port) as server:
        assert server.read_line() == f"Server listening on port {port}"
        with run("client.py", port) as first:
            assert server.read_line() == "A client just connected (1 online)"
            with run("client.py", port) as second:
                assert server.read_line() == "A client just connected (2 online)"
                assert first.read_line() == "Someone said: Hello server"
                time.sleep(0.2)
                assert second.process.poll() is None
                assert second.lines.empty()  # nothing came back to the sender
            assert server.read_line() == "A client just disconnected (1 online)"


def test_broadcast_server_is_quiet_when_a_client_vanishes():
    """A killed client process ends its handler quietly: no "connection handler failed"."""
    port = free_port()
    with run("server_echo_broadcast.py", port) as server:
        assert server.read_line() == f"Server listening on port {port}"
        with run("client.py", port):
            assert server.read_line() == "A client just connected (1 online)"
        # Leaving the block kills the client: no closing handshake. Had the
        # handler let ConnectionClosedError escape, websockets would log its
        # traceback right after this line.
        assert server.read_line() == "A client just disconnected (0 online)"
        with run("client.py", port):
            assert server.read_line() == "A client just connected (1 online)"
