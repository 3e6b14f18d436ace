"""JupyterLab itself in Chromium: a notebook run through the UI, as a student does."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

import pytest
from jupyter_client import BlockingKernelClient
from playwright.async_api import Browser, expect

from .conftest import Jupyter, copy_notebook, timeout_ms

pytestmark = pytest.mark.browser

HERE = Path(__file__).parent

# (notebook, text one of its cells prints). The echo-server notebook of the
# lesson, notebooks/02-echo-server.ipynb, takes the stand-in's place when it exists.
LAB_NOTEBOOKS = [(HERE / "echo-server.ipynb", "Pong: Hello server")]

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


@pytest.mark.parametrize(
    ("notebook", "expected"), LAB_NOTEBOOKS, ids=[n.stem for n, _ in LAB_NOTEBOOKS]
)
async def test_notebook_runs_in_jupyterlab(
    browser: Browser, jupyter: Jupyter, artifacts: Path, notebook: Path, expected: str
) -> None:
    """Run All Cells from JupyterLab's Run menu: the reply shows, no error, Mermaid is SVG."""
    name = copy_notebook(notebook, jupyter)
    page = await browser.new_page(viewport={"width": 1280, "height": 900})
    await page.goto(f"{jupyter.url}lab/tree/{name}?token={jupyter.token}")

    panel = page.locator(".jp-NotebookPanel")
    status = panel.locator(".jp-Notebook-ExecutionIndicator")
    await expect(status).to_have_attribute(
        "data-status", "idle", timeout=timeout_ms(60)
    )

    await page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    await page.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    # Every code cell ran: each prompt shows its execution count, none is [*] or [ ].
    code_cells = panel.locator(".jp-CodeCell")
    count = await code_cells.count()
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
            client.wait_for_ready(timeout=60)
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
