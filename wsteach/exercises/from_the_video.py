"""Exercise for notebook 07: port the video's ``server_echo.py`` to today's API.

- :data:`port_the_script`: the student's script, run as a real process with
  ``python``, must behave as the video's did: print its banner, answer
  ``"Pong: " + message``, print what the video printed on connect, message
  and disconnect, and stop on Ctrl+C.

Unlike the other exercises, the answer is a file: ``check`` copies it with
port 7890 replaced by a free one, runs it, and talks to it, so whatever holds
port 7890 doesn't matter.
"""

from __future__ import annotations

import asyncio

from websockets.asyncio.client import connect

from ..internals import transport
from ._core import Mismatch
from ._scenarios import ScriptExercise, ScriptRun, script_stops_on_ctrl_c

__all__ = ["port_the_script"]


async def _starts(run: ScriptRun) -> None:
    await run.printed(f"Server listening on Port {run.port}")
    # Listening, not only printing: the banner comes before serve() in the video.
    async with connect(run.url, open_timeout=run.timeout):
        pass


async def _pong(run: ScriptRun) -> None:
    async with connect(run.url, open_timeout=run.timeout) as websocket:
        await websocket.send("Hello server")
        reply = await asyncio.wait_for(websocket.recv(), run.timeout)
        if reply != "Pong: Hello server":
            raise Mismatch("Pong: Hello server", reply, "the client received")
        await run.printed("A client just connected")
        await run.printed("Received message from client: Hello server")


async def _vanish(run: ScriptRun) -> None:
    websocket = await connect(run.url, open_timeout=run.timeout)
    # Like Ctrl+C in the client's terminal: the connection drops, no handshake.
    transport(websocket).abort()
    await run.printed("A client just disconnected")


port_the_script = ScriptExercise(
    "7.1",
    "Port the video's server_echo.py",
    scenarios=[
        ("it prints its banner and listens on the port", _starts),
        (
            '"Hello server" gets "Pong: Hello server", and the server prints the video\'s lines',
            _pong,
        ),
        ('a client that vanishes: "A client just disconnected"', _vanish),
        ("Ctrl+C stops it", script_stops_on_ctrl_c),
    ],
    hints=[
        "keep the video's prints and its handler's body; change what this notebook showed failing: the handler's parameters, and how the server is started and kept running",
        'one parameter, (websocket); an async def main() whose async with websockets.serve(___, "localhost", PORT) as server: block awaits server.___(); asyncio.run(___) at the bottom',
    ],
    solution="""
%%writefile video_server_ported.py
import asyncio

import websockets

PORT = 7890


async def echo(websocket):
    print("A client just connected")
    try:
        async for message in websocket:
            print("Received message from client: " + message)
            await websocket.send("Pong: " + message)
    except websockets.exceptions.ConnectionClosed:
        print("A client just disconnected")


async def main():
    async with websockets.serve(echo, "localhost", PORT) as server:
        print("Server listening on Port " + str(PORT))
        await server.serve_forever()


asyncio.run(main())
""",
)
