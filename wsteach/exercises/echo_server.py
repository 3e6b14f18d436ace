"""Exercises for notebook 02, the echo server: the video's ``server_echo.py``, step by step.

- 2.1 ``port``: a step; checks the notebook's ``PORT`` (the "listening" print
  is checked in the script, 2.5).
- 2.2 ``handler``: a handler exercise; the video's handler, prints included.
- 2.3 ``serving``: a step; checks the notebook's ``server``.
- 2.4 ``predict_2_4``: a question about a burst of messages.
- 2.5 ``script``: a step; runs the notebook's ``server_echo.py`` as a process.
- 2.6 ``numbered``: a handler exercise about one handler call per client.
"""

from __future__ import annotations

import ast
import asyncio
import re
from pathlib import Path
from typing import Any

from ..clients import connect
from ..scripts import ScriptExited, run_script
from ..server import Running
from ..timeouts import TIMEOUT_FACTOR
from ._core import Exercise, Mismatch, NotAttempted, Question, Run, Step, expect

__all__ = ["handler", "numbered", "port", "predict_2_4", "script", "serving"]

TIMEOUT = 5 * TIMEOUT_FACTOR
LISTENING = "Server listening on port"


# 2.1 · The port ----------------------------------------------------------------


def _port(names: dict[str, Any]) -> Any:
    if "PORT" not in names:
        raise NotAttempted("write PORT = ... in the cell above, run it, then this cell")
    return names["PORT"]


async def _port_is_a_number(names: dict[str, Any]) -> None:
    port = _port(names)
    if isinstance(port, str):
        raise Mismatch(
            int(port) if port.isdigit() else 7890,
            port,
            "PORT is text; a port is a number, written without quotes",
        )
    if isinstance(port, bool) or not isinstance(port, int):
        raise Mismatch("a whole number such as 7890", port, "PORT")


async def _port_in_range(names: dict[str, Any]) -> None:
    port = _port(names)
    if isinstance(port, int) and not 1024 <= port <= 65535:
        raise Mismatch(
            "a number from 1024 to 65535 (the video uses 7890)",
            port,
            "PORT (ports below 1024 need administrator rights; none go past 65535)",
        )


port = Step(
    "2.1",
    "The port",
    checks=[
        ("PORT is a whole number", _port_is_a_number),
        ("PORT is a port your programs may use", _port_in_range),
    ],
    hints=[
        "a variable holds the number, so the server and the message can't disagree; "
        "the video's is 7890",
        "assign the number, without quotes, to PORT; then print the text joined "
        "with str(PORT), because + doesn't join text and a number",
    ],
    solution=f"""
PORT = 7890
print("{LISTENING} " + str(PORT))
""",
)


# 2.2 · The handler -------------------------------------------------------------


async def _printed(run: Run, text: str) -> None:
    """Wait until the handler printed ``text``; fail with what it printed."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + run.timeout
    while text not in run.printed.getvalue():
        if loop.time() > deadline:
            raise Mismatch(
                f"a line {text!r}",
                run.printed.getvalue().strip() or "nothing",
                "your handler printed",
            )
        await asyncio.sleep(0.01)


async def _prints_connected(run: Run) -> None:
    async with connect(run.url, name="checker"):
        await _printed(run, "A client just connected")


async def _replies_and_prints(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(run.timeout), "Pong: Hello server", "reply")
        await _printed(run, "Received message from client: Hello server")


async def _in_order(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        for n in range(100):
            await client.send(f"message {n}")
        for n in range(100):
            expect(await client.recv(run.timeout), f"Pong: message {n}", f"reply {n}")


async def _two_clients(run: Run) -> None:
    async with (
        connect(run.url, name="alice") as alice,
        connect(run.url, name="bob") as bob,
    ):
        await alice.send("from alice")
        await bob.send("from bob")
        expect(await bob.recv(run.timeout), "Pong: from bob", "bob's reply")
        expect(await alice.recv(run.timeout), "Pong: from alice", "alice's reply")


handler = Exercise(
    "2.2",
    "The video's echo handler",
    prints=True,
    scenarios=[
        ('prints "A client just connected" when a client connects', _prints_connected),
        (
            '"Hello server" gets "Pong: Hello server", and the handler prints it',
            _replies_and_prints,
        ),
        ("100 messages get 100 replies, in order", _in_order),
        ("two clients each get their own replies", _two_clients),
    ],
    hints=[
        "websockets calls the handler once per client: print first, then loop over that client's messages until it leaves",
        "async for ___ in websocket: runs its body once per message; in the body, print the video's line with the message, then await websocket.send(___) with the reply",
    ],
    solution="""
async def echo(websocket):
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)
""",
)


# 2.3 · Serving it --------------------------------------------------------------


def _server(names: dict[str, Any]) -> Running:
    server = names.get("server")
    if server is None:
        raise NotAttempted("write server = await wsteach.start(...) above, and run it")
    if not isinstance(server, Running):
        kind = type(server).__name__
        raise Mismatch(
            "what await wsteach.start(echo, port=PORT) returns",
            f"a {kind}"
            + (f" ({_why_not_started(server, names)})" if kind == "start" else ""),
            "server",
        )
    return server


def _why_not_started(server: Any, names: dict[str, Any]) -> str:
    """Why ``server`` still holds a ``wsteach.start(...)`` call, not a server."""
    if getattr(server, "_used", False):
        return (
            "it was awaited, but its result went nowhere: write "
            "server = await wsteach.start(...) in one line"
        )
    cells = [
        cell for cell in names.get("In", []) if re.search(r"^server\s*=", cell, re.M)
    ]
    if cells and re.search(r"^server\s*=\s*await\b", cells[-1], re.M):
        return (
            "your cell awaits it now, but that cell didn't finish: server still "
            "holds the call from before; run that cell again and read its error"
        )
    return "did you forget await?"


async def _server_runs(names: dict[str, Any]) -> None:
    server = _server(names)
    if not server.running:
        raise Mismatch(
            "a running server", "a stopped one: run its cell again", "server"
        )


async def _server_on_port(names: dict[str, Any]) -> None:
    server = _server(names)
    expect(server.port, names.get("PORT"), "the server's port, compared with PORT")


async def _server_answers(names: dict[str, Any]) -> None:
    server = _server(names)
    async with connect(server.url, name="checker") as client:
        await client.send("Hello server")
        expect(await client.recv(TIMEOUT), "Pong: Hello server", "reply")


serving = Step(
    "2.3",
    "Serve the handler on PORT",
    checks=[
        ("server is a running wsteach server", _server_runs),
        ("it listens on PORT", _server_on_port),
        ('a client gets "Pong: Hello server"', _server_answers),
    ],
    hints=[
        "wsteach.start(handler, port=...) starts serving and returns a handle; await it, because starting a server waits for the network",
        "server = await wsteach.start(___, port=___): the handler function itself, not a call of it",
    ],
    solution="""
server = await wsteach.start(echo, port=PORT)
server
""",
)


# 2.4 · Predict: a burst --------------------------------------------------------

predict_2_4 = Question(
    "2.4",
    "A client sends 1000 messages without waiting: how many does the handler work on at once, at most?",
    answer=1,
    explanation=(
        "one: async for takes the next message only when the loop's body has "
        "finished with the previous one, so one client's messages are handled one "
        "at a time, in order; the others wait in the connection's buffer"
    ),
    wrong={
        1000: "that would need 1000 copies of the loop; one client gets one handler "
        "call, and that call is one loop",
        2: "async for asks for the next message only after the body has finished",
    },
)


# 2.5 · The script --------------------------------------------------------------

SCRIPT = "server_echo.py"


def _script_source() -> str:
    path = Path(SCRIPT)
    if not path.is_file():
        raise NotAttempted(f"run the %%writefile {SCRIPT} cell above, then this cell")
    source = path.read_text()
    code = [
        line
        for line in source.splitlines()
        if line.strip() and not line.strip().startswith(("#", "%%"))
    ]
    if all(line.strip() == "..." for line in code):
        raise NotAttempted(f"write {SCRIPT} in the %%writefile cell above, then run it")
    return source


def _names_used(source: str) -> set[str]:
    tree = ast.parse(source, SCRIPT)
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            used.add(node.id)
        elif isinstance(node, ast.Attribute):
            used.add(node.attr)
            if isinstance(node.value, ast.Name):
                used.add(f"{node.value.id}.{node.attr}")
    return used


async def _script_parts(names: dict[str, Any]) -> None:
    source = _script_source()
    try:
        used = _names_used(source)
    except SyntaxError as exc:
        raise Mismatch(
            "Python without syntax errors",
            f"{exc.msg} on line {exc.lineno}",
            SCRIPT,
        ) from None
    wanted = ["serve", "serve_forever", "asyncio.run"]
    missing = [name for name in wanted if name not in used]
    bare = "asyncio.run" in missing and _calls_main_alone(source)
    if missing:
        raise Mismatch(
            [],
            missing,
            f"what {SCRIPT} lacks of serve, serve_forever, asyncio.run",
            cause=_BARE_MAIN if bare else "",
            short="main() without asyncio.run" if bare else "",
        )


_BARE_MAIN = (
    "likely cause: main() on its own only makes a coroutine, which never runs "
    "(Python warns that it was never awaited); asyncio.run(main()) runs it"
)


def _calls_main_alone(source: str) -> bool:
    """Whether the script's top level calls ``main()`` as a statement of its own."""
    tree = ast.parse(source)
    statements = list(tree.body)
    for node in tree.body:
        if isinstance(node, ast.If):  # if __name__ == "__main__":
            statements += node.body
    return any(
        isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Call)
        and isinstance(node.value.func, ast.Name)
        and node.value.func.id == "main"
        for node in statements
    )


async def _script_serves(names: dict[str, Any]) -> None:
    _script_source()
    try:
        process = await run_script(
            SCRIPT, name=f"check of {SCRIPT}", wait_for=LISTENING, quiet=True
        )
    except (ScriptExited, TimeoutError) as exc:
        output = str(exc).split(":\n", 1)[-1]
        lines = [line.strip() for line in output.splitlines()]
        said = [line for line in lines if line and not line.startswith("fix:")]
        last = said[-1] if said else "nothing"
        if "address already in use" in output.lower():
            last += " (stop the notebook's server first: await server.stop())"
        never = "was never awaited" in output
        raise Mismatch(
            f"{LISTENING} ...",
            last,
            f"{SCRIPT}, run with python",
            cause=_BARE_MAIN if never else "",
            short="main() without asyncio.run" if never else "",
        ) from None
    try:
        await process.wait_for_output("\n", timeout=TIMEOUT)
        found = re.search(rf"{LISTENING} (\d+)", process.output, re.IGNORECASE)
        if found is None:
            raise Mismatch(f"{LISTENING} <number>", process.output.strip(), "its print")
        url = f"ws://localhost:{found.group(1)}"
        async with connect(url, name="checker") as client:
            await client.send("Hello server")
            expect(await client.recv(TIMEOUT), "Pong: Hello server", "reply")
        await process.wait_for_output(
            "Received message from client: Hello server", timeout=TIMEOUT
        )
    finally:
        await process.kill()


script = Step(
    "2.5",
    f"The whole script, {SCRIPT}",
    checks=[
        ("it uses serve, serve_forever and asyncio.run", _script_parts),
        (
            f'run with python, it prints "{LISTENING} ..." and answers '
            '"Pong: Hello server"',
            _script_serves,
        ),
    ],
    hints=[
        "a script has no running event loop: asyncio.run(...) starts one and runs a main coroutine, which serves until the program is stopped",
        'async def main(): with async with serve(___, "localhost", ___) as server:, inside it the listening print, then await server.___(); the last line hands main() to asyncio.___(...)',
    ],
    solution=f"""
%%writefile {SCRIPT}
import asyncio

from websockets.asyncio.server import serve

PORT = 7890


async def echo(websocket):
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)


async def main():
    async with serve(echo, "localhost", PORT) as server:
        print("{LISTENING} " + str(PORT))
        await server.serve_forever()


asyncio.run(main())
""",
)


# 2.6 · One handler call per client ---------------------------------------------


async def _numbers(run: Run) -> None:
    async with connect(run.url, name="checker") as client:
        for text in ["a", "b", "c"]:
            await client.send(text)
        for number, text in enumerate(["a", "b", "c"], start=1):
            expect(await client.recv(run.timeout), f"{number}: {text}", "reply")


async def _each_client_counts(run: Run) -> None:
    async with connect(run.url, name="alice") as alice:
        await alice.send("hi")
        await alice.send("again")
        expect(await alice.recv(run.timeout), "1: hi", "alice's first reply")
        expect(await alice.recv(run.timeout), "2: again", "alice's second reply")
        async with connect(run.url, name="bob") as bob:
            await bob.send("hello")
            expect(await bob.recv(run.timeout), "1: hello", "bob's first reply")
            await alice.send("still here")
            expect(await alice.recv(run.timeout), "3: still here", "alice's third")


_NUMBERED = re.compile(r"(\d+): (.*)", re.S)


def _counter_cause(
    answer: Any, failure: BaseException | None
) -> tuple[str, str] | None:
    """Name what the numbers show: one counter for everyone, or one per message."""
    if not isinstance(failure, Mismatch):
        return None
    expected = _NUMBERED.fullmatch(str(failure.expected))
    received = _NUMBERED.fullmatch(str(failure.received))
    if not (expected and received) or expected.group(2) != received.group(2):
        return None
    wanted, got = int(expected.group(1)), int(received.group(1))
    if got > wanted:
        return "counter shared", (
            "likely cause: one counter for every client: it keeps counting from "
            "the clients before; create the counter inside the handler, before "
            "its loop, so each call has its own"
        )
    if got == 1:
        return "counter reset", (
            "likely cause: the counter starts again at each message: set it "
            "before the loop, not inside it"
        )
    return None


numbered = Exercise(
    "2.6",
    "Number the replies",
    diagnose=_counter_cause,
    scenarios=[
        ('"a", "b", "c" get "1: a", "2: b", "3: c"', _numbers),
        ("each client counts from 1 on its own", _each_client_counts),
    ],
    hints=[
        "websockets calls your handler once per client: a variable you set before the loop belongs to that client alone",
        'count = ___ before async for; in the loop, count += ___, then send f"{___}: {___}"',
    ],
    solution="""
async def numbered(websocket):
    count = 0
    async for message in websocket:
        count += 1
        await websocket.send(f"{count}: {message}")
""",
)
