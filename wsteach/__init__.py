"""wsteach: learn to write WebSocket servers with websockets, in JupyterLab.

Start a server from a notebook cell, connect named clients, and see what
happened on the wire::

    import wsteach

    async def echo(websocket):
        async for message in websocket:
            await websocket.send("Pong: " + message)

    server = await wsteach.start(echo)
    async with wsteach.connect(server.url, name="alice") as alice:
        await alice.send("Hello server")
        print(await alice.recv())
    server.show()
"""

from __future__ import annotations

from .clients import Client, connect, crowd
from .handlers import Room, echo
from .join import join_class, leave_class, lower_hand, raise_hand
from .limits import Limits
from .scripts import Script, ScriptExited, run_script
from .server import PortInUseError, Running, running_servers, start, stop_all
from .trace import Trace
from .versions import say_if_untested

__all__ = [
    "Client",
    "Limits",
    "PortInUseError",
    "Room",
    "Running",
    "Script",
    "ScriptExited",
    "Trace",
    "connect",
    "crowd",
    "echo",
    "join_class",
    "leave_class",
    "lower_hand",
    "raise_hand",
    "run_script",
    "running_servers",
    "start",
    "stop_all",
]

__version__ = "0.1.0"

say_if_untested()  # Once per process: on a Python newer than the tested ones.
