"""Exercises for notebook 08: one room across processes, through Redis.

The student's answer is a script, ``room_redis.py``, that the notebook writes
with ``%%writefile``: the broadcast room of 04, where each process publishes
what its clients send on a Redis channel and a subscriber task delivers what
the channel brings to its own clients. ``check("room_redis.py")`` runs it for
real: a private Redis (:class:`wsteach.redis_server.RedisServer`), two
processes of the script on two free ports (``python room_redis.py PORT
REDIS_URL``), and named clients on both.

- :data:`publish`: ``publish(websocket, message)`` puts the message and its
  sender on the channel as JSON.
- :data:`relay`: ``relay_from_redis(pubsub)`` delivers each message to the
  local clients but its sender; ``start_relay(pubsub)`` runs it as a task.

A function whose body is still ``...`` (the stub of the student notebook) is
"not attempted yet".
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import json
import sys
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..clients import connect
from ..listening import free_ports as _free_ports
from ..processes import forget_group, own_group, signal_group, watch_group
from ..timeouts import TIMEOUT_FACTOR
from ._core import (
    FAILED,
    NOT_ATTEMPTED,
    PASSED,
    Checked,
    Mismatch,
    Result,
    expect,
)
from ._scenarios import next_message

__all__ = ["CHANNEL", "SOLUTION", "ScriptExercise", "Servers", "publish", "relay"]

CHANNEL = "room"
"""The channel ``room_redis.py`` publishes on and subscribes to."""

SOLUTION = '''
"""The broadcast room of 04, shared with other processes through Redis."""

import asyncio
import json
import sys

import redis.asyncio as redis
from websockets.asyncio.server import broadcast, serve

PORT = int(sys.argv[1])
REDIS_URL = sys.argv[2]
CHANNEL = "room"

connected = set()
r = redis.Redis.from_url(REDIS_URL)
# Tasks that run in the background; holding them here keeps them alive.
background = set()


async def publish(websocket, message):
    data = {"sender": str(websocket.id), "text": message}
    await r.publish(CHANNEL, json.dumps(data))


async def relay_from_redis(pubsub):
    async for item in pubsub.listen():
        if item["type"] != "message":
            continue
        data = json.loads(item["data"])
        others = [c for c in connected if str(c.id) != data["sender"]]
        broadcast(others, "Someone said: " + data["text"])


def start_relay(pubsub):
    return asyncio.create_task(relay_from_redis(pubsub))


async def handler(websocket):
    connected.add(websocket)
    try:
        async for message in websocket:
            await publish(websocket, message)
    finally:
        connected.remove(websocket)


async def main():
    pubsub = r.pubsub()
    await pubsub.subscribe(CHANNEL)
    background.add(start_relay(pubsub))
    async with serve(handler, "localhost", PORT) as server:
        print(f"Server listening on ws://localhost:{PORT}")
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        print("Server stopped")
'''.lstrip("\n")
"""The whole ``room_redis.py``, both exercises solved."""


def _part(first: str, stop: str) -> str:
    """The lines of :data:`SOLUTION` from the one starting ``first`` to ``stop``'s.

    Each exercise's solution is its part of the whole script, so the two never
    differ.
    """
    start = SOLUTION.index("\n" + first) + 1
    return SOLUTION[start : SOLUTION.index("\n" + stop, start) + 1]


_START_TIMEOUT = 10 * TIMEOUT_FACTOR
_QUIET = 1.0 * TIMEOUT_FACTOR  # How long "nothing arrives" is waited for.


def _stubs(source: str, names: Sequence[str]) -> tuple[list[str], list[str]]:
    """Return the functions of ``names`` missing from ``source``, and those still ``...``."""
    functions = {
        node.name: node
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    missing = [name for name in names if name not in functions]
    stubs = []
    for name in names:
        node = functions.get(name)
        if node is None:
            continue
        body = [
            statement
            for statement in node.body
            if not (
                isinstance(statement, ast.Expr)
                and isinstance(statement.value, ast.Constant)
            )
        ]
        if not body:
            stubs.append(name)
    return missing, stubs


def _inspect(
    answer: str, names: Sequence[str]
) -> tuple[Path, str, list[str], list[str]]:
    """Read the script: its path, a problem that stops the check, or its missing
    and stub functions."""
    path = Path(answer).absolute()
    if not path.is_file():
        problem = f"there is no file {path.name}: run its %%writefile cell first"
        return path, problem, [], []
    try:
        return path, "", *_stubs(path.read_text(), names)
    except SyntaxError as exc:
        return path, f"{path.name} has a syntax error on line {exc.lineno}", [], []


class _Process:
    """One process of the student's script, its output in a file."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path, port: int):
        self.process = process
        self.log = log
        self.port = port
        self.url = f"ws://127.0.0.1:{port}"

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def last_line(self) -> str:
        lines = self.output.strip().splitlines()
        return lines[-1] if lines else "(nothing)"

    async def wait_listening(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _START_TIMEOUT
        while "listening" not in self.output.lower():
            if self.process.returncode is not None:
                raise _Broken(
                    f"your script exited (code {self.process.returncode}) before "
                    f"printing 'Server listening': {self.last_line()}"
                )
            if loop.time() > deadline:
                raise _Broken(
                    f"your script didn't print 'Server listening' within "
                    f"{_START_TIMEOUT:g} s"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.process.wait()), 0.02)

    async def stop(self) -> None:
        """Kill the script and its children (its process group), then wait."""
        signal_group(self.process, "kill")  # Its children, even if it ended.
        await self.process.wait()
        forget_group(self.process.pid)


class _Broken(Exception):
    """The script can't be checked: it crashed or never started."""


@dataclass
class Servers:
    """What a scenario works with: two running processes and their Redis.

    Attributes:
        urls: The two processes' WebSocket addresses, ``ws://127.0.0.1:PORT``.
        redis_url: The private Redis both use.
        timeout: Seconds a scenario waits for one message.
    """

    urls: list[str]
    redis_url: str
    timeout: float = 2.0 * TIMEOUT_FACTOR


Scenario = Callable[[Servers], Awaitable[None]]


@contextlib.asynccontextmanager
async def _running(
    path: Path, count: int
) -> AsyncIterator[tuple[Servers, list[_Process]]]:
    """A private Redis and ``count`` processes of the script at ``path``."""
    from ..redis_server import RedisServer

    # Redis starts in a thread (astart): the kernel's loop keeps serving.
    async with RedisServer() as redis_server:
        with tempfile.TemporaryDirectory() as folder:
            processes: list[_Process] = []
            try:
                for number, port in enumerate(_free_ports(count)):
                    log = Path(folder) / f"server{number}.log"
                    with log.open("wb") as out:
                        process = await asyncio.create_subprocess_exec(
                            sys.executable,
                            "-u",
                            str(path),
                            str(port),
                            redis_server.url,
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=out,
                            stderr=asyncio.subprocess.STDOUT,
                            cwd=path.parent,
                            # A group of its own, killed as a group; the
                            # watchdog kills it if the kernel dies.
                            **own_group(),
                        )
                    watch_group(process.pid)
                    processes.append(_Process(process, log, port))
                for process in processes:
                    await process.wait_listening()
                yield Servers([p.url for p in processes], redis_server.url), processes
            finally:
                for process in processes:
                    await process.stop()


class ScriptExercise(Checked):
    """An exercise whose answer is a script, run as real processes on a private Redis.

    It has the methods of :class:`~wsteach.exercises.Exercise` (``check``,
    ``hint``, ``solution``); ``check`` takes the script's path.

    Args:
        functions: The functions the student writes in the script; while
            they are all stubs, the exercise is "not attempted yet".
        needs: Functions of earlier exercises that must be written first.
        diagnose: Given a failed scenario's detail, return a sentence that
            names the likely cause, or "".
    """

    def __init__(
        self,
        number: str,
        title: str,
        *,
        functions: Sequence[str],
        needs: Sequence[str] = (),
        scenarios: Sequence[tuple[str, Scenario]],
        hints: Sequence[str],
        solution: str,
        diagnose: Callable[[str], str] = lambda detail: "",
    ) -> None:
        self.number = number
        self.title = title
        self.scenarios = list(scenarios)
        self.hints = list(hints)
        self.code = solution.strip("\n")
        self.functions = list(functions)
        self.needs = list(needs)
        self.diagnose = diagnose

    def __repr__(self) -> str:
        return f"<ScriptExercise {self.number} · {self.title}>"

    async def results(self, answer: Any) -> list[Result]:
        """Run the script ``answer`` (a path) and play every scenario against it."""
        names = [name for name, _ in self.scenarios]

        def every(status: str, detail: str) -> list[Result]:
            return [Result(name, status, detail) for name in names]

        path, problem, missing, stubs = _inspect(
            str(answer), [*self.needs, *self.functions]
        )
        if problem:
            return every(FAILED, problem)
        if missing:
            return every(
                FAILED, f"{path.name} has no function {missing[0]}: keep its name"
            )
        if all(name in stubs for name in self.functions):
            listed = " and ".join(self.functions)
            return every(
                NOT_ATTEMPTED,
                f"write {listed} in the %%writefile cell, run it, then this cell again",
            )
        needed = [name for name in self.needs if name in stubs]
        if needed:
            return every(FAILED, f"write {needed[0]} first (the exercise before)")
        results = []
        try:
            async with _running(path, 2) as (servers, processes):
                for name, scenario in self.scenarios:
                    results.append(
                        await self._play_script(name, scenario, servers, processes)
                    )
        except _Broken as exc:
            return every(FAILED, str(exc))
        return results

    async def _play_script(
        self, name: str, scenario: Scenario, servers: Servers, processes: list[_Process]
    ) -> Result:
        try:
            async with asyncio.timeout(servers.timeout * 10):
                await scenario(servers)
        except Mismatch as exc:
            detail = str(exc)
        except TimeoutError:
            detail = f"gave up after {servers.timeout * 10:g} s"
        except Exception as exc:
            detail = f"{type(exc).__name__}: {exc}".replace("\n", " ")
        else:
            return Result(name, PASSED)
        for process in processes:
            if "Traceback" in process.output:
                detail += f"; your script printed: {process.last_line()}"
                break
        cause = self.diagnose(detail)
        return Result(name, FAILED, f"{detail} — {cause}" if cause else detail)


class _Nothing:
    def __repr__(self) -> str:
        return "nothing"


@contextlib.asynccontextmanager
async def _listening(redis_url: str) -> AsyncIterator[Any]:
    """Subscribe to :data:`CHANNEL` on the side, as ``redis-cli SUBSCRIBE room`` would."""
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        await pubsub.subscribe(CHANNEL)
        await pubsub.get_message(timeout=5)  # Redis confirms the subscription.
        yield pubsub
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _published(pubsub: Any, timeout: float) -> Any:
    """The next message published on the channel, decoded from JSON if it is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (left := deadline - loop.time()) > 0:
        item = await pubsub.get_message(ignore_subscribe_messages=True, timeout=left)
        # These run (a test sees "received nothing"), but once get_message has
        # timed out, CPython 3.11 traces no more lines of this frame.
        if item is not None:  # pragma: no branch - see above (CPython 3.11)
            try:
                return json.loads(item["data"])
            except ValueError:
                return item["data"].decode(errors="replace")
    return _Nothing()  # pragma: no cover - see above: untraced on 3.11


def _fields(message: Any, text: str) -> dict[str, Any]:
    if not isinstance(message, dict) or set(message) != {"sender", "text"}:
        raise Mismatch(
            {"sender": "…", "text": text}, message, "published on the channel"
        )
    expect(message["text"], text, "the text published")
    if not isinstance(message["sender"], str):
        raise Mismatch("str(websocket.id)", message["sender"], "the sender published")
    return message


# 8.1 publish


async def _publishes(servers: Servers) -> None:
    async with (
        _listening(servers.redis_url) as pubsub,
        connect(servers.urls[0], name="alice") as alice,
    ):
        await alice.send("hi")
        _fields(await _published(pubsub, servers.timeout), "hi")


async def _names_the_sender(servers: Servers) -> None:
    async with (
        _listening(servers.redis_url) as pubsub,
        connect(servers.urls[0], name="alice") as alice,
        connect(servers.urls[1], name="bob") as bob,
    ):
        await alice.send("one")
        first = _fields(await _published(pubsub, servers.timeout), "one")
        await bob.send("two")
        second = _fields(await _published(pubsub, servers.timeout), "two")
        await alice.send("three")
        third = _fields(await _published(pubsub, servers.timeout), "three")
        if first["sender"] == second["sender"]:
            raise Mismatch("two senders", first["sender"], "alice and bob published as")
        expect(third["sender"], first["sender"], "alice's second message's sender")


publish = ScriptExercise(
    "8.1",
    "Publish what a client sends",
    functions=["publish"],
    scenarios=[
        (
            'alice sends "hi": {"sender": …, "text": "hi"} is published on "room"',
            _publishes,
        ),
        (
            "alice on one server, bob on the other: each message names its sender",
            _names_the_sender,
        ),
    ],
    hints=[
        "build a dict with the sender's id and the text, turn it into a string with json.dumps, and publish it on CHANNEL",
        'data = {"sender": ___, "text": ___}, the sender as text: str(websocket.___); then await r.publish(CHANNEL, json.___(data))',
    ],
    solution=_part("async def publish", "async def relay_from_redis"),
)


# 8.2 relay


async def _room_across(servers: Servers) -> None:
    a, b = servers.urls
    async with (
        connect(a, name="alice") as alice,
        connect(a, name="carol") as carol,
        connect(b, name="bob") as bob,
    ):
        await alice.send("hi")
        for client in (bob, carol):
            expect(
                await next_message(client, servers.timeout),
                "Someone said: hi",
                f"{client.name} received",
            )
        await bob.send("hello")
        # alice gets bob's message next: her own "hi" never came back to her.
        expect(
            await next_message(alice, servers.timeout),
            "Someone said: hello",
            "alice received",
        )


async def _in_order(servers: Servers) -> None:
    a, b = servers.urls
    async with (
        connect(a, name="alice") as alice,
        connect(b, name="bob") as bob,
        connect(b, name="dave") as dave,
    ):
        for n in range(20):
            await bob.send(f"message {n}")
        for client in (alice, dave):
            for n in range(20):
                expect(
                    await next_message(client, servers.timeout),
                    f"Someone said: message {n}",
                    f"{client.name} received",
                )


def _relay_cause(detail: str) -> str:
    if "received nothing" in detail:
        return (
            "nothing came back from Redis: does start_relay start "
            "relay_from_redis with asyncio.create_task, and return the task?"
        )
    return ""


relay = ScriptExercise(
    "8.2",
    "Deliver what the channel brings",
    functions=["relay_from_redis", "start_relay"],
    needs=["publish"],
    scenarios=[
        (
            'alice and carol on one server, bob on the other: alice\'s "hi" reaches '
            "bob and carol, not alice",
            _room_across,
        ),
        ("20 messages from bob reach alice and dave in order", _in_order),
    ],
    hints=[
        "loop over pubsub.listen(); skip what isn't a message (the subscription's confirmation), decode the JSON, and broadcast to the local clients but the sender; start_relay starts that loop in the background",
        'async for item in pubsub.___(): skip items whose "type" isn\'t "message"; data = json.loads(item[___]); the others are the connected clients whose str(c.id) isn\'t data[___]; start_relay returns asyncio.___(relay_from_redis(pubsub))',
    ],
    solution=_part("async def relay_from_redis", "async def handler"),
    diagnose=_relay_cause,
)
