"""wsteach.listening: one server is one port, on every host that start and the CLI take."""

from __future__ import annotations

import errno
import socket
import sys

import pytest
from websockets.asyncio.client import connect

from wsteach import echo, listening


async def _pong(url: str) -> str:
    async with connect(url) as websocket:
        await websocket.send("x")
        return await websocket.recv()


@pytest.mark.parametrize("host", ["::", "", None])
def test_every_interface_is_one_dual_stack_socket(host) -> None:
    """ "::", "" and None make one socket, IPv6 and IPv4, so port 0 is one port."""
    sock = listening.listening_socket(host, 0)
    assert sock is not None
    with sock:
        assert sock.family == socket.AF_INET6
        assert not sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)


@pytest.mark.parametrize("host", ["0.0.0.0", "localhost", "127.0.0.1", "::1"])
def test_other_hosts_are_asyncios(host) -> None:
    """Any other host is bound by websockets' serve, as asyncio does."""
    assert listening.listening_socket(host, 0) is None


async def test_ipv4_client_reaches_a_server_on_ipv6_any() -> None:
    """A server listening on "::" answers IPv4 and IPv6 clients on its one port."""
    server, host = await listening.listen(echo, "::", 0)
    async with server:
        assert host == "::"
        port = server.sockets[0].getsockname()[1]
        assert await _pong(f"ws://127.0.0.1:{port}") == "x"
        assert await _pong(f"ws://[::1]:{port}") == "x"


async def test_localhost_port_zero_is_ipv4_only() -> None:
    """localhost with port 0 listens on 127.0.0.1 only: one port, not two."""
    server, host = await listening.listen(echo, "localhost", 0)
    async with server:
        assert host == "127.0.0.1"
        assert {sock.family for sock in server.sockets} == {socket.AF_INET}


async def test_localhost_without_ipv6_is_ipv4(monkeypatch) -> None:
    """Where ::1 can't be bound, localhost listens on 127.0.0.1."""
    real_serve = listening.serve
    hosts = []

    def no_ipv6(handler, host, port, **options):
        hosts.append(host)
        if host == "localhost":
            raise OSError(errno.EADDRNOTAVAIL, "cannot assign requested address")
        return real_serve(handler, host, port, **options)

    monkeypatch.setattr(listening, "serve", no_ipv6)
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    server, host = await listening.listen(echo, "localhost", port)
    async with server:
        assert (hosts, host) == (["localhost", "127.0.0.1"], "127.0.0.1")


async def test_other_bind_errors_pass_through() -> None:
    """A host that isn't this machine's raises the system's OSError."""
    with pytest.raises(OSError) as info:
        await listening.listen(echo, "192.0.2.1", 0)
    if sys.version_info >= (3, 13):
        # asyncio skips an address it can't assign, then finds none left.
        assert str(info.value) == (
            "could not bind on any address out of [('192.0.2.1', 0)]"
        )
    else:
        assert info.value.errno == errno.EADDRNOTAVAIL


async def test_a_bad_option_leaves_no_socket_open(monkeypatch) -> None:
    """If serve() refuses its options, the dual-stack socket made for it is closed."""
    made = []

    def listening_socket(host, port):
        made.append(socket.create_server(("127.0.0.1", 0)))
        return made[0]

    monkeypatch.setattr(listening, "listening_socket", listening_socket)
    with pytest.raises(TypeError):
        await listening.listen(echo, "::", 0, no_such_option=1)
    assert made[0].fileno() == -1


@pytest.mark.parametrize(
    ("host", "family", "v6only"),
    [
        ("", socket.AF_INET, None),
        (None, socket.AF_INET, None),
        ("::", socket.AF_INET6, 1),
    ],
)
def test_without_dual_stack_every_interface_is_one_family(
    monkeypatch, host, family, v6only
) -> None:
    """Where one socket can't serve both, "" and None are IPv4, "::" IPv6 only."""
    monkeypatch.setattr(listening.socket, "has_dualstack_ipv6", lambda: False)
    sock = listening.listening_socket(host, 0)
    assert sock is not None
    with sock:
        assert sock.family == family
        if v6only is not None:
            assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == v6only


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_free_ports_differ_and_can_be_bound(host) -> None:
    """free_ports gives different ports, each of which a server can bind next."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        ports = listening.free_ports(3, host)
    except OSError as exc:  # A container without IPv6 has no ::1.
        pytest.skip(f"no {host} here: {exc}")
    assert len(set(ports)) == 3
    for port in [*ports, listening.free_port(host)]:
        with socket.socket(family) as sock:
            sock.bind((host, port))


def test_free_ports_closes_what_it_opened_when_a_bind_fails(monkeypatch) -> None:
    """A host that can't be bound raises its OSError and leaves no socket open."""
    opened: list[socket.socket] = []
    real = socket.socket

    def recording(*args):
        opened.append(real(*args))
        return opened[-1]

    monkeypatch.setattr(listening.socket, "socket", recording)
    with pytest.raises(OSError):
        listening.free_ports(2, "192.0.2.1")  # TEST-NET-1: never this machine's.
    assert opened and all(sock.fileno() == -1 for sock in opened)
