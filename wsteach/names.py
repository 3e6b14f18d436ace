"""The client's name on the wire: how it is encoded, how a server reads it.

A client sends its name in the ``X-Wsteach-Name`` request header, so a
server's trace can label the connection "alice" instead of "client 1". HTTP
headers carry only ASCII safely, so the name travels percent-encoded as UTF-8
(``Łukasz`` is ``%C5%81ukasz``). :func:`encode_name` is the client's side
(:func:`wsteach.connect`, :func:`wsteach.join_class`), :func:`client_name` the
server's (the handlers, the trace, the class board).
"""

from __future__ import annotations

import contextlib
import unicodedata
import urllib.parse

from websockets.http11 import Request

__all__ = ["NAME_HEADER", "NAME_LENGTH", "client_name", "encode_name"]

NAME_HEADER = "X-Wsteach-Name"
"""Request header in which :func:`connect` sends the client's name."""

NAME_LENGTH = 40
"""Longest name :func:`client_name` returns; longer ones are cut, with "…"."""

# Printable ASCII travels as it is, so "alice" reads "alice" on the wire too;
# "%" must be encoded, or a name such as "100%25" would decode to "100%".
_NAME_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def encode_name(name: str) -> str:
    """Return ``name`` as it travels in the ``X-Wsteach-Name`` header.

    UTF-8, percent-encoded: printable ASCII stays as it is, except ``%``;
    anything else (``Ł``, emoji, a newline) becomes ``%XX`` bytes, so every
    name is a valid header value. :func:`client_name` reverses it.
    """
    return urllib.parse.quote(name, safe=_NAME_SAFE)


def client_name(request: Request | None) -> str | None:
    """Return the name a client sent in its ``X-Wsteach-Name`` header, for display.

    Reverses :func:`encode_name`. It never raises, whatever the client sent:

    - no request (the handshake didn't complete), no header, a header sent
      twice (which name would be right?), or a name that is empty once
      decoded: ``None``, and the caller falls back to an address or a number;
    - raw UTF-8 in the header, as clients other than wsteach may send it
      (websockets decodes header bytes as ISO-8859-1): decoded as UTF-8;
    - percent-escapes that aren't UTF-8: the header as it came, undecoded;
    - control characters (newlines, terminal escapes) and bidirectional
      overrides: replaced with ``�``, so a name can't break or disguise a log
      line or a table;
    - longer than :data:`NAME_LENGTH` characters: cut short, ending in ``…``.

    Args:
        request: The opening handshake's request, ``websocket.request``.
    """
    if request is None:
        return None
    values = request.headers.get_all(NAME_HEADER)
    if len(values) != 1:
        return None
    value = values[0]
    with contextlib.suppress(UnicodeError):  # Else keep the ISO-8859-1 reading.
        value = value.encode("latin-1").decode("utf-8")
    try:
        name = urllib.parse.unquote(value, errors="strict")
    except UnicodeDecodeError:
        name = value
    name = "".join(
        "\ufffd"
        if unicodedata.category(char) in ("Cc", "Cs") or char in _BIDI
        else char
        for char in name
    ).strip()
    if not name:
        return None
    if len(name) > NAME_LENGTH:
        name = name[: NAME_LENGTH - 1] + "…"
    return name


# Characters that reorder the text around them: in a name, they could make a
# log line or a table read as something else.
_BIDI = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
