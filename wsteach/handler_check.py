"""Check a connection handler before serving it, and explain what is wrong."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

__all__ = ["check_handler", "handler_name"]


def handler_name(handler: Callable[..., Any]) -> str:
    """Return a readable name for a handler: ``echo``, ``Room.handler``…"""
    while isinstance(handler, functools.partial):
        handler = handler.func
    name = getattr(handler, "__qualname__", None) or type(handler).__name__
    return name.split("<locals>.")[-1]


def _def_name(name: str) -> str:
    """The name to put after ``async def`` in a suggested fix."""
    short = name.split(".")[-1]
    return short if short.isidentifier() else "handler"


def _is_async(handler: Callable[..., Any]) -> bool:
    while isinstance(handler, functools.partial):
        handler = handler.func
    if inspect.iscoroutinefunction(handler):
        return True
    call = getattr(handler, "__call__", None)  # noqa: B004 - objects with async __call__
    return inspect.iscoroutinefunction(call)


def check_handler(handler: Any) -> None:
    """Raise :exc:`TypeError` with a plain explanation unless ``handler`` can serve.

    A handler must be an ``async def`` function (or method) that takes exactly one
    argument, the connection. Two parameters is the ``(websocket, path)`` signature
    of the legacy implementation: ``path`` was deprecated in websockets 13.0, and
    the new implementation, which calls ``handler(websocket)``, became the
    default in 14.0.
    """
    name = handler_name(handler)
    if not callable(handler):
        raise TypeError(
            f"the handler must be an async function, got {type(handler).__name__} "
            f"{handler!r}\n"
            "pass the function itself, without calling it: start(echo), not start(echo())"
        )
    if not _is_async(handler):
        raise TypeError(
            f"handler {name} is a plain function, but a handler must be defined with "
            "'async def'\n"
            "websockets calls it once per client and awaits it while the client is "
            "connected; write: async def " + _def_name(name) + "(websocket):"
        )
    try:
        signature = inspect.signature(handler)
    except (TypeError, ValueError):  # No signature to read: let websockets call it.
        return
    positional = [
        p
        for p in signature.parameters.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    required = [p for p in positional if p.default is p.empty]
    takes_varargs = any(
        p.kind is p.VAR_POSITIONAL for p in signature.parameters.values()
    )
    short = _def_name(name)
    if len(required) == 2:
        first, second = (p.name for p in required)
        raise TypeError(
            f"handler {name} takes two parameters ({first}, {second}), "
            "but websockets calls a handler with one: the connection "
            "(the path argument was deprecated in websockets 13.0, and the new "
            "implementation, without it, became the default in 14.0)\n"
            f"fix: async def {short}({first}):\n"
            f"if you need the path, it is {first}.request.path"
        )
    if len(required) > 2:
        raise TypeError(
            f"handler {name} takes {len(required)} parameters, "
            "but websockets calls it with one: the connection\n"
            f"fix: async def {short}(websocket):"
        )
    if not required and not positional and not takes_varargs:
        raise TypeError(
            f"handler {name} takes no parameters, "
            "but websockets calls it with one: the connection\n"
            f"fix: async def {short}(websocket):"
        )
