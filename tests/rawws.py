"""A raw WebSocket client for tests: it sends exactly the bytes a test asks for.

websockets' own client refuses to send malformed frames or requests, which is
what a bad-input test needs to send. This module writes them by hand over a
plain TCP connection (RFC 6455, section 5.2) and reads what the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
from dataclasses import dataclass

from utils import MS
from websockets.frames import Close

__all__ = [
    "KEY",
    "Raw",
    "Reply",
    "frame",
    "http_exchange",
    "request",
]

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
WAIT = 5000 * MS


def request(path: str = "/", *, drop: tuple[str, ...] = (), **headers: str) -> bytes:
    """Build an opening handshake request; ``drop`` removes default headers.

    Keyword arguments add or replace headers: ``Sec_WebSocket_Key="x"``.
    """
    fields = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": KEY,
        "Sec-WebSocket-Version": "13",
    }
    for name in drop:
        del fields[name]
    fields.update({name.replace("_", "-"): value for name, value in headers.items()})
    lines = [f"GET {path} HTTP/1.1", *(f"{k}: {v}" for k, v in fields.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    mask: bool = True,
    length: int | None = None,
) -> bytes:
    """Encode one frame as a client would, or as a broken client would.

    Args:
        opcode: 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong, or
            any other number to test unknown opcodes.
        rsv: The three reserved bits, 0 to 7.
        mask: Clients must mask their frames; False sends an unmasked one.
        length: Announce this payload length instead of the real one.
    """
    first = (0x80 if fin else 0) | (rsv << 4) | opcode
    size = len(payload) if length is None else length
    mask_bit = 0x80 if mask else 0
    if size < 126:
        header = struct.pack("!BB", first, mask_bit | size)
    elif size < 2**16:
        header = struct.pack("!BBH", first, mask_bit | 126, size)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, size)
    if not mask:
        return header + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return header + key + masked


def close_frame(code: int, reason: bytes = b"") -> bytes:
    """A masked close frame with any code, valid or not."""
    return frame(0x8, struct.pack("!H", code) + reason)


@dataclass
class Reply:
    """One frame the server sent."""

    fin: bool
    opcode: int
    payload: bytes

    @property
    def close(self) -> Close:
        return Close.parse(self.payload)


class Raw:
    """One TCP connection to the server, driven byte by byte."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int, *, rcvbuf: int | None = None) -> Raw:
        """Open a TCP connection; ``rcvbuf`` shrinks the receive buffer."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        return cls(reader, writer)

    @classmethod
    async def open(cls, port: int, **headers: str) -> Raw:
        """Connect and complete the opening handshake."""
        raw = await cls.connect(port)
        raw.send(request(**headers))
        status, _, _ = await raw.response()
        assert status == 101, f"handshake failed with HTTP {status}"
        return raw

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def response(self) -> tuple[int, dict[str, str], bytes]:
        """Read an HTTP response: status, headers (lowercase names), body."""
        async with asyncio.timeout(WAIT):
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            status = int(lines[0].split()[1])
            headers = {}
            for line in lines[1:]:
                if line:
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
            body = b""
            if "content-length" in headers:
                body = await self.reader.readexactly(int(headers["content-length"]))
        return status, headers, body

    async def read_frame(self) -> Reply | None:
        """Read one frame from the server; None at end of stream."""
        async with asyncio.timeout(WAIT):
            try:
                head = await self.reader.readexactly(2)
            except asyncio.IncompleteReadError:
                return None
            size = head[1] & 0x7F
            if size == 126:
                (size,) = struct.unpack("!H", await self.reader.readexactly(2))
            elif size == 127:
                (size,) = struct.unpack("!Q", await self.reader.readexactly(8))
            payload = await self.reader.readexactly(size)
        return Reply(bool(head[0] & 0x80), head[0] & 0x0F, payload)

    async def close_code(self) -> tuple[int, str] | None:
        """Read frames until the server's close frame: its (code, reason).

        None if the server ended the TCP connection without a close frame.
        """
        while True:
            reply = await self.read_frame()
            if reply is None:
                return None
            if reply.opcode == 0x8:
                close = reply.close
                return close.code, close.reason

    async def at_eof(self) -> bool:
        """Wait until the server ends the TCP connection; read everything left."""
        async with asyncio.timeout(WAIT):
            while await self.reader.read(65536):
                pass
        return True

    def reset(self) -> None:
        """End the connection with a TCP reset (RST), as a crashed client would."""
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.writer.transport.abort()

    async def aclose(self) -> None:
        self.writer.close()
        # The server may have reset the connection already.
        with contextlib.suppress(OSError):
            await self.writer.wait_closed()


async def http_exchange(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send ``data`` as a request and return the server's HTTP response."""
    raw = await Raw.connect(port)
    try:
        raw.send(data)
        return await raw.response()
    finally:
        await raw.aclose()
