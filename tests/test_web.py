"""wsteach.web: the chat page over plain HTTP, and where Jupyter proxies a port."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from conftest import measured
from rawws import KEY, http_exchange
from serverproc import ServerProcess
from websockets.datastructures import Headers
from websockets.http11 import Request

import wsteach
import wsteach.web
from wsteach.web import content_security_policy, jupyter_base_url, proxy_url

ROOT = Path(__file__).resolve().parents[1]


def get(url: str) -> tuple[int, dict[str, str], bytes]:
    """GET ``url``; return status, headers and body, for errors too."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_public_names() -> None:
    """The module exports exactly its documented names."""
    assert sorted(wsteach.web.__all__) == [
        "FILES",
        "content_security_policy",
        "jupyter_base_url",
        "page",
        "proxy_url",
        "serve_page",
        "wants_websocket",
    ]


async def test_page_and_script_on_the_websocket_port() -> None:
    """GET / and /chat.js answer with the page and its script, text-only CSP included."""
    room = wsteach.Room()
    async with wsteach.start(room.handler, port=0, web=True) as server:
        base = f"http://127.0.0.1:{server.port}"
        status, headers, body = await asyncio.to_thread(get, base + "/")
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert int(headers["Content-Length"]) == len(body)
        assert b'<script src="chat.js"></script>' in body
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self';" in csp
        # The page may talk to its own host only, not to any ws: or wss: URL.
        host = f"127.0.0.1:{server.port}"
        assert f"connect-src 'self' ws://{host} wss://{host};" in csp
        assert "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]

        status, headers, script = await asyncio.to_thread(get, base + "/chat.js")
        assert status == 200
        assert headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert b"textContent" in script
        assert b"innerHTML" not in script

        # The query string doesn't matter: Jupyter appends ?token=… to URLs.
        status, _, same = await asyncio.to_thread(get, base + "/index.html?token=abc")
        assert (status, same) == (200, body)


async def test_unknown_path_is_404_with_a_hint() -> None:
    """A GET for another path gets 404 and says where the page is."""
    async with wsteach.start(wsteach.echo, port=0, web=True) as server:
        status, _, body = await asyncio.to_thread(
            get, f"http://127.0.0.1:{server.port}/favicon.ico"
        )
    assert status == 404
    assert body == b"not found: /favicon.ico\nthe chat page is at /\n"


async def test_websocket_on_the_same_port_still_works() -> None:
    """Serving the page doesn't get in the way of WebSocket handshakes, on any path."""
    room = wsteach.Room()
    async with (
        wsteach.start(room.handler, port=0, web=True) as server,
        wsteach.connect(server.url + "/", name="ann") as ann,
        wsteach.connect(server.url + "/index.html?token=x", name="bob") as bob,
    ):
        await ann.send("hello")
        assert await bob.recv() == "Someone said: hello"


async def test_without_web_a_get_is_refused() -> None:
    """Without web=True a plain GET gets websockets' own 426 answer, not the page."""
    async with wsteach.start(wsteach.echo, port=0) as server:
        status, _, _ = await asyncio.to_thread(get, f"http://127.0.0.1:{server.port}/")
    assert status == 426


def test_cli_serve_broadcast_web_serves_the_page() -> None:
    """`wsteach serve broadcast --web` prints the page's URL and serves the page there."""
    process = subprocess.Popen(
        [sys.executable, "-m", "wsteach", "serve", "broadcast", "--port", "0", "--web"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=measured(),
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline() for _ in range(2)]
        assert lines[1].startswith("chat page: http://"), lines
        page_url = lines[1].removeprefix("chat page: ").strip()
        status, _, body = get(page_url)
        assert status == 200
        assert body == wsteach.web.page()
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0


@pytest.fixture
def no_jupyter(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An environment with no JupyterHub, and an empty Jupyter runtime directory."""
    monkeypatch.delenv("JUPYTERHUB_SERVICE_PREFIX", raising=False)
    monkeypatch.delenv("JPY_PARENT_PID", raising=False)
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path))
    return tmp_path


def write_server_info(runtime_dir: Path, pid: int, info: object) -> None:
    """Write a jpserver-<pid>.json file as jupyter_server does."""
    (runtime_dir / f"jpserver-{pid}.json").write_text(json.dumps(info))


def test_proxy_url_without_jupyter_is_at_the_root(no_jupyter: Path) -> None:
    """With no Jupyter server around, the proxy is at Jupyter's default base URL /."""
    assert proxy_url(7890) == "/proxy/7890/"


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [("/user/ann/", "/user/ann/proxy/7890/"), ("/user/ann", "/user/ann/proxy/7890/")],
)
def test_proxy_url_under_jupyterhub(
    no_jupyter: Path, monkeypatch: pytest.MonkeyPatch, prefix: str, expected: str
) -> None:
    """On Binder (JupyterHub), the service prefix comes first, with or without its /."""
    write_server_info(no_jupyter, os.getppid(), {"base_url": "/other/"})
    monkeypatch.setenv("JUPYTERHUB_SERVICE_PREFIX", prefix)
    assert proxy_url(7890) == expected


def test_proxy_url_from_the_parent_jupyter_server(
    no_jupyter: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The server named by JPY_PARENT_PID gives its base_url; other servers don't count."""
    write_server_info(no_jupyter, 4242, {"base_url": "/lab-a/", "pid": 4242})
    write_server_info(no_jupyter, 4343, {"base_url": "/lab-b", "pid": 4343})
    monkeypatch.setenv("JPY_PARENT_PID", "4343")
    assert proxy_url(8000) == "/lab-b/proxy/8000/"
    assert jupyter_base_url() == "/lab-b/"


def test_proxy_url_from_the_parent_process(no_jupyter: Path) -> None:
    """Without JPY_PARENT_PID, the parent process is taken as the Jupyter server."""
    write_server_info(no_jupyter, os.getppid(), {"base_url": "/parent/"})
    assert proxy_url(7890) == "/parent/proxy/7890/"


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"base_url": ""}'])
def test_proxy_url_with_an_unreadable_info_file(
    no_jupyter: Path, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    """A broken or empty server info file falls back to /, never raises."""
    (no_jupyter / "jpserver-99.json").write_text(content)
    monkeypatch.setenv("JPY_PARENT_PID", "99")
    assert proxy_url(7890) == "/proxy/7890/"


def test_notebook_06_quotes_the_real_script() -> None:
    """Every line of JavaScript that notebook 06 quotes is in chat.js as it stands."""
    notebook = json.loads(
        (ROOT / "notebooks/solutions/06-browser-chat.ipynb").read_text(encoding="utf-8")
    )
    script = wsteach.web.page("chat.js").decode()
    quoted = []
    for cell in notebook["cells"]:
        text = "".join(cell["source"])
        for block in text.split("```javascript\n")[1:]:
            quoted += [line for line in block.split("```")[0].splitlines() if line]
    assert len(quoted) >= 5
    missing = [line for line in quoted if line not in script.splitlines()]
    assert missing == []


def raw_request(*headers: str, path: str = "/") -> bytes:
    """A GET request with exactly these header lines, repeats allowed."""
    return ("\r\n".join([f"GET {path} HTTP/1.1", *headers]) + "\r\n\r\n").encode()


HANDSHAKE = (
    "Connection: Upgrade",
    f"Sec-WebSocket-Key: {KEY}",
    "Sec-WebSocket-Version: 13",
)

# (header lines, HTTP status): the page's and websockets' clean answers.
ODD_REQUESTS = [
    (("Host: a", "Upgrade: websocket", "Upgrade: websocket", *HANDSHAKE), 426),
    (("Host: a", "Upgrade: websocket, h2c", *HANDSHAKE), 426),
    (("Host: a", "Upgrade: WebSocket", "Sec-WebSocket-Key: x", *HANDSHAKE), 400),
    (("Host: a", "Upgrade: h2c", "Connection: Upgrade, HTTP2-Settings"), 200),
    (("Host: a", "Host: b", "Upgrade: h2c", "Upgrade: h2c"), 200),
    (("Host: a;b", "Connection: close", "Connection: close"), 200),
    (("Host: \xe9\xff", "Upgrade:", "X-Wsteach-Name: a", "X-Wsteach-Name: b"), 200),
    ((), 200),
]


async def test_repeated_or_malformed_headers_get_a_clean_answer(caplog) -> None:
    """Repeated Upgrade, Host or other headers get 200, 400 or 426: never 500, never a traceback."""
    caplog.set_level("INFO", logger="websockets")
    async with wsteach.start(wsteach.echo, port=0, web=True) as server:
        for headers, expected in ODD_REQUESTS:
            data = raw_request(*headers).decode().encode("latin-1")
            status, answer, body = await http_exchange(server.port, data)
            assert status == expected, (headers, status, body)
            if status == 200:
                assert body == wsteach.web.page()
                connect = answer["content-security-policy"].split("connect-src ")[1]
                plain_host = (
                    headers.count("Host: a") == 1
                    and len([h for h in headers if h.startswith("Host:")]) == 1
                )
                expected_src = "'self' ws://a wss://a" if plain_host else "'self'"
                assert connect.split(";")[0] == expected_src, headers
    assert [r.message for r in caplog.records if r.levelname == "ERROR"] == []


def test_content_security_policy_names_only_a_plain_host() -> None:
    """Only a single, plain Host header (name or address, optional port) is named."""

    def csp(*hosts: str) -> str:
        headers = Headers([("Host", host) for host in hosts])
        return content_security_policy(Request("/", headers))

    assert "connect-src 'self' ws://[::1]:80 wss://[::1]:80;" in csp("[::1]:80")
    assert "connect-src 'self' ws://lab.example wss://lab.example;" in csp(
        "lab.example"
    )
    for odd in [(), ("a", "b"), ("a b",), ("a;script-src *",), ("*",), ("a,b",)]:
        assert "connect-src 'self';" in csp(*odd), odd


async def test_cli_web_answers_two_upgrade_headers_cleanly() -> None:
    """`wsteach serve broadcast --web` answers two Upgrade headers with 426 and logs no traceback."""
    server = await ServerProcess.start("broadcast", "--port", "0", "--web")
    try:
        request = raw_request(
            "Host: a", "Upgrade: websocket", "Upgrade: websocket", *HANDSHAKE
        )
        status, _, _ = await http_exchange(server.port, request)
        assert status == 426
        status, _, body = await http_exchange(server.port, raw_request("Host: a"))
        assert (status, body) == (200, wsteach.web.page())
    finally:
        assert await server.stop() == 0
    output = "\n".join(server.lines)
    assert "Traceback" not in output and "process_request failed" not in output
