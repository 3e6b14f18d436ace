"""``wsteach serve echo|broadcast``: the finished servers, from a terminal.

Like the video's scripts, it prints a "listening on" line and one line per
client that connects or disconnects. Ctrl+C or SIGTERM closes every client with
code 1001 (going away) and exits with status 0.

The server enforces classroom limits (see :mod:`wsteach.limits`); flags change
them. It listens on localhost unless ``--host`` says otherwise; then it prints
the address students should use and the limits in force.

For an interactive client, use the one websockets ships:
``python -m websockets ws://localhost:7890``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import socket
import sys
from collections.abc import Sequence

from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosedError
from websockets.frames import CloseCode
from websockets.protocol import State

from .internals import close_frames
from .limits import Limits, RateLimit
from .notebook import Handler, PortInUseError, start
from .pubsub import DEFAULT_CHANNEL, RedisRoom, RedisRoomError
from .servers import Room, echo
from .trace import NAME_HEADER

__all__ = ["main"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ANY_HOSTS = ("0.0.0.0", "::", "")


def _positive_or_off(text: str) -> float | None:
    """Parse a number where 0 means "no limit"."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or more, got {text}")
    return value or None


def _count_or_off(text: str) -> int | None:
    value = _positive_or_off(text)
    if value is not None and value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}")
    return None if value is None else int(value)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    defaults = Limits()
    parser = argparse.ArgumentParser(
        prog="wsteach",
        description="Run the kit's finished WebSocket servers.",
        epilog="Interactive client: python -m websockets ws://localhost:7890",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve",
        help="run the echo server or the broadcast room",
        description="Run the echo server or the broadcast room, with classroom "
        "limits. A limit set to 0 is off.",
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
        "--port", type=int, default=7890, help="TCP port (default: 7890; 0: any free)"
    )
    serve.add_argument(
        "--web", action="store_true", help="also serve the chat page on the same port"
    )
    shared = serve.add_argument_group("one room across processes (broadcast only)")
    shared.add_argument(
        "--redis",
        metavar="URL",
        help="share the room with every process on the same Redis channel, "
        "e.g. redis://localhost:6379/0",
    )
    shared.add_argument(
        "--channel",
        default=DEFAULT_CHANNEL,
        help=f"the Redis channel: one room per channel (default: {DEFAULT_CHANNEL})",
    )
    limits = serve.add_argument_group("classroom limits")
    limits.add_argument(
        "--max-clients",
        type=_count_or_off,
        default=defaults.max_clients,
        metavar="N",
        help=f"clients at once; more get HTTP 503 (default: {defaults.max_clients})",
    )
    limits.add_argument(
        "--max-message",
        type=_count_or_off,
        default=defaults.max_message,
        metavar="BYTES",
        help=f"largest message; bigger closes with 1009 (default: {defaults.max_message})",
    )
    limits.add_argument(
        "--rate",
        type=_positive_or_off,
        default=defaults.rate,
        metavar="PER_SECOND",
        help=f"messages per second per client; faster closes with 1008 "
        f"(default: {defaults.rate:g})",
    )
    limits.add_argument(
        "--burst",
        type=_count_or_off,
        default=defaults.burst,
        metavar="N",
        help=f"messages allowed in a quick burst above the rate (default: {defaults.burst})",
    )
    limits.add_argument(
        "--max-queued",
        type=_count_or_off,
        default=defaults.max_queued,
        metavar="BYTES",
        help="bytes waiting for a slow reader before it is closed with 1008 "
        f"(default: {defaults.max_queued})",
    )
    limits.add_argument(
        "--ping-interval",
        type=_positive_or_off,
        default=defaults.ping_interval,
        metavar="SECONDS",
        help=f"keepalive ping period (default: {defaults.ping_interval:g})",
    )
    limits.add_argument(
        "--ping-timeout",
        type=_positive_or_off,
        default=defaults.ping_timeout,
        metavar="SECONDS",
        help=f"drop a peer that doesn't answer a ping in time (default: {defaults.ping_timeout:g})",
    )
    limits.add_argument(
        "--open-timeout",
        type=_positive_or_off,
        default=defaults.open_timeout,
        metavar="SECONDS",
        help=f"time to finish the opening handshake (default: {defaults.open_timeout:g})",
    )
    args = parser.parse_args(argv)
    if args.redis is not None and args.server != "broadcast":
        serve.error("--redis works with the broadcast server only")
    return args


def limits_from(args: argparse.Namespace) -> Limits:
    """Build the :class:`Limits` the command line asks for."""
    return Limits(
        max_clients=args.max_clients,
        max_message=args.max_message,
        rate=args.rate,
        burst=args.burst or 1,
        max_queued=args.max_queued,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        open_timeout=args.open_timeout,
    )


def _who(websocket: ServerConnection) -> str:
    name = websocket.request.headers.get(NAME_HEADER) if websocket.request else None
    host, port, *_ = websocket.remote_address
    return f"{name} ({host}:{port})" if name else f"{host}:{port}"


def _how(websocket: ServerConnection) -> str:
    """Say who closed a connection, and with which code and reason."""
    if websocket.state is not State.CLOSED:
        return "closing"
    sent, received, received_first = close_frames(websocket)
    if sent is None and received is None:
        return "connection lost"
    if received is not None and (sent is None or received_first):
        return f"client closed: {received}"
    reply = "" if received is not None else ", no reply"
    return f"server closed: {sent}{reply}"


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
            print(
                f"- {who} disconnected ({_how(websocket)}) · {online} online",
                flush=True,
            )

    announced.__qualname__ = getattr(handler, "__qualname__", "handler")
    return announced


def classroom_echo(limits: Limits) -> Handler:
    """Make an echo handler with the rate limit: a flood closes with 1008.

    The other limits need no code here: websockets enforces them.
    """
    if limits.rate is None:
        return echo

    async def echo_with_rate_limit(websocket: ServerConnection) -> None:
        loop = asyncio.get_running_loop()
        rate_limit = RateLimit(limits.rate, limits.burst, loop.time())
        try:
            async for message in websocket:
                if not rate_limit.allow(loop.time()):
                    await websocket.close(
                        CloseCode.POLICY_VIOLATION, rate_limit.reason()
                    )
                    break
                await websocket.send(message)
        except ConnectionClosedError:
            pass  # The client vanished or broke the protocol; it is closed.

    echo_with_rate_limit.__qualname__ = "echo"
    return echo_with_rate_limit


def lan_address() -> str:
    """Guess this machine's address on the local network, for students' URLs.

    Connecting a UDP socket sends nothing; it only asks the system which
    interface would carry traffic out, and that interface's address.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed for real.
            return probe.getsockname()[0]
        except OSError:
            return socket.gethostname()


async def serve(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    limits = limits_from(args)
    room: RedisRoom | None = None
    if args.server == "echo":
        handler = classroom_echo(limits)
    elif args.redis is None:
        handler = Room(limits=limits).handler
    else:
        room = RedisRoom(
            args.redis,
            channel=args.channel,
            limits=limits,
            say=lambda line: print(line, flush=True),
        )
        await room.start()
        handler = room.handler
    try:
        running = await start(
            announce(handler),
            host=args.host,
            port=args.port,
            trace=False,
            **limits.serve_options(web=args.web),
        )
    except BaseException:
        if room is not None:
            await room.close()
        raise
    print(f"wsteach {args.server} server listening on {running.url}", flush=True)
    if args.web:
        print(f"chat page: {running.url.replace('ws://', 'http://')}/", flush=True)
    if args.host not in LOCAL_HOSTS:
        host = lan_address() if args.host in ANY_HOSTS else args.host
        host = f"[{host}]" if ":" in host else host
        print(
            f"other machines can connect: students use ws://{host}:{running.port}",
            flush=True,
        )
        if args.web:
            print(f"students' chat page: http://{host}:{running.port}/", flush=True)
        print(limits.describe(), flush=True)
    print("press Ctrl+C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        count = len(running.connections)
        print(
            f"stopping: closing {count} connection(s) with 1001 (going away)",
            flush=True,
        )
        await running.stop()
        if room is not None:
            await room.close()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


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
    except RedisRoomError as exc:
        print(f"wsteach: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(
            f"wsteach: cannot listen on {args.host}:{args.port}: {exc.strerror or exc}",
            file=sys.stderr,
        )
        return 1
    return 0
