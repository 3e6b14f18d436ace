"""The class board in Chromium: live cells, hands, stuck students, text only, the token."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, Page, expect
from test_classboard import serving
from websockets.asyncio.client import connect

import wsteach
from wsteach import join
from wsteach.exercises import echo_server

from .conftest import timeout_ms

pytestmark = pytest.mark.browser

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture(autouse=True)
def _leave_the_class(monkeypatch: pytest.MonkeyPatch):
    yield
    mate = join.current()
    if mate is not None:
        mate.leave()
    join._current = None


async def echo(websocket: Any) -> None:
    print("A client just connected")
    async for message in websocket:
        print("Received message from client: " + message)
        await websocket.send("Pong: " + message)


async def no_reply(websocket: Any) -> None:
    async for _ in websocket:
        pass


async def open_board(browser: Browser, url: str, errors: list[str]) -> Page:
    page = await browser.new_page(viewport={"width": 1280, "height": 720})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: errors.append(f"dialog: {dialog.message}"))
    await page.goto(url)
    await expect(page.locator("#status")).to_have_attribute(
        "data-state", "open", timeout=timeout_ms(10)
    )
    return page


def cell(page: Page, name: str, step: str):
    return page.locator(f'#grid tbody tr[data-name="{name}"] td[data-step="{step}"]')


async def test_the_board_shows_checks_hands_and_stuck_students_live(
    browser: Browser, artifacts: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each check shows within 1 s; hands go up and down; names stay text."""
    errors: list[str] = []
    async with serving() as (classroom, server):
        base = f"http://127.0.0.1:{server.port}"
        refused = await browser.new_page()
        response = await refused.goto(f"{base}/board")
        assert response is not None and response.status == 403
        await refused.close()

        page = await open_board(
            browser, f"{base}/board?token={classroom.token}", errors
        )
        await expect(page.locator("#hands")).to_have_text("no hands up")
        wsteach.join_class(server.url, name="ada")
        async with connect(f"{server.url}/class") as other:
            await other.send(json.dumps({"type": "join", "name": XSS}))
            for _ in range(3):
                await other.send(
                    json.dumps(
                        {
                            "type": "result",
                            "step": "2.3",
                            "result": "failed",
                            "cause": "<b>timeout</b>",
                        }
                    )
                )
            await expect(page.locator("#stuck")).to_have_text(
                f"{XSS}: failed 2.3 3 times", timeout=timeout_ms(2)
            )
            await expect(cell(page, XSS, "2.3")).to_have_text("<b>timeout</b>")

            await echo_server.handler.check(no_reply)
            await expect(cell(page, "ada", "2.2")).to_have_class(
                "failed", timeout=timeout_ms(1)
            )
            await echo_server.handler.check(echo)
            await expect(cell(page, "ada", "2.2")).to_have_class(
                "passed", timeout=timeout_ms(1)
            )
            await expect(cell(page, "ada", "2.2")).to_have_text("✓")
            header = page.locator("#grid thead th", has_text="2.2")
            await expect(header.locator("small")).to_have_text("1/2 ✓")

            wsteach.raise_hand("my server won't start")
            hand = page.locator("#hands li")
            await expect(hand).to_contain_text(
                "ada: my server won't start (since", timeout=timeout_ms(1)
            )
            await expect(page.locator('tr[data-name="ada"]')).to_have_class("hand")
            await page.screenshot(path=artifacts / "class-board.png")
            assert await page.locator("img, b").count() == 0

            wsteach.lower_hand()
            await expect(page.locator("#hands")).to_have_text(
                "no hands up", timeout=timeout_ms(1)
            )
        await expect(page.locator(f'tr[data-name="{XSS}"] th')).to_have_text(
            f"{XSS} (away)"
        )
        export = await page.locator("#export").get_attribute("href")
        assert export == f"board.csv?token={classroom.token}"
        await page.close()
    capsys.readouterr()
    assert errors == []


async def test_the_board_comes_back_after_the_server_restarts(browser: Browser) -> None:
    """The page reconnects by itself and shows the rows the kernels send again."""
    errors: list[str] = []
    async with serving() as (classroom, server):
        port, token = server.port, classroom.token
        page = await open_board(
            browser, f"http://127.0.0.1:{port}/board?token={token}", errors
        )
        mate = wsteach.join_class(server.url, name="ada")
        assert mate is not None
        mate.first_backoff, mate.most_backoff = 0.05, 0.2
        join.report("2.2", "passed")
        await expect(cell(page, "ada", "2.2")).to_have_class("passed")
    await expect(page.locator("#status")).to_have_attribute("data-state", "closed")
    async with serving(token=token, port=port) as (restarted, _):
        await expect(page.locator("#status")).to_have_attribute(
            "data-state", "open", timeout=timeout_ms(10)
        )
        await expect(cell(page, "ada", "2.2")).to_have_class(
            "passed", timeout=timeout_ms(10)
        )
        assert restarted.board.students["ada"].online
    await page.close()
    assert errors == []


async def test_a_real_kernels_check_shows_on_the_board_within_a_second(
    browser: Browser, tmp_path: Path
) -> None:
    """A kernel joined through WSTEACH_CLASS: its check turns its cell green in Chromium within 1 s."""
    from kernel import Kernel
    from test_join import KERNEL_HANDLER

    errors: list[str] = []
    async with serving() as (classroom, server):
        page = await open_board(
            browser,
            f"http://127.0.0.1:{server.port}/board?token={classroom.token}",
            errors,
        )
        env = {"WSTEACH_CLASS": server.url, "WSTEACH_NAME": "grace"}
        kernel = await Kernel.start(tmp_path, env)
        try:
            await kernel.run(KERNEL_HANDLER)
            shown = await kernel.run(
                "import wsteach\n"
                "from wsteach.exercises import echo_server as ex\n"
                "await ex.handler.check(handler)"
            )
            assert "all passed" in shown["stdout"], shown
            await expect(cell(page, "grace", "2.2")).to_have_class(
                "passed", timeout=timeout_ms(1)
            )
            await kernel.run('wsteach.raise_hand("done, what next?")')
            await expect(page.locator("#hands li")).to_contain_text(
                "grace: done, what next?", timeout=timeout_ms(1)
            )
            await kernel.run("wsteach.lower_hand()")
            await expect(page.locator("#hands")).to_have_text(
                "no hands up", timeout=timeout_ms(1)
            )
        finally:
            await kernel.stop()
        await page.close()
    assert errors == []
