"""wsteach.names: a client's name encoded for the header, read back cleanly by the server."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.datastructures import Headers
from websockets.http11 import Request

import wsteach
from wsteach.names import _BIDI, NAME_HEADER, client_name, encode_name


async def test_any_name_travels_encoded_and_shows_as_typed():
    """A non-Latin-1 name connects, travels percent-encoded, and shows as typed."""
    seen = []

    async def record(websocket):
        seen.append(
            (websocket.request.headers[NAME_HEADER], client_name(websocket.request))
        )
        await websocket.wait_closed()

    server = await wsteach.start(record, port=0)
    names = ["Łukasz", "Zoë 😀", "100% alice", "李"]
    async with wsteach.crowd(server.url, *names) as clients:
        assert [c.name for c in clients] == names
    assert seen == [
        ("%C5%81ukasz", "Łukasz"),
        ("Zo%C3%AB %F0%9F%98%80", "Zoë 😀"),
        ("100%25 alice", "100% alice"),
        ("%E6%9D%8E", "李"),
    ]
    assert server.trace.participants == [*names, "server"]


def named(*values: str) -> Request:
    """A handshake request with one X-Wsteach-Name header per value."""
    return Request("/", Headers([(NAME_HEADER, value) for value in values]))


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ((), None),
        (("alice", "bob"), None),  # Which one? Neither.
        (("",), None),
        (("  %20 ",), None),
        (("alice",), "alice"),
        (("%C5%81ukasz",), "Łukasz"),
        # Raw UTF-8 bytes from another client, read by websockets as ISO-8859-1.
        (("Łukasz".encode().decode("latin-1"),), "Łukasz"),
        (("caf\xe9",), "café"),  # ISO-8859-1 bytes that aren't UTF-8
        (("%FF%FE",), "%FF%FE"),  # escapes that aren't UTF-8: as they came
        (("a%0Ab%1B[31m",), "a\ufffdb\ufffd[31m"),
        (("%E2%80%AEevil",), "\ufffdevil"),  # right-to-left override
        (("x" * 100,), "x" * 39 + "…"),
    ],
)
def test_client_name_reads_any_header_cleanly(values, expected):
    """client_name decodes a name, and gives None for a missing, repeated or empty one."""
    assert client_name(named(*values)) == expected


def test_client_name_without_a_request():
    """A connection whose handshake never completed has no name."""
    assert client_name(None) is None


@settings(deadline=None)  # A busy shared machine must not fail a case.
@given(st.text())
def test_encoded_names_round_trip(name):
    """Any name encodes to a valid header value and decodes to what was typed."""
    value = encode_name(name)
    assert all(" " <= char <= "~" for char in value)
    cleaned = "".join(
        "\ufffd" if unicodedata.category(c) in ("Cc", "Cs") or c in _BIDI else c
        for c in name
    ).strip()
    expected = cleaned[:39] + "…" if len(cleaned) > 40 else cleaned
    assert client_name(named(value)) == (expected or None)


# What websockets' parser lets through in a header value, read as ISO-8859-1.
HEADER_CHARS = st.sampled_from(
    [chr(c) for c in (9, *range(0x20, 0x7F), *range(0x80, 0x100))]
)


@settings(deadline=None)  # A busy shared machine must not fail a case.
@given(st.text(alphabet=HEADER_CHARS))
def test_client_name_never_raises(value):
    """Whatever header value a client sends, client_name returns a name or None."""
    result = client_name(named(value))
    assert result is None or 0 < len(result) <= 40
