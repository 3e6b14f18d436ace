"""The browser chat page, served by the WebSocket server itself.

:func:`serve_page` is a ``process_request`` hook for
:func:`websockets.asyncio.server.serve`: a plain HTTP GET (no ``Upgrade:
websocket`` header) gets the page, ``chat.html``, or its script, ``chat.js``; a
WebSocket handshake goes on as usual. The page builds its WebSocket URL from its
own address, so it works both at ``http://localhost:7890/`` and behind
jupyter-server-proxy at ``…/proxy/7890/``.

:func:`proxy_url` says where the browser finds a server of this kernel through
jupyter-server-proxy, locally and on Binder.
"""

from __future__ import annotations

import email.utils
import functools
import json
import os
import re
from http import HTTPStatus
from importlib import resources

from websockets.asyncio.server import ServerConnection
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from ..process_request import wants_websocket

__all__ = [
    "FILES",
    "content_security_policy",
    "jupyter_base_url",
    "page",
    "proxy_url",
    "serve_page",
    "wants_websocket",
]

FILES = {
    "/": ("chat.html", "text/html; charset=utf-8"),
    "/index.html": ("chat.html", "text/html; charset=utf-8"),
    "/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
}
"""What :func:`serve_page` answers to a GET: path → (file, content type)."""

# The page runs only its own script and talks only to its own server. Inline
# scripts are refused, so even if text got into the page as HTML, it couldn't run.
# connect-src: 'self' covers ws: and wss: to the page's own host in browsers
# that follow CSP level 3 (all current ones); content_security_policy() adds
# that host's ws:// and wss:// by name for older ones.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'"
)

# A Host header that is a host name or address, with an optional port: nothing
# that could end the directive (";", ",", spaces) or add a source.
_HOST = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


@functools.cache
def page(name: str = "chat.html") -> bytes:
    """Return one of the page's files, ``chat.html`` or ``chat.js``, as bytes."""
    return resources.files(__package__).joinpath(name).read_bytes()


def content_security_policy(request: Request) -> str:
    """Return the page's Content-Security-Policy for this request.

    The page may connect only to the host it came from: ``'self'``, and the
    ``ws://`` and ``wss://`` URLs of the ``Host`` header when there is exactly
    one and it is a plain host (and port). Anything else in ``Host`` is left out.
    """
    hosts = request.headers.get_all("Host")
    if len(hosts) == 1 and _HOST.fullmatch(hosts[0]):
        host = hosts[0]
        return CONTENT_SECURITY_POLICY.replace(
            "connect-src 'self'", f"connect-src 'self' ws://{host} wss://{host}"
        )
    return CONTENT_SECURITY_POLICY


def serve_page(connection: ServerConnection, request: Request) -> Response | None:
    """Answer plain HTTP GET requests with the chat page; let WebSockets through.

    ``/`` and ``/index.html`` get the page, ``/chat.js`` its script, anything
    else 404. The query string is ignored, so ``/?token=…`` (how Jupyter passes
    its token) gets the page too. A request with ``websocket`` in an
    ``Upgrade`` header goes on to websockets' handshake, which answers a
    malformed one (two ``Upgrade`` headers, say) with 400 or 426; other
    repeated headers don't matter to the page. It never raises.
    """
    if wants_websocket(request):
        return None
    path = request.path.split("?", 1)[0]
    if path not in FILES:
        return connection.respond(
            HTTPStatus.NOT_FOUND, f"not found: {path}\nthe chat page is at /\n"
        )
    name, content_type = FILES[path]
    body = page(name)
    headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Content-Type", content_type),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("Content-Security-Policy", content_security_policy(request)),
            ("X-Content-Type-Options", "nosniff"),
            ("Connection", "close"),
        ]
    )
    return Response(HTTPStatus.OK.value, HTTPStatus.OK.phrase, headers, body)


def jupyter_base_url() -> str:
    """Return the base URL of the Jupyter server this kernel belongs to.

    In order:

    - ``JUPYTERHUB_SERVICE_PREFIX``, which JupyterHub (and so Binder) sets for
      the single-user server and its kernels, such as ``/user/alice/``;
    - the ``base_url`` in the ``jpserver-<pid>.json`` file that the Jupyter
      server which started this kernel wrote in the Jupyter runtime directory
      (its pid comes from ``JPY_PARENT_PID``, which jupyter_client sets for the
      kernel, else from the parent process);
    - ``/``, Jupyter's default, when neither is there (a plain Python process,
      or nbclient running a notebook without a Jupyter server).

    Always ends with ``/``.
    """
    prefix = os.environ.get("JUPYTERHUB_SERVICE_PREFIX")
    if prefix:
        return prefix if prefix.endswith("/") else prefix + "/"
    from jupyter_core.paths import jupyter_runtime_dir

    pid = os.environ.get("JPY_PARENT_PID") or str(os.getppid())
    info_file = os.path.join(jupyter_runtime_dir(), f"jpserver-{pid}.json")
    try:
        with open(info_file, encoding="utf-8") as file:
            base_url = json.load(file).get("base_url") or "/"
    except (OSError, ValueError, AttributeError):
        return "/"
    return base_url if base_url.endswith("/") else base_url + "/"


def proxy_url(port: int) -> str:
    """Return the path where the browser reaches ``port`` through Jupyter.

    jupyter-server-proxy, installed with the kit, forwards
    ``{base_url}proxy/{port}/…`` on the Jupyter server to ``localhost:{port}``,
    WebSockets included. On Binder that is the only way in: the browser can
    reach the Jupyter server, and nothing else in the container.

    The result is a path such as ``/proxy/7890/`` or
    ``/user/alice/proxy/7890/``, not a full URL: the browser resolves it
    against the JupyterLab page, whatever its host, port and scheme. See
    :func:`jupyter_base_url` for where the base URL comes from.
    """
    return f"{jupyter_base_url()}proxy/{port}/"
