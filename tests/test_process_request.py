"""wsteach.process_request: one chain of process_request hooks, in one order."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from rawws import Raw
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request

import wsteach
from wsteach.limits import Limits
from wsteach.process_request import chain, wants_websocket


class _Connection:
    """Just enough of a ServerConnection for hooks that answer."""

    def respond(self, status, text):
        return (status, text)


def _request(*headers: tuple[str, str]) -> Request:
    return Request("/", Headers(headers))


async def _answer(hook, request):
    response = hook(_Connection(), request)
    return await response if hasattr(response, "__await__") else response


def test_no_hook_is_no_hook_and_one_is_itself():
    """chain() of nothing is None; of one hook (None skipped), that hook untouched."""

    def hook(connection, request):
        return None

    assert chain() is None
    assert chain(None, None) is None
    assert chain(None, hook, None) is hook


async def test_hooks_run_in_order_and_the_first_answer_wins():
    """Sync and async hooks run in the order given until one returns a response."""
    ran = []

    def passes(connection, request):
        ran.append("passes")

    async def answers(connection, request):
        ran.append("answers")
        return connection.respond(HTTPStatus.FORBIDDEN, "no\n")

    def never(connection, request):
        ran.append("never")

    assert await _answer(chain(passes, answers, never), _request()) == (
        HTTPStatus.FORBIDDEN,
        "no\n",
    )
    assert ran == ["passes", "answers"]
    ran.clear()
    assert await _answer(chain(passes, passes), _request()) is None
    assert ran == ["passes", "passes"]


@pytest.mark.parametrize(
    ("upgrade", "wanted"),
    [
        ((), False),
        (("websocket",), True),
        (("h2c, WebSocket",), True),
        (("h2c",), False),
    ],
)
def test_wants_websocket_reads_every_upgrade_token(upgrade, wanted):
    """A request wants a WebSocket when a token of an Upgrade header says so."""
    headers = [("Upgrade", value) for value in upgrade]
    assert wants_websocket(_request(*headers)) is wanted


async def _get_page(port: int) -> int:
    raw = await Raw.connect(port)
    raw.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
    status, _, body = await raw.response()
    await raw.aclose()
    assert status != 200 or b"<html" in body.lower()
    return status


@pytest.mark.parametrize("how", ["start(web=True)", "serve_options(web=True)"])
async def test_a_full_room_serves_its_page_however_the_hooks_are_combined(how):
    """A full Room(max_clients=1) answers GET / with the page, 503 to a WebSocket, both ways."""
    limits = Limits(max_clients=1)
    room = wsteach.Room(limits=limits)
    if how == "start(web=True)":
        started = wsteach.start(
            room.handler, port=0, trace=False, web=True, **limits.serve_options()
        )
    else:
        started = wsteach.start(
            room.handler, port=0, trace=False, **limits.serve_options(web=True)
        )
    async with started as running, connect(running.url):
        with pytest.raises(InvalidStatus) as refused:
            await connect(running.url)
        assert refused.value.response.status_code == 503
        assert await _get_page(running.port) == 200
