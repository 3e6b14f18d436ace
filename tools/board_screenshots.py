"""Take the instructor guide's screenshots of the class board, in a real Chromium.

A real :class:`wsteach.classboard.ClassRoom` on a free port, a handful of
students played by real clients on ``/class`` (as :mod:`wsteach.join`
speaks), and the board page in the Chromium that ``tools/find_browser.py``
finds. Writes ``docs/instructors/class-board.png`` (the whole board) and
``class-board-hands.png`` (the hands and stuck panels).

Usage: ``python tools/board_screenshots.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from playwright.async_api import async_playwright, expect
from websockets.asyncio.client import connect

import wsteach
from wsteach.classboard import ClassRoom

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))

import find_browser  # noqa: E402 - tools/ is not a package

STEPS = ["0.1", "1.1", "1.2", "1.3", "2.1", "2.2", "2.3", "2.4", "2.5", "2.6"]
# name: (steps passed in order, then the failing step's cause, hand)
CLASS = {
    "Ada": (10, "", None),
    "Alan": (6, "no reply", None),
    "Barbara": (7, "", None),
    "Edsger": (5, "returned early", "my server won't start"),
    "Grace": (9, "", None),
    "Katherine": (8, "missing prefix", None),
    "Linus": (4, "send not awaited", None),
    "Margaret": (10, "", None),
}


async def play(url: str, name: str, passed: int, cause: str, hand: str | None) -> None:
    async with connect(url) as websocket:
        await websocket.send(json.dumps({"type": "join", "name": name}))
        for step in STEPS[:passed]:
            result = {"type": "result", "step": step, "result": "passed"}
            await websocket.send(json.dumps(result))
        if cause and passed < len(STEPS):
            step = STEPS[passed]
            fails = 3 if name == "Linus" else 1
            for _ in range(fails):
                await websocket.send(
                    json.dumps(
                        {
                            "type": "result",
                            "step": step,
                            "result": "failed",
                            "cause": cause,
                        }
                    )
                )
            await websocket.send(
                json.dumps({"type": "result", "step": step, "result": "hint"})
            )
        if hand:
            await websocket.send(json.dumps({"type": "hand", "text": hand}))
        await asyncio.Event().wait()  # Stay online until cancelled.


async def main(out: Path) -> None:
    classroom = ClassRoom(limits=wsteach.Limits(rate=None))
    hooks = classroom.limits.serve_options(pages=classroom.process_request)
    async with wsteach.start(classroom.handler, port=0, trace=False, **hooks) as server:
        url = f"{server.url}/class"
        students = [
            asyncio.create_task(play(url, name, *plan)) for name, plan in CLASS.items()
        ]
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=find_browser.find().path,
                args=["--no-sandbox", "--disable-gpu"],
            )
            page = await browser.new_page(viewport={"width": 1280, "height": 640})
            await page.goto(
                f"http://127.0.0.1:{server.port}/board?token={classroom.token}"
            )
            await expect(page.locator("#grid tbody tr")).to_have_count(len(CLASS))
            await page.wait_for_timeout(300)  # Let the last update draw.
            await page.screenshot(path=out / "class-board.png")
            await page.locator(".panels").screenshot(path=out / "class-board-hands.png")
            await browser.close()
        for student in students:
            student.cancel()
        await asyncio.gather(*students, return_exceptions=True)
    print(f"wrote {out / 'class-board.png'} and {out / 'class-board-hands.png'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "instructors")
    asyncio.run(main(parser.parse_args().out))
