"""JupyterLab itself in Chromium: a notebook run through the UI, as a student does."""

from __future__ import annotations

import queue
import re
import time
from pathlib import Path
from urllib.parse import unquote

import nbformat
import pytest
from jupyter_client import BlockingKernelClient
from playwright.async_api import Browser, Page, expect

from .conftest import ROOT, Jupyter, copy_notebook, free_port, timeout_ms

pytestmark = pytest.mark.browser


# (notebook, text one of its cells prints): the echo-server notebook as a
# student has it once every step is written: the solution notebook, without
# its outputs. (The stubs of notebooks/02 run under nbval-lax; the cells after
# a stub need the student's code, so they fail until it is written.)
CHAT_NOTEBOOK = ROOT / "notebooks/solutions/06-browser-chat.ipynb"
LAB_NOTEBOOKS = [
    (ROOT / "notebooks/solutions/02-echo-server.ipynb", "Pong: Hello server")
]


def written_by_a_student(solution: Path, folder: Path) -> Path:
    """The solution notebook without outputs or instructor cells, saved in ``folder``."""
    notebook = nbformat.read(solution, as_version=4)
    notebook.cells = [
        cell
        for cell in notebook.cells
        if "instructor" not in cell.get("metadata", {}).get("tags", [])
    ]
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    path = folder / solution.name
    nbformat.write(notebook, path)
    return path


ERROR_OUTPUT = (
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"], '
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.error"]'
)
MERMAID_SVG = (
    '.jp-RenderedMermaid svg, .jp-RenderedMermaid img[src^="data:image/svg+xml"]'
)
TEXT_OUTPUT = (
    '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stdout"], '
    '.jp-OutputArea-output[data-mime-type="text/plain"]'
)


async def open_notebook(browser: Browser, jupyter: Jupyter, name: str) -> Page:
    """Open notebook ``name`` alone in JupyterLab and wait until its kernel is idle.

    ``?reset`` starts from an empty workspace, so notebooks opened by earlier
    tests don't come back. The status bar, not the toolbar, says when the kernel
    is really ready: a Run command given while it is "Initializing" does nothing.
    """
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{jupyter.url}lab/tree/{name}?reset&token={jupyter.token}")
    kernel_idle = page.locator(
        ".jp-StatusBar-TextItem", has_text=re.compile(r"\| Idle$")
    )
    await expect(kernel_idle).to_be_visible(timeout=timeout_ms(60))
    return page


@pytest.mark.parametrize(
    ("notebook", "expected"), LAB_NOTEBOOKS, ids=[n.stem for n, _ in LAB_NOTEBOOKS]
)
async def test_notebook_runs_in_jupyterlab(
    browser: Browser,
    jupyter: Jupyter,
    artifacts: Path,
    tmp_path: Path,
    notebook: Path,
    expected: str,
) -> None:
    """Run All Cells from JupyterLab's Run menu: the reply shows, no error, Mermaid is SVG."""
    written = written_by_a_student(notebook, tmp_path)
    # From the file, not the page: JupyterLab adds cells to the page as it
    # renders them, so the page may not have them all yet.
    count = sum(
        cell.cell_type == "code" for cell in nbformat.read(written, as_version=4).cells
    )
    name = copy_notebook(written, jupyter, port=free_port())
    page = await open_notebook(browser, jupyter, name)
    panel = page.locator(".jp-NotebookPanel")
    status = panel.locator(".jp-Notebook-ExecutionIndicator")

    # Select the first cell, as a click does: the Run menu acts on this notebook.
    await panel.locator(".jp-Cell .jp-InputArea-prompt").first.click()
    await run_menu(page, "Run All Cells")

    # Every code cell ran: each prompt shows its execution count, none is [*] or [ ].
    assert count > 0
    await expect(panel.locator(".jp-InputArea-prompt", has_text="*")).to_have_count(
        0, timeout=timeout_ms(60)
    )
    prompts = panel.locator(".jp-CodeCell .jp-InputArea-prompt")
    await expect(prompts).to_have_text(
        [f"[{n}]:" for n in range(1, count + 1)], timeout=timeout_ms(60)
    )
    await expect(status).to_have_attribute(
        "data-status", "idle", timeout=timeout_ms(30)
    )

    # JupyterLab renders a Mermaid diagram to SVG, shown inline or as an SVG image;
    # a diagram that fails to parse shows an error message instead.
    diagram = panel.locator(MERMAID_SVG).first
    await expect(diagram).to_be_visible(timeout=timeout_ms(30))
    await diagram.scroll_into_view_if_needed()
    if await diagram.evaluate("e => e.tagName") == "IMG":
        assert await diagram.evaluate("img => img.complete && img.naturalWidth > 0")
        svg = unquote((await diagram.get_attribute("src")).split(",", 1)[1])
        assert "<svg" in svg
    await page.screenshot(path=artifacts / f"jupyterlab-{notebook.stem}.png")

    await expect(panel.locator(TEXT_OUTPUT, has_text=expected).first).to_be_visible()
    errors = await panel.locator(ERROR_OUTPUT).all_inner_texts()
    assert errors == [], "\n".join(errors)


def wait_until_ready(client: BlockingKernelClient, timeout: float) -> None:
    """Wait until the kernel answers kernel_info and its iopub channel delivers.

    Like ``client.wait_for_ready``, but without its heartbeat check, which takes
    a kernel that is only slow to answer on a busy machine for a dead one.
    """
    deadline = time.monotonic() + timeout
    while True:
        client.kernel_info()
        try:
            client.get_shell_msg(timeout=1)
            client.get_iopub_msg(timeout=1)
            return
        except queue.Empty:
            assert time.monotonic() < deadline, f"no kernel_info reply in {timeout} s"


def test_proxy_url_in_a_kernel_of_a_jupyter_server(jupyter: Jupyter) -> None:
    """A kernel started by a Jupyter server with base URL /jupyter/ gets /jupyter/proxy/PORT/."""
    kernel = jupyter.api("POST", "api/kernels")
    try:
        client = BlockingKernelClient(
            connection_file=str(jupyter.runtime_dir / f"kernel-{kernel['id']}.json")
        )
        client.load_connection_file()
        client.start_channels()
        try:
            wait_until_ready(client, timeout=60)
            printed: list[str] = []

            def keep(message: dict) -> None:
                if message["msg_type"] == "stream":
                    printed.append(message["content"]["text"])

            reply = client.execute_interactive(
                "import wsteach.web\nprint(wsteach.web.proxy_url(7890))",
                output_hook=keep,
                timeout=60,
            )
        finally:
            client.stop_channels()
    finally:
        jupyter.api("DELETE", f"api/kernels/{kernel['id']}")
    assert reply["content"]["status"] == "ok"
    assert "".join(printed) == "/jupyter/proxy/7890/\n"


async def run_menu(page: Page, item: str) -> None:
    """Click JupyterLab's Run menu, then ``item`` in it."""
    await page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    label = page.locator(".lm-Menu-itemLabel").get_by_text(item, exact=True)
    await page.locator(".lm-Menu .lm-Menu-item", has=label).click()


async def test_browser_chat_notebook_in_jupyterlab(
    browser: Browser, jupyter: Jupyter, artifacts: Path
) -> None:
    """Notebook 06 in JupyterLab: its two chat windows load through the proxy and chat."""
    notebook = nbformat.read(CHAT_NOTEBOOK, as_version=4)
    port = free_port()
    for cell in notebook.cells:
        if cell.cell_type == "code":
            cell.source = cell.source.replace("PORT = 7890", f"PORT = {port}")
            cell.outputs = []
            cell.execution_count = None
    nbformat.write(notebook, jupyter.root_dir / CHAT_NOTEBOOK.name)

    page = await open_notebook(browser, jupyter, CHAT_NOTEBOOK.name)
    panel = page.locator(".jp-NotebookPanel")
    status = panel.locator(".jp-Notebook-ExecutionIndicator")

    # The flowchart of why the proxy is needed renders (a Mermaid syntax error wouldn't).
    flowchart = panel.locator(".jp-MarkdownCell").locator(MERMAID_SVG).first
    await expect(flowchart).to_be_attached(timeout=timeout_ms(30))

    # Run the cells up to the two windows, as a student does, and stop there.
    python_cell = panel.locator(
        ".jp-CodeCell", has_text="python = await wsteach.connect"
    )
    await python_cell.locator(".jp-InputArea-prompt").click()
    await run_menu(page, "Run All Above Selected Cell")
    windows = panel.locator(".jp-OutputArea-output iframe")
    await expect(windows).to_have_count(2, timeout=timeout_ms(30))
    assert await windows.first.get_attribute("src") == (
        f"{jupyter.base_url}proxy/{port}/"
    )
    ann, bob = (panel.frame_locator("iframe").nth(n) for n in (0, 1))
    for window in (ann, bob):
        await expect(window.locator("#status")).to_have_attribute(
            "data-state", "open", timeout=timeout_ms(15)
        )
    await ann.locator("#name").fill("ann")
    await ann.locator("#text").fill("hi bob")
    await ann.locator("#text").press("Enter")
    await expect(bob.locator("li.received")).to_have_text(["ann: hi bob"])
    await windows.first.evaluate("frame => frame.scrollIntoView({block: 'center'})")
    await page.screenshot(path=artifacts / "jupyterlab-06-browser-chat.png")

    # The Python client joins: both windows get what it sends.
    await python_cell.locator(".jp-InputArea-prompt").click()
    await run_menu(page, "Run Selected Cell")
    hello = "python: hello, browsers!"
    for window in (ann, bob):
        await expect(window.locator("li.received").last).to_have_text(hello)
    await ann.locator("#text").fill("hi python")
    await ann.locator("#text").press("Enter")
    await expect(bob.locator("li.received").last).to_have_text("ann: hi python")

    # The rest: what Python received, HTML as text, the server stopped and restarted.
    received_cell = panel.locator(".jp-CodeCell", has_text="python.received")
    await received_cell.locator(".jp-InputArea-prompt").click()
    await run_menu(page, "Run Selected Cell and All Below")
    await expect(panel.locator(".jp-InputArea-prompt", has_text="*")).to_have_count(
        0, timeout=timeout_ms(60)
    )
    await expect(status).to_have_attribute(
        "data-status", "idle", timeout=timeout_ms(30)
    )
    prompts = await panel.locator(".jp-CodeCell .jp-InputArea-prompt").all_inner_texts()
    assert "[ ]:" not in prompts
    errors = await panel.locator(ERROR_OUTPUT).all_inner_texts()
    assert errors == [], "\n".join(errors)
    await expect(
        received_cell.locator(TEXT_OUTPUT, has_text="['ann: hi python']")
    ).to_be_visible()
    html = "<img src=x onerror=alert(1)>"
    await expect(ann.locator("li.received")).to_have_text([hello, html])
    await expect(bob.locator("li.received")).to_have_text(
        ["ann: hi bob", hello, "ann: hi python", html]
    )
    for window in (ann, bob):
        assert await window.locator("#messages img").count() == 0
