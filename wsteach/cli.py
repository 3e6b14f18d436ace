"""``wsteach serve echo|broadcast``: the finished servers, from a terminal.

Like the video's scripts, it prints a "listening on" line and one line per
client that connects or disconnects. Ctrl+C or SIGTERM closes every client with
code 1001 (going away) and exits with status 0.

For an interactive client, use the one websockets ships:
``python -m websockets ws://localhost:7890``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection

from .notebook import Handler, PortInUseError, start
from .servers import Room, echo
from .trace import NAME_HEADER

__all__ = ["main"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="wsteach",
        description="Run the kit's finished WebSocket servers.",
        epilog="Interactive client: python -m websockets ws://localhost:7890",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the echo server or the broadcast room"
    )
    serve.add_argument(
        "server", choices=["echo", "broadcast"], help="which server to run"
    )
    serve.add_argument(
        "--host",
        default="localhost",
        help="interface to listen on (default: localhost, this machine only; "
        "0.0.0.0 lets other machines connect)",
    )
    serve.add_argument(
        "--port", type=int, default=7890, help="TCP port (default: 7890)"
    )
    serve.add_argument(
        "--web", action="store_true", help="also serve the chat page on the same port"
    )
    return parser.parse_args(argv)


def _who(websocket: ServerConnection) -> str:
    name = websocket.request.headers.get(NAME_HEADER) if websocket.request else None
    host, port, *_ = websocket.remote_address
    return f"{name} ({host}:{port})" if name else f"{host}:{port}"


def announce(handler: Handler) -> Handler:
    """Wrap ``handler`` to print a line when a client connects and disconnects."""
    online = 0

    async def announced(websocket: ServerConnection) -> None:
        nonlocal online
        who = _who(websocket)
        online += 1
        print(f"+ {who} connected · {online} online", flush=True)
        try:
            await handler(websocket)
        finally:
            online -= 1
            print(f"- {who} disconnected · {online} online", flush=True)

    announced.__qualname__ = getattr(handler, "__qualname__", "handler")
    return announced


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    handler = echo if args.server == "echo" else Room().handler
    running = await start(
        announce(handler), host=args.host, port=args.port, trace=False, web=args.web
    )
    print(f"wsteach {args.server} server listening on {running.url}", flush=True)
    if args.web:
        print(f"chat page: {running.url.replace('ws://', 'http://')}/", flush=True)
    if args.host not in LOCAL_HOSTS:
        print(
            f"listening on {args.host}: other machines can connect; students use "
            f"ws://<this machine's address>:{running.port}",
            flush=True,
        )
    print("press Ctrl+C to stop", flush=True)
    await stop.wait()
    count = len(running.connections)
    print(f"stopping: closing {count} connection(s) with 1001 (going away)", flush=True)
    await running.stop()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parse_args(argv)
    try:
        asyncio.run(serve(args))
    except PortInUseError:
        print(
            f"wsteach: port {args.port} is already in use by another program; "
            f"stop it, or choose another port with --port {args.port + 1}",
            file=sys.stderr,
        )
        return 1
    except OSError as exc:
        print(
            f"wsteach: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return 1
    return 0
