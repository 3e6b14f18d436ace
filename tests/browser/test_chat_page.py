"""The chat page in Chromium: talking, text-only display, reconnection, the proxy."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from playwright.async_api import Browser, Locator, Page, expect
from utils import FACTOR

import wsteach

from .conftest import Jupyter, timeout_ms

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


async def open_chat(browser: Browser, url: str, name: str, errors: list[str]) -> Page:
    """Open the chat page at ``url``, type ``name``, and wait until it connects.

    Uncaught JavaScript errors of the page are appended to ``errors``.
    """
    page = await browser.new_page()
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(url)
    await page.fill("#name", name)
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "open", timeout=timeout_ms(10)
    )
    return page


async def say(page: Page, text: str) -> None:
    """Type ``text`` in the message box and press Enter."""
    await page.fill("#text", text)
    await page.press("#text", "Enter")
    await expect(page.locator("#text")).to_have_value("")


def received(page: Page) -> Locator:
    """The messages a page received from the server, as opposed to sent."""
    return page.locator("#messages li.received")


async def wait_for(condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait until ``condition()`` is true, or fail after ``seconds``."""
    for _ in range(int(seconds * FACTOR / 0.02)):
        if condition():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still not true after {seconds} s: {condition}")


async def test_two_pages_and_a_python_client_share_one_room(browser: Browser) -> None:
    """Each page and the Python client get the others' messages, never their own."""
    errors: list[str] = []
    room = wsteach.Room()
    async with wsteach.start(room.handler, port=0, web=True) as server:
        page_url = f"http://127.0.0.1:{server.port}/"
        ann = await open_chat(browser, page_url, "ann", errors)
        bob = await open_chat(browser, page_url, "bob", errors)
        async with wsteach.connect(server.url, name="python") as python:
            await wait_for(lambda: len(room.connected) == 3)

            await say(ann, "hello from ann")
            await expect(received(bob)).to_have_text(
                ["Someone said: ann: hello from ann"]
            )
            assert await python.recv() == "Someone said: ann: hello from ann"

            await say(bob, "hi ann")
            await expect(received(ann)).to_have_text(["Someone said: bob: hi ann"])
            assert await python.recv() == "Someone said: bob: hi ann"

            await python.send("python: hello pages")
            for page in (ann, bob):
                await expect(received(page).last).to_have_text(
                    "Someone said: python: hello pages"
                )

            # What a page sent shows on its own side, as sent, and never came back.
            await expect(ann.locator("#messages li.sent")).to_have_text(
                ["ann: hello from ann"]
            )
            await expect(received(ann)).to_have_text(
                ["Someone said: bob: hi ann", "Someone said: python: hello pages"]
            )
            await expect(received(bob)).to_have_text(
                [
                    "Someone said: ann: hello from ann",
                    "Someone said: python: hello pages",
                ]
            )
            assert python.received == [
                "Someone said: ann: hello from ann",
                "Someone said: bob: hi ann",
            ]
        assert errors == []


async def test_html_in_a_message_shows_as_text_and_runs_nothing(
    browser: Browser,
) -> None:
    """A message with an <img onerror> tag is displayed literally; no element, no script."""
    errors: list[str] = []
    room = wsteach.Room(prefix="")
    async with wsteach.start(room.handler, port=0, web=True) as server:
        page_url = f"http://127.0.0.1:{server.port}/"
        reader = await open_chat(browser, page_url, "reader", errors)
        writer = await open_chat(browser, page_url, "", errors)
        dialogs: list[str] = []
        for page in (reader, writer):
            page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        async with wsteach.connect(server.url, name="python") as python:
            await wait_for(lambda: len(room.connected) == 3)
            await python.send(XSS)
            await say(writer, XSS)
            await expect(received(reader)).to_have_text([XSS, XSS])
            await expect(writer.locator("#messages li.sent")).to_have_text([XSS])
            # An <img src=x> would fail to load at once and fire onerror: give it
            # the time to, then check that nothing of the sort exists or happened.
            await reader.wait_for_timeout(300)
            for page in (reader, writer):
                assert await page.locator("#messages img").count() == 0
                assert await page.locator("#messages li").last.inner_html() == (
                    "&lt;img src=x onerror=alert(1)&gt;"
                )
            assert dialogs == []
            assert errors == []


async def test_page_reconnects_after_the_server_restarts(browser: Browser) -> None:
    """When the server goes away the page says so, retries, and chats again after a restart."""
    errors: list[str] = []
    room = wsteach.Room()
    server = await wsteach.start(room.handler, port=0, web=True)
    port = server.port
    page = await open_chat(browser, f"http://127.0.0.1:{port}/", "ann", errors)
    status = page.locator("#status")

    await server.stop()
    await expect(status).to_have_attribute("data-state", "closed")
    await expect(status).to_contain_text("retrying")
    await expect(page.locator("#send button")).to_be_disabled()

    room = wsteach.Room()
    server = await wsteach.start(room.handler, host="127.0.0.1", port=port, web=True)
    try:
        await expect(status).to_have_attribute(
            "data-state", "open", timeout=timeout_ms(15)
        )
        async with wsteach.connect(server.url, name="python") as python:
            await wait_for(lambda: len(room.connected) == 2)
            await say(page, "back again")
            assert await python.recv() == "Someone said: ann: back again"
            await python.send("welcome back")
            await expect(received(page)).to_have_text(["Someone said: welcome back"])
    finally:
        await server.stop()
    assert errors == []


async def test_page_works_through_jupyter_server_proxy(
    browser: Browser, jupyter: Jupyter
) -> None:
    """Behind a real jupyter server at {base_url}proxy/<port>/ with a token, the page chats."""
    errors: list[str] = []
    room = wsteach.Room()
    async with wsteach.start(room.handler, port=0, web=True) as server:
        proxied = f"{jupyter.url}proxy/{server.port}/?token={jupyter.token}"
        page = await open_chat(browser, proxied, "ann", errors)
        # The page's WebSocket went through the proxy too, not straight to the
        # port, with Jupyter's login cookie and no token in its URL.
        socket_url = await page.evaluate("url.href")
        assert socket_url == (
            f"ws://{urlsplit(jupyter.url).netloc}{jupyter.base_url}proxy/{server.port}/"
        )
        paths = [c.request.path for c in server.connections]
        assert paths == ["/"] and jupyter.token not in str(server.trace)
        async with wsteach.connect(server.url, name="python") as python:
            await wait_for(lambda: len(room.connected) == 2)
            await say(page, "through the proxy")
            assert await python.recv() == "Someone said: ann: through the proxy"
            await python.send("and back")
            await expect(received(page)).to_have_text(["Someone said: and back"])
        assert errors == []


async def test_page_shows_why_the_server_closed_it_and_does_not_retry(
    browser: Browser,
) -> None:
    """After a 1008 or 1009 close the page shows the code and reason, and stays closed."""
    errors: list[str] = []
    opened: list[str] = []

    async def strict(websocket):
        opened.append("open")
        async for message in websocket:
            if "spam" in message:
                await websocket.close(1008, "too many messages: slow down")

    async with wsteach.start(strict, port=0, web=True, max_size=100) as server:
        page_url = f"http://127.0.0.1:{server.port}/"
        for text, expected in [
            ("spam", "closed by the server (1008: too many messages: slow down)"),
            ("x" * 200, "closed by the server (1009: "),
        ]:
            opened.clear()
            page = await open_chat(browser, page_url, "", errors)
            await say(page, text)
            status = page.locator("#status")
            await expect(status).to_have_attribute("data-state", "final")
            await expect(status).to_contain_text(expected)
            await expect(status).to_contain_text("reload the page to reconnect")
            await expect(page.locator("#send button")).to_be_disabled()
            # Proving that something does not happen takes a wait: three times
            # the first retry delay (0.5 s) of a page that would retry.
            await page.wait_for_timeout(1500)
            assert opened == ["open"]
            await page.close()
    assert errors == []


async def test_page_may_connect_to_its_own_host_only(browser: Browser) -> None:
    """The page's CSP lets it open a WebSocket to its own server, and to no other host."""
    errors: list[str] = []
    async with (
        wsteach.start(wsteach.echo, port=0, web=True) as server,
        wsteach.start(wsteach.echo, host="127.0.0.2", port=0) as other,
    ):
        page = await open_chat(browser, f"http://127.0.0.1:{server.port}/", "", errors)
        outcome = await page.evaluate(
            """(target) => new Promise((resolve) => {
                document.addEventListener("securitypolicyviolation",
                    (e) => resolve(`blocked ${e.violatedDirective} ${e.blockedURI}`));
                try {
                    const ws = new WebSocket(target);
                    ws.onopen = () => resolve("opened");
                } catch (error) {
                    resolve(`threw ${error.name}`);
                }
            })""",
            other.url + "/",
        )
        assert outcome.startswith(("blocked connect-src", "threw SecurityError")), (
            outcome
        )
        assert len(other.connections) == 0
    assert errors == []
