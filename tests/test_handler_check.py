"""Handlers are checked before serving, with messages that say how to fix them."""

from __future__ import annotations

import functools

import pytest

from wsteach.handler_check import check_handler, handler_name


async def good(websocket):
    pass


async def old_style(websocket, path):
    pass


async def three(websocket, path, extra):
    pass


async def none():
    pass


async def optional_second(websocket, path=None):
    pass


async def varargs(*args):
    pass


def plain(websocket):
    pass


class AsyncCallable:
    async def __call__(self, websocket):
        pass


def test_accepts_one_parameter_async_function():
    """An async def with one parameter is accepted."""
    check_handler(good)
    check_handler(optional_second)
    check_handler(varargs)
    check_handler(AsyncCallable())
    check_handler(functools.partial(three, path="/", extra=1))


def test_refuses_two_parameters_with_the_fix():
    """The video's (websocket, path) handler is refused with the fix and where path went."""
    with pytest.raises(TypeError) as info:
        check_handler(old_style)
    message = str(info.value)
    assert "takes two parameters (websocket, path)" in message
    assert "deprecated in websockets 13.0" in message
    assert "became the default in 14.0" in message
    assert "async def old_style(websocket):" in message
    assert "websocket.request.path" in message


def test_refuses_plain_function():
    """A plain def is refused and the message says async def."""
    with pytest.raises(TypeError, match="must be defined with 'async def'"):
        check_handler(plain)


def test_refuses_lambda_with_a_usable_name():
    """A lambda's fix suggests a real function name."""
    with pytest.raises(TypeError, match=r"async def handler\(websocket\):"):
        check_handler(lambda websocket: None)


def test_refuses_wrong_parameter_counts():
    """Zero or three parameters are refused."""
    with pytest.raises(TypeError, match="takes no parameters"):
        check_handler(none)
    with pytest.raises(TypeError, match="takes 3 parameters"):
        check_handler(three)


def test_refuses_a_called_handler():
    """Passing echo() instead of echo explains the difference."""
    coroutine = good(None)
    try:
        with pytest.raises(TypeError, match=r"start\(echo\), not start\(echo\(\)\)"):
            check_handler(coroutine)
    finally:
        coroutine.close()


def test_handler_name():
    """Names are short and readable."""
    assert handler_name(good) == "good"
    assert handler_name(functools.partial(good)) == "good"
    assert handler_name(AsyncCallable()) == "AsyncCallable"


def test_a_handler_whose_signature_cant_be_read_is_served() -> None:
    """An async callable without a readable signature passes: websockets calls it as it is."""

    class Odd:
        __signature__ = "not a signature"  # inspect.signature raises TypeError.

        async def __call__(self, websocket):
            pass

    assert check_handler(Odd()) is None
