"""Traces in JupyterLab: any text renders as a Mermaid diagram, the table one click away."""

from __future__ import annotations

import random
import re
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from playwright.async_api import Browser, Page, expect

import wsteach
from wsteach.trace import SERVER, Event, Trace

from .conftest import Jupyter, timeout_ms
from .test_jupyterlab import open_notebook

pytestmark = pytest.mark.browser

HARD = [
    "I'm here; #1",
    "say \"hi\" and 'bye'",
    "a --> b -) c ->> d --x e",
    "<script>alert(1)</script>",
    "two\nlines\r\nand a\ttab",
    "emoji 😀🎉 👨‍👩‍👧 and Łukasz",
    "%%{init: {'theme': 'dark'}}%%",
    "style x:y#z; classDef a:b#c;",
    "&lt; &amp; #35; ﬂ°°1¶ß <br> end",
    "`code` {braces} [brackets] ::: ;;",
    "x" * 10_000,
]
NAMES = ["server", "I'm; #1", "<b>bold</b>", "Łukasz 😀", "end"]
# Characters that mean something to Mermaid, Markdown, HTML or a terminal,
# and some of every kind of script, for the random diagrams.
ALPHABET = list("'\";#:%{}<>&-`\\,.|/()[]=*+~!? \n\r\taZ09éŁ李😀\u200d\u202e\u0301ﬂ°¶ß")


def normalized(text: str) -> str:
    """Text with each run of whitespace as one space, as an SVG draws it."""
    return " ".join(text.split())


async def real_trace() -> Trace:
    """The trace of a real server that answered hard messages from hard names."""

    async def pong(websocket):
        async for message in websocket:
            await websocket.send("Pong: " + message)

    async with wsteach.start(pong, port=0) as server:
        async with wsteach.crowd(server.url, *NAMES) as clients:
            for client, text in zip(clients * 3, HARD, strict=False):
                await client.send(text)
                await client.recv()
        return server.trace


def random_trace(seed: int) -> Trace:
    """A trace of random events, with random names and messages."""
    chance = random.Random(seed)

    def text() -> str:
        return "".join(chance.choices(ALPHABET, k=chance.randint(1, 30)))

    names = [text().strip() or "x" for _ in range(3)]
    names = [n if n != SERVER else "x" for n in dict.fromkeys(names)]
    trace = Trace()
    for _ in range(8):
        name = chance.choice(names)
        kind = chance.choice(["connect", "message", "close", "disconnect"])
        sender, receiver = chance.choice([(name, SERVER), (SERVER, name)])
        trace.events.append(Event(sender, receiver, text(), kind))
    return trace


def shown_texts(trace: Trace) -> list[str]:
    """What the diagram must show: labels, then each event's text."""
    events = list(trace.events)[-60:]
    return [
        *trace.participants,
        *(
            f"{e.sender} {e.what}" if e.kind in ("connect", "disconnect") else e.what
            for e in events
        ),
    ]


async def svg_text(page: Page, figure) -> str:
    """The text an SVG image of a rendered diagram draws."""
    source = await figure.locator("img").get_attribute("src")
    svg = unquote(source.split(",", 1)[1])
    return await page.evaluate(
        """(svg) => new DOMParser().parseFromString(svg, "image/svg+xml")
            .documentElement.textContent""",
        svg,
    )


async def test_any_text_in_a_trace_renders_in_jupyterlab(
    browser: Browser, jupyter: Jupyter, artifacts: Path
) -> None:
    """Traces of quotes, ;, #, -->, <script>, newlines, emoji and 10 kB render, no Syntax error."""
    traces = [await real_trace(), *(random_trace(seed) for seed in range(20))]
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3",
        "language": "python",
    }
    for trace in traces:
        cell = nbformat.v4.new_code_cell("server.show()")
        cell.outputs = [
            nbformat.v4.new_output("display_data", data=trace._repr_mimebundle_())
        ]
        notebook.cells.append(cell)
    name = "traces.ipynb"
    nbformat.write(notebook, jupyter.root_dir / name)

    page = await open_notebook(browser, jupyter, name)
    panel = page.locator(".jp-NotebookPanel")
    diagrams = panel.locator(".jp-RenderedMermaid")
    await expect(diagrams).to_have_count(len(traces), timeout=timeout_ms(60))
    await expect(panel.locator(".jp-RenderedMermaid figure img")).to_have_count(
        len(traces), timeout=timeout_ms(60)
    )
    assert await panel.locator(".jp-RenderedMermaid.jp-mod-warning").count() == 0
    assert "Syntax error" not in await panel.inner_text()
    await diagrams.first.scroll_into_view_if_needed()
    await page.screenshot(path=artifacts / "jupyterlab-trace-hard-text.png")

    # Every label and message is drawn as it was, character for character.
    for n, trace in enumerate(traces):
        drawn = normalized(await svg_text(page, diagrams.nth(n)))
        for text in shown_texts(trace):
            assert normalized(text) in drawn, (n, text)

    # The same events as a table, one click away.
    output = panel.locator(".jp-OutputArea-output").first
    table = output.locator("details pre")
    await expect(table).to_be_hidden()
    await output.locator("summary", has_text="as a table").click()
    await expect(table).to_be_visible()
    assert (await table.inner_text()).rstrip("\n") == traces[0].table()
    assert re.search(r"I'm here; #1", await table.inner_text())
