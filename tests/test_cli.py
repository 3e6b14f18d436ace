"""``wsteach serve``: real processes, real clients, real signals."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys

import pytest
from conftest import measured
from rawws import Raw, frame, http_exchange, request
from serverproc import ServerProcess
from utils import FACTOR
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

import wsteach
from wsteach import cli
from wsteach.limits import Limits


async def test_echo_prints_listening_and_connection_lines() -> None:
    """The echo server says where it listens and who connects and leaves."""
    server = await ServerProcess.start("echo", "--port", "0")
    try:
        assert server.lines[0] == f"wsteach echo server listening on {server.url}"
        async with connect(
            server.url, additional_headers={"X-Wsteach-Name": "ada"}
        ) as ws:
            await ws.send("Hello")
            assert await ws.recv() == "Hello"
            await server.wait_for("+ ada (127.0.0.1:")
        line = await server.wait_for("- ada")
        assert "client closed: 1000 (OK)" in line
        assert line.endswith("0 online")
        assert await server.stop(signal.SIGINT) == 0
    finally:
        await server.kill()


async def test_port_zero_prints_the_real_port() -> None:
    """--port 0 prints the port the system picked, and it answers there."""
    server = await ServerProcess.start("broadcast", "--port", "0")
    try:
        assert server.port != 0
        async with connect(server.url) as ws:
            assert ws.protocol.state.name == "OPEN"
    finally:
        assert await server.stop() == 0


async def test_localhost_prints_no_limits() -> None:
    """On localhost (the default) the start-up output stays as short as the video's."""
    server = await ServerProcess.start("broadcast", "--port", "0")
    try:
        assert not any(line.startswith("limits:") for line in server.lines)
        assert len(server.lines) == 2
    finally:
        await server.stop()


async def test_max_clients_zero_is_said_to_be_off(capsys) -> None:
    """--max-clients 0 is off: --help says so, and so does the start banner, on localhost too."""
    with pytest.raises(SystemExit):
        cli.parse_args(["serve", "--help"])
    assert "0: any number" in " ".join(capsys.readouterr().out.split())
    server = await ServerProcess.start("broadcast", "--port", "0", "--max-clients", "0")
    try:
        (limits,) = [line for line in server.lines if line.startswith("limits:")]
        assert limits.startswith("limits: any number of clients · ")
    finally:
        assert await server.stop() == 0


async def test_other_host_prints_students_url_and_limits() -> None:
    """Listening on all interfaces prints the students' URL and the limits in force."""
    server = await ServerProcess.start(
        "broadcast", "--host", "0.0.0.0", "--port", "0", "--web", "--rate", "5"
    )
    try:
        text = "\n".join(server.lines)
        assert f"students use ws://{cli.lan_address()}:{server.port}" in text
        assert f"students' chat page: http://{cli.lan_address()}:{server.port}/" in text
        assert (
            "limits: at most 100 clients · messages up to 64 KiB · 5 messages/s" in text
        )
    finally:
        await server.stop()


async def test_web_serves_the_page_and_refuses_plain_http_without_it() -> None:
    """With --web a plain GET gets the chat page; without it, 426."""
    server = await ServerProcess.start("broadcast", "--port", "0", "--web")
    plain = await ServerProcess.start("echo", "--port", "0")
    try:
        get = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        status, headers, _ = await http_exchange(server.port, get)
        assert status == 200
        assert headers["content-type"].startswith("text/html")
        assert (await http_exchange(plain.port, get))[0] == 426
    finally:
        await server.stop()
        await plain.stop()


async def test_max_clients_flag_refuses_with_503() -> None:
    """--max-clients 2: the third client gets HTTP 503 and a reason."""
    server = await ServerProcess.start("broadcast", "--port", "0", "--max-clients", "2")
    try:
        async with connect(server.url), connect(server.url):
            with pytest.raises(InvalidStatus) as refused:
                await connect(server.url)
            assert refused.value.response.status_code == 503
            assert b"2 clients are connected" in refused.value.response.body
            # The chat page is not a client: it is still served when full.
        status, _, _ = await http_exchange(server.port, request())
        assert status == 101
    finally:
        await server.stop()


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_flood_closes_with_1008(kind: str) -> None:
    """A client over --rate/--burst is closed with 1008 and a readable reason."""
    server = await ServerProcess.start(
        kind, "--port", "0", "--rate", "5", "--burst", "3"
    )
    try:
        async with connect(server.url) as flooder, connect(server.url) as other:
            for n in range(20):
                await flooder.send(f"x{n}")
            with pytest.raises(ConnectionClosedError):
                while True:
                    await flooder.recv()
            assert flooder.close_code == 1008
            assert "the limit is 5 per second (bursts of 3)" in flooder.close_reason
            await other.send("still here")
            if kind == "echo":
                assert await other.recv() == "still here"
        line = await server.wait_for("server closed: 1008")
        assert "too many messages" in line
    finally:
        await server.stop()


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_big_message_closes_with_1009(kind: str) -> None:
    """A message over --max-message closes with 1009; the room goes on."""
    server = await ServerProcess.start(kind, "--port", "0", "--max-message", "1000")
    try:
        async with connect(server.url) as big, connect(server.url) as other:
            await big.send("x" * 1001)
            with pytest.raises(ConnectionClosedError):
                await big.recv()
            assert big.close_code == 1009
            await other.send("fine")
            if kind == "echo":
                assert await other.recv() == "fine"
    finally:
        await server.stop()


async def test_dead_peer_leaves_after_ping_timeout() -> None:
    """A client that stops answering pings is dropped after --ping-timeout."""
    server = await ServerProcess.start(
        "broadcast", "--port", "0", "--ping-interval", "0.2", "--ping-timeout", "0.2"
    )
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.sendall(request())
        assert sock.recv(4096).startswith(b"HTTP/1.1 101")
        # It never reads again and never answers a ping: a sleeping laptop.
        line = await server.wait_for("disconnected")
        assert "keepalive ping timeout" in line
        sock.close()
    finally:
        await server.stop()


async def test_port_in_use_is_one_line_and_exit_1() -> None:
    """A port held by another program gives one clear line and exit status 1."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                "-m",
                "wsteach",
                "serve",
                "echo",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            env=measured(),
        )
    assert result.returncode == 1
    assert result.stderr == (
        f"wsteach: port {port} is already in use by another program; "
        f"stop it, or choose another port with --port {port + 1}\n"
    )


def test_other_bind_error_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """An address this machine doesn't have gives one line and exit status 1."""
    assert cli.main(["serve", "echo", "--host", "192.0.2.123", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("wsteach: cannot listen on 192.0.2.123:0: ")
    assert err.count("\n") == 1


def test_flags_build_limits() -> None:
    """Each limit flag lands in the Limits, and 0 turns a limit off."""
    args = cli.parse_args(
        [
            "serve",
            "echo",
            "--max-clients",
            "7",
            "--max-message",
            "2048",
            "--rate",
            "0",
            "--burst",
            "4",
            "--max-queued",
            "4096",
            "--ping-interval",
            "0",
            "--ping-timeout",
            "3",
            "--open-timeout",
            "1.5",
        ]
    )
    assert cli.limits_from(args) == Limits(
        max_clients=7,
        max_message=2048,
        rate=None,
        burst=4,
        max_queued=4096,
        ping_interval=None,
        ping_timeout=3,
        open_timeout=1.5,
    )
    assert cli.limits_from(cli.parse_args(["serve", "echo"])) == Limits()


BAD_VALUES = [
    ("--port", "-1"),
    ("--port", "70000"),
    ("--port", "80.5"),
    ("--max-clients", "-1"),
    ("--max-clients", "2.5"),
    ("--max-clients", "1e12"),
    ("--max-message", "99999999999"),
    ("--max-message", "lots"),
    ("--rate", "-3"),
    ("--rate", "nan"),
    ("--rate", "inf"),
    ("--rate", "1e9"),
    ("--burst", "0"),
    ("--burst", "-1"),
    ("--burst", "1.5"),
    ("--max-queued", "-1"),
    ("--ping-interval", "1e300"),
    ("--ping-timeout", "-0.5"),
    ("--open-timeout", "100000"),
]


@pytest.mark.parametrize(("flag", "value"), BAD_VALUES)
def test_bad_flag_values_are_one_clear_line(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A negative, fractional, non-finite or huge value is refused in one line."""
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["serve", "echo", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"wsteach serve: argument {flag}: must be "), err
    assert value in err
    assert err.endswith("(see wsteach serve --help)\n")


def test_burst_zero_says_how_to_turn_the_rate_limit_off(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--burst 0 is refused (it used to mean the strictest limit), naming --rate 0."""
    with pytest.raises(SystemExit):
        cli.parse_args(["serve", "echo", "--burst", "0"])
    assert "to turn the rate limit off, use --rate 0" in capsys.readouterr().err


def test_zero_turns_each_limit_off_and_huge_in_range_values_pass() -> None:
    """0 turns every limit flag off; the largest accepted values are accepted."""
    off = cli.parse_args(
        ["serve", "echo"]
        + [
            arg
            for flag in (
                "--max-clients",
                "--max-message",
                "--rate",
                "--max-queued",
                "--ping-interval",
                "--ping-timeout",
                "--open-timeout",
            )
            for arg in (flag, "0")
        ]
    )
    limits = cli.limits_from(off)
    assert limits.max_clients is limits.rate is limits.open_timeout is None
    big = cli.parse_args(
        ["serve", "echo", "--max-clients", "1000000", "--ping-interval", "86400"]
    )
    assert cli.limits_from(big).max_clients == 1_000_000
    assert cli.parse_args(["serve", "echo", "--port", "65535"]).port == 65535


async def test_echo_without_rate_limit_is_the_plain_echo() -> None:
    """With --rate 0 the echo server is the reference echo handler itself."""
    from wsteach.handlers import echo

    args = cli.parse_args(["serve", "echo", "--rate", "0"])
    async with cli.handler_for(args, cli.limits_from(args)) as handler:
        assert handler is echo


def test_origin_must_be_a_page_address(capsys: pytest.CaptureFixture[str]) -> None:
    """--origin 192.168.1.10 (no scheme) is refused in one line that shows the form."""
    with pytest.raises(SystemExit) as exited:
        cli.parse_args(["serve", "broadcast", "--origin", "192.168.1.10:7890"])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "such as http://192.168.1.10:7890" in err


async def ping_flood_and_vanish(port: int, count: int = 5000) -> None:
    """Handshake, send ``count`` pings in one go, and reset without reading."""
    raw = await Raw.open(port)
    raw.send(b"".join(frame(0x9, b"%d" % n) for n in range(count)))
    await raw.writer.drain()
    raw.reset()


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_ping_flood_then_vanish_prints_two_lines(kind: str) -> None:
    """5000 pings then a reset: one line in, one line out, no asyncio warning flood."""
    server = await ServerProcess.start(kind, "--port", "0")
    try:
        for _ in range(3):
            await ping_flood_and_vanish(server.port)
        async with connect(server.url) as ws:  # Still serving.
            await ws.ping()
        await server.wait_for("- 127.0.0.1")
        await server.quiet()
    finally:
        assert await server.stop() == 0
    text = "\n".join(server.lines)
    assert "socket.send() raised exception" not in text, text[:2000]
    assert len(server.lines) < 20, text[:2000]


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_tight_loop_flooder_reads_1008_and_the_reason(kind: str) -> None:
    """A client that only sends, never waiting, still learns it was closed and why.

    It learns at the latest when the server drops the connection, after its
    close timeout (2 s). Echo: the flooder never reads its echoes, so
    websockets stops reading for it; it learns at the latest when its own
    close timeout ends (10 s by default, 3 s here).
    """
    server = await ServerProcess.start(kind, "--port", "0")
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        async with connect(server.url, close_timeout=3) as flooder:
            with pytest.raises(ConnectionClosedError):
                while True:
                    await flooder.send("spam")
        elapsed = loop.time() - started
        assert (flooder.close_code, flooder.close_reason) == (
            1008,
            "too many messages: the limit is 10 per second (bursts of 20); "
            "slow down and reconnect",
        )
        await server.wait_for("server closed: 1008")
    finally:
        assert await server.stop() == 0
    # At the latest when a close timeout ends (sooner when the flooder's system
    # buffers let it read the close frame first), never after it.
    assert elapsed < (3 if kind == "echo" else 2) + 5 * FACTOR


async def test_two_name_headers_are_announced_by_address() -> None:
    """Two X-Wsteach-Name headers: the client is served and shown by its address."""
    server = await ServerProcess.start("broadcast", "--port", "0")
    try:
        raw = await Raw.open(server.port, X_Wsteach_Name="ada")
        await raw.aclose()
        twice = request(X_Wsteach_Name="ada").replace(
            b"\r\n\r\n", b"\r\nX-Wsteach-Name: bob\r\n\r\n"
        )
        raw = await Raw.connect(server.port)
        raw.send(twice)
        assert (await raw.response())[0] == 101
        line = await server.wait_for("+ 127.0.0.1:")
        assert "connected · 1 online" in line
        raw.send(frame(0x8, b"\x03\xe8"))
        assert (await raw.read_frame()).opcode == 0x8
        await raw.aclose()
        await server.wait_for("0 online")
    finally:
        assert await server.stop() == 0
    text = "\n".join(server.lines)
    assert "Traceback" not in text and "1011" not in text, text


@pytest.mark.parametrize("web", [False, True])
async def test_duplicate_upgrade_headers_get_a_clean_refusal(web: bool) -> None:
    """Two Upgrade headers: a 4xx answer, never 500, and nothing logged as an error."""
    server = await ServerProcess.start("echo", "--port", "0", *(["--web"] * web))
    try:
        twice = request().replace(b"\r\n\r\n", b"\r\nUpgrade: websocket\r\n\r\n")
        status, _, _ = await http_exchange(server.port, twice)
        async with connect(server.url) as ws:  # Still serving.
            await ws.ping()
    finally:
        assert await server.stop() == 0
    assert status in (400, 426), status
    text = "\n".join(server.lines)
    assert "Traceback" not in text and "ERROR" not in text, text


async def test_origin_option_refuses_other_pages() -> None:
    """--origin: that page's browsers and origin-less clients connect; others get 403."""
    good = "http://192.0.2.10:7890"
    server = await ServerProcess.start("echo", "--port", "0", "--origin", good)
    try:
        async with connect(server.url, origin=good) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        async with connect(server.url) as ws:  # Scripts send no Origin.
            await ws.ping()
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url, origin="http://evil.example")
        assert refused.value.response.status_code == 403
    finally:
        assert await server.stop() == 0


async def test_any_ipv6_host_announces_addresses_that_work() -> None:
    """--host :: listens dual-stack where possible; every announced URL answers."""
    server = await ServerProcess.start("echo", "--host", "::", "--port", "0")
    try:
        line = await server.wait_for("students use")
        urls = line.split("students use ", 1)[1].split(" or ")
        assert urls, line
        if socket.has_dualstack_ipv6():
            assert urls[0] == f"ws://{cli.lan_address()}:{server.port}"
        local = [f"ws://127.0.0.1:{server.port}"] * socket.has_dualstack_ipv6()
        for url in [*urls, *local, f"ws://[::1]:{server.port}"]:
            async with connect(url) as ws:
                await ws.send(url)
                assert await ws.recv() == url
    finally:
        assert await server.stop() == 0


def lan(family: socket.AddressFamily) -> str:
    """A stand-in for cli.lan_address: this machine's LAN address, with no route needed."""
    return "192.0.2.7" if family is socket.AF_INET else "2001:db8::7"


def test_lan_address_is_the_interface_towards_the_target() -> None:
    """lan_address names the interface that would carry traffic to the target."""
    assert cli.lan_address(target=("127.0.0.2", 9)) == "127.0.0.1"


def test_lan_address_without_a_route_is_none() -> None:
    """Where the system can't reach the target, there's no address to give."""
    assert cli.lan_address(target=("::1", 9)) is None  # No IPv4 way to an IPv6 host.


def test_students_addresses_of_ipv4_and_ipv6_only_sockets() -> None:
    """An IPv6-only socket announces no IPv4 address; an IPv4 one no IPv6 one."""
    v6 = socket.create_server(("::", 0), family=socket.AF_INET6)
    v4 = socket.create_server(("0.0.0.0", 0))
    with v6, v4:
        assert cli.students_addresses([v6], lan=lan) == ["[2001:db8::7]"]
        assert cli.students_addresses([v4], lan=lan) == ["192.0.2.7"]


def test_students_addresses_of_a_dual_stack_socket_and_no_network() -> None:
    """A dual-stack "any" socket announces IPv4 first, then IPv6; no network, nothing."""
    dual = socket.create_server(
        ("::", 0), family=socket.AF_INET6, dualstack_ipv6=socket.has_dualstack_ipv6()
    )
    with dual:
        both = ["192.0.2.7"] * socket.has_dualstack_ipv6() + ["[2001:db8::7]"]
        assert cli.students_addresses([dual], lan=lan) == both
        assert cli.students_addresses([dual], lan=lambda family: None) == []


async def test_ctrl_c_stops_cleanly_without_loop_signal_handlers(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Where the loop can't handle signals (Windows), Ctrl+C still stops cleanly."""
    loop = asyncio.get_running_loop()

    def unsupported(*args: object) -> None:
        raise NotImplementedError  # What Windows' event loops do.

    monkeypatch.setattr(loop, "add_signal_handler", unsupported)
    before = signal.getsignal(signal.SIGINT)
    args = cli.parse_args(["serve", "echo", "--port", "0"])
    task = asyncio.create_task(cli.run(args))
    async with asyncio.timeout(10 * FACTOR):
        while "press Ctrl+C" not in capsys.readouterr().out:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
    signal.raise_signal(signal.SIGINT)
    await asyncio.wait_for(task, 5 * FACTOR)
    assert "stopping: closing 0 connection(s)" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGINT) is before


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_50_megabytes_close_with_1009(kind: str) -> None:
    """A 50 MB message, with the default limits, closes its sender with 1009."""
    server = await ServerProcess.start(kind, "--port", "0")
    try:
        async with connect(server.url, max_size=None) as big:
            with pytest.raises(ConnectionClosedError):
                await big.send("x" * (50 * 2**20))
                await big.recv()
        assert big.close_code == 1009
        assert (await server.wait_for("disconnected")).count("1009") == 1
    finally:
        assert await server.stop() == 0


async def test_client_101_gets_http_503() -> None:
    """With the default cap of 100, the 101st client gets HTTP 503 and a reason."""
    server = await ServerProcess.start("broadcast", "--port", "0")
    try:
        clients = await asyncio.gather(*(Raw.open(server.port) for _ in range(100)))
        status, _, body = await http_exchange(server.port, request())
        for raw in clients:
            raw.reset()
    finally:
        assert await server.stop() == 0
    assert status == 503
    assert b"100 clients are connected" in body


# Sixteen abusive inputs, as a careless or hostile client sends them.


async def abuse_garbage(port: int) -> None:
    raw = await Raw.connect(port)
    raw.send(bytes(range(256)) * 4 + b"\r\n\r\n")
    assert await raw.at_eof()
    await raw.aclose()


async def abuse_plain_get(port: int) -> None:
    status, _, _ = await http_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert status == 426


async def abuse_missing_key(port: int) -> None:
    status, _, _ = await http_exchange(port, request(drop=("Sec-WebSocket-Key",)))
    assert status == 400


async def abuse_two_upgrade_headers(port: int) -> None:
    twice = request().replace(b"\r\n\r\n", b"\r\nUpgrade: websocket\r\n\r\n")
    assert (await http_exchange(port, twice))[0] in (400, 426)


async def abuse_two_name_headers(port: int) -> None:
    raw = await Raw.connect(port)
    raw.send(
        request(X_Wsteach_Name="a").replace(
            b"\r\n\r\n", b"\r\nX-Wsteach-Name: b\r\n\r\n"
        )
    )
    assert (await raw.response())[0] == 101
    raw.reset()


async def abuse_half_handshake(port: int) -> None:
    raw = await Raw.connect(port)
    raw.send(request()[:40])
    assert await raw.at_eof()  # --open-timeout drops it.
    await raw.aclose()


async def abuse_reset_after_handshake(port: int) -> None:
    (await Raw.open(port)).reset()


async def abuse_reset_mid_frame(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x1, b"x" * 1000)[:500])
    await raw.writer.drain()
    raw.reset()


async def abuse_ping_flood_unread(port: int) -> None:
    raw = await Raw.connect(port, rcvbuf=4096)
    raw.send(request())
    assert (await raw.response())[0] == 101
    raw.send(frame(0x9, b"p" * 125) * 16000)  # 2 MB of pings; no pong is read.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(1):
            await raw.writer.drain()
    raw.reset()


async def abuse_message_flood(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(b"".join(frame(0x1, b"spam") for _ in range(5000)))
    assert (await raw.close_code())[0] == 1008
    raw.reset()


async def abuse_50_megabytes(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x1, b"", length=50 * 2**20) + b"x" * 65536)
    assert (await raw.close_code())[0] == 1009
    raw.reset()


async def abuse_invalid_utf8(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x1, b"\xff\xfe"))
    assert (await raw.close_code())[0] == 1007
    raw.reset()


async def abuse_unmasked_frame(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x1, b"hi", mask=False))
    assert (await raw.close_code())[0] == 1002
    raw.reset()


async def abuse_fragment_flood(port: int) -> None:
    raw = await Raw.open(port)
    fragments = [frame(0x1, b"x", fin=False)] + [frame(0, b"x", fin=False)] * 5000
    raw.send(b"".join(fragments))
    assert (await raw.close_code())[0] == 1009
    raw.reset()


async def abuse_binary(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x2, b"\x00\x01"))
    assert (await raw.read_frame()).opcode in (0x2, 0x8)  # Echoed, or 1003.
    raw.reset()


async def abuse_bad_close_code(port: int) -> None:
    raw = await Raw.open(port)
    raw.send(frame(0x8, b"\x03\xe7"))  # 999
    assert (await raw.close_code())[0] == 1002
    raw.reset()


ABUSES = [
    abuse_garbage,
    abuse_plain_get,
    abuse_missing_key,
    abuse_two_upgrade_headers,
    abuse_two_name_headers,
    abuse_half_handshake,
    abuse_reset_after_handshake,
    abuse_reset_mid_frame,
    ping_flood_and_vanish,
    abuse_ping_flood_unread,
    abuse_message_flood,
    abuse_50_megabytes,
    abuse_invalid_utf8,
    abuse_unmasked_frame,
    abuse_fragment_flood,
    abuse_binary,
    abuse_bad_close_code,
]


@pytest.mark.parametrize("kind", ["echo", "broadcast"])
async def test_abuse_keeps_the_terminal_readable(kind: str) -> None:
    """17 abusive inputs: the server serves on, no traceback, under 200 lines."""
    server = await ServerProcess.start(kind, "--port", "0", "--open-timeout", "1")
    try:
        async with wsteach.crowd(server.url, "watcher", "other") as (watcher, other):
            for abuse in ABUSES:
                await abuse(server.port)
                await other.send(abuse.__name__)
                expected = abuse.__name__ if kind == "echo" else "Someone said: "
                got = await (other if kind == "echo" else watcher).recv()
                assert got.startswith(expected), (abuse.__name__, got)
        await server.quiet()
    finally:
        assert await server.stop() == 0
    text = "\n".join(server.lines)
    assert "Traceback" not in text and "ERROR" not in text, text
    assert "socket.send() raised exception" not in text, text
    assert len(server.lines) < 200, text
    print(f"\n{kind}: {len(server.lines)} lines\n{text}")


def test_students_addresses_skip_loopback_and_repeats() -> None:
    """Loopback addresses are for this machine only; each address is said once."""
    v4 = socket.create_server(("0.0.0.0", 0))
    local6 = socket.create_server(("::1", 0), family=socket.AF_INET6)
    loop4 = socket.create_server(("127.0.0.2", 0))
    with v4, local6, loop4:
        assert cli.students_addresses([v4, v4], lan=lan) == ["192.0.2.7"]
        assert cli.students_addresses([local6, loop4], lan=lan) == []


async def test_loopback_host_says_only_this_machine_can_connect() -> None:
    """--host 127.0.0.2 (loopback, not localhost) says nobody else can connect."""
    server = await ServerProcess.start("echo", "--host", "127.0.0.2", "--port", "0")
    try:
        text = "\n".join(server.lines)
        assert "only this machine can connect" in text
        assert "students use" not in text
    finally:
        assert await server.stop() == 0


# wsteach serve class ----------------------------------------------------------


async def test_class_prints_the_join_line_and_the_secret_board_url() -> None:
    """serve class says how students join and where the board is, with its token."""
    server = await ServerProcess.start("class", "--port", "0", "--web")
    try:
        text = "\n".join(server.lines)
        join = f'wsteach.join_class("ws://127.0.0.1:{server.port}", name="...")'
        assert f"students join: {join}" in text
        board = await server.wait_for("board (keep this address to yourself)")
        url = board.split(": ", 1)[1]
        assert url.startswith(f"http://127.0.0.1:{server.port}/board?token=")
        token = url.split("token=", 1)[1]
        assert len(token) >= 32
        page = f"GET /board?token={token} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        assert (await http_exchange(server.port, page.encode()))[0] == 200
        bare = b"GET /board HTTP/1.1\r\nHost: localhost\r\n\r\n"
        assert (await http_exchange(server.port, bare))[0] == 403
        chat = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"
        assert (await http_exchange(server.port, chat))[0] == 200
        async with connect(f"{server.url}/class") as student:
            await student.send('{"type": "join", "name": "ada"}')
            await student.send('{"type": "result", "step": "2.2", "result": "passed"}')
            await server.wait_for("+ 127.0.0.1")
        csv = f"GET /board.csv?token={token} HTTP/1.1\r\nHost: localhost\r\n\r\n"
        for _ in range(100):
            _, _, body = await http_exchange(server.port, csv.encode())
            if b"ada" in body:
                break
            await asyncio.sleep(0.05)
        assert body.splitlines()[1] == b"ada,no,,,,passed"
    finally:
        assert await server.stop() == 0


async def test_class_on_all_interfaces_gives_students_the_network_address() -> None:
    """With --host 0.0.0.0, the join line names this machine's network address."""
    server = await ServerProcess.start(
        "class", "--host", "0.0.0.0", "--port", "0", "--stuck-after", "0"
    )
    try:
        text = "\n".join(server.lines)
        address = f"ws://{cli.lan_address()}:{server.port}"
        assert f'students join: wsteach.join_class("{address}", name="...")' in text
        assert (
            f"board (keep this address to yourself): http://localhost:{server.port}/board?token="
            in text
        )
    finally:
        assert await server.stop() == 0


def test_class_flags_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    """--stuck-after takes minutes (0 off, at most a day); class has no --redis."""
    assert cli.parse_args(["serve", "class"]).stuck_after == 10.0
    assert cli.parse_args(["serve", "class", "--stuck-after", "0"]).stuck_after is None
    for argv in (
        ["serve", "class", "--stuck-after", "2000"],
        ["serve", "class", "--redis", "redis://localhost"],
    ):
        with pytest.raises(SystemExit):
            cli.parse_args(argv)
    err = capsys.readouterr().err
    assert "must be at most 1440 minutes, got 2000" in err
    assert "--redis works with the broadcast server only" in err


async def test_class_keeps_the_board_token_it_is_given() -> None:
    """WSTEACH_BOARD_TOKEN keeps the board's address across restarts of the server."""
    token = "k" * 24
    server = await ServerProcess.start(
        "class", "--port", "0", env={"WSTEACH_BOARD_TOKEN": token}
    )
    try:
        assert any(line.endswith(f"/board?token={token}") for line in server.lines)
    finally:
        assert await server.stop() == 0


def test_class_refuses_a_weak_board_token() -> None:
    """A WSTEACH_BOARD_TOKEN shorter than 16 characters stops the start, in one line."""
    weak = subprocess.run(
        [sys.executable, "-m", "wsteach", "serve", "class", "--port", "0"],
        env=measured({**os.environ, "WSTEACH_BOARD_TOKEN": "short"}),
        capture_output=True,
        text=True,
        timeout=30 * FACTOR,
    )
    assert weak.returncode == 1
    assert weak.stderr.startswith("wsteach: WSTEACH_BOARD_TOKEN must be 16 to 200")
