"""``wsteach serve echo|broadcast|class``: the finished servers, from a terminal.

Like the video's scripts, it prints a "listening on" line and one line per
client that connects or disconnects. Ctrl+C or SIGTERM closes every client with
code 1001 (going away) and exits with status 0.

The server enforces classroom limits (see :mod:`wsteach.limits`); flags change
them. It listens on localhost unless ``--host`` says otherwise; then it prints
the addresses students can really use and the limits in force.

This module only turns flags into :class:`~wsteach.limits.Limits` and options,
and runs a handler from :mod:`wsteach.handlers` on :func:`wsteach.listening.listen`
(websockets' own :func:`~websockets.asyncio.server.serve`). Each group of flags has its own
``add_*_flags`` function, so a new group is one more function.

``wsteach serve class`` is the broadcast room plus the class board
(:mod:`wsteach.classboard`): it also prints the address students join with
and the board's secret URL.

For an interactive client, use the one websockets ships:
``python -m websockets ws://localhost:7890``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import functools
import ipaddress
import math
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any, NoReturn

from websockets.asyncio.server import Server

from .classboard import ClassRoom
from .handlers import Handler, Room, announce, classroom_echo
from .limits import Limits
from .listening import listen

__all__ = ["main"]

LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
ANY_IPV4 = "0.0.0.0"
ANY_IPV6 = "::"

# Largest values the flags accept: past them a value is surely a typo, and
# some (a timeout of 1e300 seconds) would overflow asyncio's clock.
MAX_COUNT = 1_000_000
MAX_BYTES = 2**31
MAX_RATE = 1_000_000.0
MAX_SECONDS = 86_400.0


class CannotStart(Exception):
    """The server can't start, for a reason that one line explains (its text)."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, with where to read more."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _number(text: str, *, whole: bool, most: float, unit: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    if whole and value != int(value):
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (off) or more, got {text}")
    if value > most:
        raise argparse.ArgumentTypeError(
            f"must be at most {most:g} {unit}, got {text}".rstrip()
        )
    return value


def count_or_off(
    most: float = MAX_COUNT, unit: str = ""
) -> Callable[[str], int | None]:
    """A flag type: a whole number, where 0 means "no limit"."""

    def parse(text: str) -> int | None:
        return int(_number(text, whole=True, most=most, unit=unit)) or None

    return parse


def number_or_off(most: float, unit: str = "") -> Callable[[str], float | None]:
    """A flag type: a number, where 0 means "no limit"."""

    def parse(text: str) -> float | None:
        return _number(text, whole=False, most=most, unit=unit) or None

    return parse


def burst(text: str) -> int:
    """The --burst type: a whole number of messages, at least 1."""
    value = int(_number(text, whole=True, most=MAX_COUNT, unit="messages"))
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"must be at least 1 (messages allowed at once), got {text}; "
            "to turn the rate limit off, use --rate 0"
        )
    return value


def port(text: str) -> int:
    """The --port type: 0 (any free port) to 65535."""
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(
            f"must be a port number from 1 to 65535, or 0 for any free port, got {text}"
        )
    return int(text)


def add_server_flags(serve_parser: argparse.ArgumentParser) -> None:
    """Which server, where it listens, and who may connect."""
    serve_parser.add_argument(
        "server",
        choices=["echo", "broadcast", "class"],
        help="which server to run; class: the broadcast room plus the class board",
    )
    serve_parser.add_argument(
        "--host",
        default="localhost",
        help="interface to listen on (default: localhost, this machine only; "
        "0.0.0.0 lets other machines connect over IPv4, :: over IPv6 and, "
        "where the system allows, IPv4 too)",
    )
    serve_parser.add_argument(
        "--port", type=port, default=7890, help="TCP port (default: 7890; 0: any free)"
    )
    serve_parser.add_argument(
        "--web", action="store_true", help="also serve the chat page on the same port"
    )
    serve_parser.add_argument(
        "--origin",
        action="append",
        metavar="URL",
        help="accept browsers only from this page's origin, e.g. "
        "http://192.168.1.10:7890 (repeat for several); clients that send no "
        "Origin, such as scripts, are still accepted (default: any origin)",
    )


def add_redis_flags(serve_parser: argparse.ArgumentParser) -> None:
    """--redis and --channel: one room across processes (:mod:`wsteach.pubsub`)."""
    shared = serve_parser.add_argument_group(
        "one room across processes (broadcast only)"
    )
    shared.add_argument(
        "--redis",
        metavar="URL",
        help="share the room with every process on the same Redis channel, "
        "e.g. redis://localhost:6379/0",
    )
    shared.add_argument(
        "--channel",
        default="wsteach",
        help="the Redis channel: one room per channel (default: wsteach)",
    )


def add_board_flags(serve_parser: argparse.ArgumentParser) -> None:
    """--stuck-after: the class board's (``wsteach serve class`` only)."""
    board = serve_parser.add_argument_group("the class board (class only)")
    board.add_argument(
        "--stuck-after",
        type=number_or_off(24 * 60, "minutes"),
        default=10.0,
        metavar="MINUTES",
        help="mark a student stuck after this long without a step passing "
        "(default: 10; 0: only three failures in a row on one step count)",
    )


def add_limit_flags(serve_parser: argparse.ArgumentParser) -> None:
    """The classroom limits; each one's 0 turns it off, except --burst."""
    defaults = Limits()
    limits = serve_parser.add_argument_group(
        "classroom limits", "A limit set to 0 is off (except --burst)."
    )
    limits.add_argument(
        "--max-clients",
        type=count_or_off(unit="clients"),
        default=defaults.max_clients,
        metavar="N",
        help="clients at once; more get HTTP 503; 0: any number "
        f"(default: {defaults.max_clients})",
    )
    limits.add_argument(
        "--max-message",
        type=count_or_off(MAX_BYTES, "bytes"),
        default=defaults.max_message,
        metavar="BYTES",
        help=f"largest message; bigger closes with 1009 (default: {defaults.max_message})",
    )
    limits.add_argument(
        "--rate",
        type=number_or_off(MAX_RATE, "messages per second"),
        default=defaults.rate,
        metavar="PER_SECOND",
        help=f"messages per second per client; faster closes with 1008 "
        f"(default: {defaults.rate:g})",
    )
    limits.add_argument(
        "--burst",
        type=burst,
        default=defaults.burst,
        metavar="N",
        help="messages a client may send at once before --rate applies; at "
        f"least 1 (default: {defaults.burst})",
    )
    limits.add_argument(
        "--max-queued",
        type=count_or_off(MAX_BYTES, "bytes"),
        default=defaults.max_queued,
        metavar="BYTES",
        help="bytes waiting for a slow reader before it is closed with 1008 "
        f"(default: {defaults.max_queued})",
    )
    for flag, default, what in (
        ("--ping-interval", defaults.ping_interval, "keepalive ping period"),
        (
            "--ping-timeout",
            defaults.ping_timeout,
            "drop a peer that doesn't answer a ping in time",
        ),
        (
            "--open-timeout",
            defaults.open_timeout,
            "time to finish the opening handshake",
        ),
    ):
        limits.add_argument(
            flag,
            type=number_or_off(MAX_SECONDS, "seconds"),
            default=default,
            metavar="SECONDS",
            help=f"{what} (default: {default:g})",
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="wsteach",
        description="Run the kit's finished WebSocket servers.",
        epilog="Interactive client: python -m websockets ws://localhost:7890",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve_parser = commands.add_parser(
        "serve",
        help="run the echo server or the broadcast room",
        description="Run the echo server or the broadcast room, with classroom limits.",
    )
    add_server_flags(serve_parser)
    add_redis_flags(serve_parser)
    add_board_flags(serve_parser)
    add_limit_flags(serve_parser)
    args = parser.parse_args(argv)
    check_args(serve_parser, args)
    return args


def limits_from(args: argparse.Namespace) -> Limits:
    """Build the :class:`Limits` the command line asks for."""
    return Limits(
        max_clients=args.max_clients,
        max_message=args.max_message,
        rate=args.rate,
        burst=args.burst,
        max_queued=args.max_queued,
        ping_interval=args.ping_interval,
        ping_timeout=args.ping_timeout,
        open_timeout=args.open_timeout,
    )


def serve_options(
    args: argparse.Namespace, limits: Limits, classroom: ClassRoom | None = None
) -> dict[str, Any]:
    """Build the keyword arguments for websockets' ``serve`` from the flags."""
    pages = None if classroom is None else classroom.process_request
    options = limits.serve_options(web=args.web, pages=pages)
    if args.origin:
        # None: clients that send no Origin header (scripts, python -m
        # websockets, notebooks) are not browsers, so no page can abuse them.
        options["origins"] = [*args.origin, None]
    return options


@contextlib.asynccontextmanager
async def handler_for(
    args: argparse.Namespace, limits: Limits, classroom: ClassRoom | None = None
) -> AsyncIterator[Handler]:
    """Provide the handler the command line asks for, from :mod:`wsteach.handlers`.

    ``classroom``, for ``serve class``, provides its own handler.

    An async context, so that a handler that needs setting up and tearing
    down (a room shared through another service, say) has its place here:
    the server is closed before the context exits.
    """
    if classroom is not None:
        yield classroom.handler
    elif args.server == "echo":
        yield classroom_echo(limits)
    elif args.redis is not None:
        # Imported here: redis-py is loaded only by the processes that use it.
        from .pubsub import RedisRoom, RedisRoomError

        say = functools.partial(print, flush=True)
        try:
            room = RedisRoom(args.redis, channel=args.channel, limits=limits, say=say)
            await room.start()
        except RedisRoomError as exc:
            raise CannotStart(str(exc)) from None
        try:
            yield room.handler
        finally:
            await room.close()
    else:
        yield Room(limits=limits).handler


def check_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse combinations of flags that make no sense, in one line each."""
    if args.redis is not None and args.server != "broadcast":
        parser.error("--redis works with the broadcast server only")
    if args.origin and not all(
        o.startswith(("http://", "https://")) for o in args.origin
    ):
        parser.error(
            "argument --origin: must be a page's address such as "
            "http://192.168.1.10:7890"
        )


# Documentation addresses (RFC 5737, RFC 3849): nothing routes them for real.
_OUTSIDE = {socket.AF_INET: ("192.0.2.1", 9), socket.AF_INET6: ("2001:db8::1", 9)}


def lan_address(
    family: socket.AddressFamily = socket.AF_INET,
    *,
    target: tuple[str, int] | None = None,
) -> str | None:
    """Guess this machine's address on the local network, for students' URLs.

    Connecting a UDP socket sends nothing; it only asks the system which
    interface would carry traffic to ``target``, and that interface's address.
    None when no interface would (no network, or no IPv6 route).

    Args:
        family: :data:`socket.AF_INET` or :data:`socket.AF_INET6`.
        target: Where traffic would go; by default a documentation address
            outside this network, so the answer is the way out. Tests pass
            their own, so that they need no route.
    """
    with socket.socket(family, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(target or _OUTSIDE[family])
        except OSError:
            return None
        return probe.getsockname()[0]


def students_addresses(
    sockets: Sequence[socket.socket],
    *,
    lan: Callable[[socket.AddressFamily], str | None] = lan_address,
) -> list[str]:
    """The hosts other machines can use to reach these listening sockets.

    ``lan`` answers this machine's address for an "any" socket (``0.0.0.0``,
    ``::``); :func:`lan_address` by default, a fixed answer in tests.
    """
    hosts: list[str] = []
    for sock in sockets:
        bound = sock.getsockname()[0]
        if sock.family == socket.AF_INET6:
            dual = not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            if bound == "::":
                found = [lan(socket.AF_INET6)]
                if dual:
                    found.insert(0, lan(socket.AF_INET))
            else:
                found = [bound]
        else:
            found = [lan(socket.AF_INET) if bound == ANY_IPV4 else bound]
        for host in found:
            if host is None or ipaddress.ip_address(host.split("%")[0]).is_loopback:
                continue
            shown = f"[{host}]" if ":" in host else host
            if shown not in hosts:
                hosts.append(shown)
    return hosts


def local_url(host: str, port: int) -> str:
    """The URL this machine uses: localhost names stay, "any" hosts become localhost."""
    if host in (ANY_IPV4, ANY_IPV6, ""):
        host = "localhost"
    shown = f"[{host}]" if ":" in host else host
    return f"ws://{shown}:{port}"


def cap_segment_size(server: Server, size: int = 1448) -> None:
    """Ask clients to send TCP segments of at most ``size`` bytes, as Ethernet does.

    The listening sockets advertise this maximum segment size to every client
    that connects. On a real network it changes nothing; on loopback (65 kB
    segments) a client's system would otherwise buffer megabytes for a server
    that stopped reading, and a flooding client would take many seconds to
    notice it is being closed (see :meth:`wsteach.limits.ClassroomConnection.close_for_limit`).
    """
    option = getattr(socket, "TCP_MAXSEG", None)
    if option is None:  # pragma: no cover - Windows has no TCP_MAXSEG
        return
    for sock in server.sockets:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, size)


def stop_on_signals(stop: Callable[[], None]) -> Callable[[], None]:
    """Call ``stop`` on SIGINT (Ctrl+C) and SIGTERM; return how to undo it.

    Where the event loop has no signal handlers (Windows), Python's own
    :func:`signal.signal` does the job: the handler runs between bytecodes
    and hands ``stop`` to the loop thread-safely.
    """
    loop = asyncio.get_running_loop()
    signums = [signal.SIGINT, signal.SIGTERM]
    try:
        for signum in signums:
            loop.add_signal_handler(signum, stop)
    except NotImplementedError:
        previous = {signum: signal.getsignal(signum) for signum in signums}
        for signum in signums:
            signal.signal(signum, lambda *_: loop.call_soon_threadsafe(stop))

        def undo_fallback() -> None:
            for signum, handler in previous.items():
                signal.signal(signum, handler)

        return undo_fallback

    def undo() -> None:
        for signum in signums:
            loop.remove_signal_handler(signum)

    return undo


async def run(args: argparse.Namespace) -> None:
    """Serve until SIGINT or SIGTERM, then close every client with 1001."""
    stop = asyncio.Event()
    undo = stop_on_signals(stop.set)
    limits = limits_from(args)
    classroom = None
    if args.server == "class":
        stuck = None if args.stuck_after is None else args.stuck_after * 60
        classroom = ClassRoom(limits=limits, token=board_token(), stuck_after=stuck)
    try:
        async with handler_for(args, limits, classroom) as handler:
            await serve_until_stopped(args, limits, handler, stop, classroom)
    finally:
        undo()


def board_token() -> str | None:
    """The board's token from ``WSTEACH_BOARD_TOKEN``, or None for a fresh one.

    A token of one's own keeps the board's address across restarts of the
    server; an environment variable, unlike a flag, doesn't show in ``ps``.
    """
    token = os.environ.get("WSTEACH_BOARD_TOKEN")
    if token is None:
        return None
    if not re.fullmatch(r"[A-Za-z0-9_-]{16,200}", token):
        raise CannotStart(
            "WSTEACH_BOARD_TOKEN must be 16 to 200 letters, digits, - or _; "
            "python -c 'import secrets; print(secrets.token_urlsafe())' makes one"
        )
    return token


async def serve_until_stopped(
    args: argparse.Namespace,
    limits: Limits,
    handler: Handler,
    stop: asyncio.Event,
    classroom: ClassRoom | None = None,
) -> None:
    """Listen, say where, serve until ``stop`` is set, then close every client."""
    server, host = await listen(
        announce(handler),
        args.host,
        args.port,
        **serve_options(args, limits, classroom),
    )
    cap_segment_size(server)
    port = server.sockets[0].getsockname()[1]
    url = local_url(host, port)
    print(f"wsteach {args.server} server listening on {url}", flush=True)
    if args.web:
        print(f"chat page: {url.replace('ws://', 'http://')}/", flush=True)
    if args.host not in LOCAL_HOSTS:
        announce_students(server, port, web=args.web)
    if args.host not in LOCAL_HOSTS or limits != Limits():
        # Limits changed by a flag are said even on localhost: "--max-clients
        # 0" reads "any number of clients".
        print(limits.describe(), flush=True)
    if classroom is not None:
        announce_board(
            server, port, url, classroom.token, local=args.host in LOCAL_HOSTS
        )
    print("press Ctrl+C to stop", flush=True)
    try:
        await stop.wait()
    finally:
        count = len(server.connections)
        print(
            f"stopping: closing {count} connection(s) with 1001 (going away)",
            flush=True,
        )
        server.close()
        await server.wait_closed()


def announce_students(server: Server, port: int, *, web: bool) -> None:
    """Print the URLs other machines can use, or say that none can."""
    hosts = students_addresses(server.sockets)
    if not hosts:
        print("no network address found: only this machine can connect", flush=True)
        return
    urls = " or ".join(f"ws://{host}:{port}" for host in hosts)
    print(f"other machines can connect: students use {urls}", flush=True)
    if web:
        pages = " or ".join(f"http://{host}:{port}/" for host in hosts)
        print(f"students' chat page: {pages}", flush=True)


def announce_board(
    server: Server, port: int, url: str, token: str, *, local: bool
) -> None:
    """Print how students join the board, and the board's secret address."""
    hosts = [] if local else students_addresses(server.sockets)
    joins = [f"ws://{host}:{port}" for host in hosts] or [url]
    for join in joins:
        print(f'students join: wsteach.join_class("{join}", name="...")', flush=True)
    page = url.replace("ws://", "http://")
    print(
        f"board (keep this address to yourself): {page}/board?token={token}", flush=True
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = parse_args(argv)
    try:
        asyncio.run(run(args))
    except CannotStart as exc:
        print(f"wsteach: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"wsteach: port {args.port} is already in use by another program; "
                f"stop it, or choose another port with --port {args.port + 1}",
                file=sys.stderr,
            )
        else:
            print(
                f"wsteach: cannot listen on {args.host}:{args.port}: "
                f"{exc.strerror or exc}",
                file=sys.stderr,
            )
        return 1
    return 0
