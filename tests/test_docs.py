"""The README and docs/ say what the kit really does.

- Relative links in the README, docs/ and the notebooks lead to files that
  exist, and to headings that exist in Markdown files.
- The instructor guide's schedule matches the first cell of each solution
  notebook: title, minutes, objectives.
- Every ``--flag`` the guide mentions is an option of ``wsteach serve``.
- The README's first server and the setup page's check run in a real kernel
  and print what the pages say they print.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from test_common_problems import Kernel, quote_matches

from wsteach import cli

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
GUIDE = ROOT / "docs" / "instructors" / "guide.md"
SETUP = ROOT / "docs" / "learners" / "setup.md"
SOLUTIONS = ROOT / "notebooks" / "solutions"

FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


# Links ---------------------------------------------------------------------


def markdown_of(path: Path) -> str:
    """The Markdown text of a .md file, or of a notebook's markdown cells."""
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
        return "\n\n".join(
            "".join(cell["source"])
            if isinstance(cell["source"], list)
            else cell["source"]
            for cell in cells
            if cell["cell_type"] == "markdown"
        )
    return path.read_text(encoding="utf-8")


def links_in(markdown: str) -> list[str]:
    """Link targets in prose, leaving out code blocks, code spans and comments."""
    prose = CODE_SPAN.sub("", FENCE.sub("", COMMENT.sub("", markdown)))
    return LINK.findall(prose)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: ``## 3. The port`` → ``3-the-port``."""
    text = CODE_SPAN.sub(lambda span: span.group()[1:-1], heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link's text only
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors_of(markdown: str) -> set[str]:
    """Every heading anchor in a Markdown text, with GitHub's -1, -2 for repeats."""
    seen: dict[str, int] = {}
    anchors = set()
    for heading in HEADING.findall(FENCE.sub("", markdown)):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        anchors.add(base if count == 0 else f"{base}-{count}")
    return anchors


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    """The relative links in ``path`` that lead nowhere, with the reason."""
    broken = []
    for target in links_in(markdown_of(path)):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
            continue  # https:, mailto:: not checked here, no network in tests
        file_part, _, anchor = target.partition("#")
        file_part = file_part.split("?", 1)[0]
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file {linked.relative_to(root)}")
        elif (
            anchor
            and linked.suffix == ".md"
            and anchor not in anchors_of(linked.read_text(encoding="utf-8"))
        ):
            broken.append(f"{target}: no heading #{anchor} in {linked.name}")
    return broken


def documents() -> list[Path]:
    found = [README, *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted(
        path
        for path in (ROOT / "notebooks").rglob("*.ipynb")
        if ".ipynb_checkpoints" not in path.parts
    )
    return found


@pytest.mark.parametrize("path", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(path: Path) -> None:
    """Every relative link leads to a file that exists (and a heading, in .md)."""
    assert broken_links(path) == []


def test_link_checker_finds_dead_links(tmp_path: Path) -> None:
    """Missing files and headings are reported; code, comments, URLs are not."""
    (tmp_path / "other.md").write_text("# Other page\n\n## A `code` heading\n")
    page = tmp_path / "page.md"
    page.write_text(
        "# Title\n[ok](other.md#a-code-heading) [self](#title) [web](https://x.org)\n"
        "[gone](missing.md) [bad anchor](other.md#nope) [bad self](#nope)\n"
        "`[in code](nowhere.md)` <!-- [hidden](nowhere.md) -->\n"
        "```\n[fenced](nowhere.md)\n```\n"
    )
    assert broken_links(page, root=tmp_path) == [
        "missing.md: no such file missing.md",
        "other.md#nope: no heading #nope in other.md",
        "#nope: no heading #nope in page.md",
    ]


def test_slugs_follow_github() -> None:
    """Anchors are GitHub's: lowercase, punctuation dropped, spaces as hyphens."""
    assert slug("2. asyncio.run or run_until_complete in a notebook") == (
        "2-asynciorun-or-run_until_complete-in-a-notebook"
    )
    assert slug("11. ws, wss and Binder's https") == "11-ws-wss-and-binders-https"
    assert anchors_of("# A\n## A\n") == {"a", "a-1"}


# The schedule --------------------------------------------------------------


@dataclass(frozen=True)
class Session:
    """One notebook in the schedule: what the guide or the notebook says."""

    file: str
    title: str
    teaching: int
    exercises: int
    objectives: tuple[str, ...]


def _clean(text: str) -> str:
    return " ".join(text.split())


def schedule_in_guide(markdown: str) -> tuple[list[Session], tuple[int, int]]:
    """The guide's schedule rows, and the totals its last row states."""
    start = markdown.index("<!-- schedule -->")
    lines = markdown[start:].splitlines()[1:]
    rows = []
    for line in lines:
        if not line.startswith("|"):
            if rows:
                break
            continue
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    header, _, *body = rows
    assert [cell.lower() for cell in header] == [
        "notebook",
        "teaching (min)",
        "exercises (min)",
        "objectives",
    ]
    *sessions, total = body
    found = []
    for notebook, teaching, exercises, objectives in sessions:
        link = re.fullmatch(r"\[(.+)\]\(\.\./\.\./notebooks/solutions/(.+)\)", notebook)
        assert link, f"schedule row doesn't link a solution notebook: {notebook}"
        found.append(
            Session(
                file=link.group(2),
                title=link.group(1),
                teaching=int(teaching),
                exercises=int(exercises),
                objectives=tuple(_clean(o) for o in objectives.split("<br>")),
            )
        )
    assert total[0] == "**total**"
    return found, (int(total[1].strip("*")), int(total[2].strip("*")))


def schedule_in_notebook(path: Path) -> Session:
    """What a notebook's first cell says: ``# NN · Title``, minutes, objectives."""
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    first = cells[0]
    assert first["cell_type"] == "markdown", f"{path.name}: first cell isn't markdown"
    source = "".join(first["source"])
    title = re.search(r"^# (\d\d · .+?)\s*$", source, re.MULTILINE)
    minutes = re.search(
        r"\*\*Teaching:\*\* (\d+) min · \*\*Exercises:\*\* (\d+) min", source
    )
    objectives = re.search(r"^\*\*Objectives\*\*\n((?:- .*\n?)+)", source, re.MULTILINE)
    assert title, f"{path.name}: no '# NN · Title' line in the first cell"
    assert minutes, f"{path.name}: no '**Teaching:** N min · **Exercises:** M min'"
    assert objectives, f"{path.name}: no '**Objectives**' list in the first cell"
    return Session(
        file=path.name,
        title=title.group(1),
        teaching=int(minutes.group(1)),
        exercises=int(minutes.group(2)),
        objectives=tuple(
            _clean(line[2:]) for line in objectives.group(1).splitlines() if line
        ),
    )


def test_schedule_totals_add_up() -> None:
    """The total row is the sum of the rows above it."""
    sessions, (teaching, exercises) = schedule_in_guide(GUIDE.read_text("utf-8"))
    assert teaching == sum(session.teaching for session in sessions)
    assert exercises == sum(session.exercises for session in sessions)


@pytest.mark.skipif(
    not any(SOLUTIONS.glob("*.ipynb")),
    reason="no solution notebooks in notebooks/solutions yet: nothing to compare",
)
def test_schedule_matches_notebooks() -> None:
    """The guide lists exactly the solution notebooks, with their own header."""
    guide, _ = schedule_in_guide(GUIDE.read_text("utf-8"))
    notebooks = [
        schedule_in_notebook(path) for path in sorted(SOLUTIONS.glob("*.ipynb"))
    ]
    assert sorted(session.file for session in guide) == [s.file for s in notebooks]
    for row, notebook in zip(
        sorted(guide, key=lambda session: session.file), notebooks, strict=True
    ):
        assert row == notebook, (
            f"{notebook.file}: the guide says\n{row}\nbut the notebook says\n{notebook}"
        )


def test_notebook_header_parser(tmp_path: Path) -> None:
    """The header format of COMMON.md parses into title, minutes and objectives."""
    cell = (
        "# 02 · The echo server\n\n**Teaching:** 15 min · **Exercises:** 20 min\n\n"
        "**Questions**\n- How?\n\n**Objectives**\n- Write a `handler`\n- Start it\n"
    )
    path = tmp_path / "02-echo-server.ipynb"
    path.write_text(
        json.dumps({"cells": [{"cell_type": "markdown", "source": [cell]}]})
    )
    assert schedule_in_notebook(path) == Session(
        "02-echo-server.ipynb",
        "02 · The echo server",
        15,
        20,
        ("Write a `handler`", "Start it"),
    )


# The classroom server's flags ----------------------------------------------


def serve_options() -> set[str]:
    """The options ``wsteach serve --help`` lists."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.parse_args(["serve", "--help"])
    return set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", out.getvalue()))


def test_guide_flags_exist() -> None:
    """Every --flag the instructor guide mentions is an option of wsteach serve."""
    mentioned = set(
        re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", GUIDE.read_text("utf-8"))
    )
    assert "--host" in mentioned
    assert mentioned - serve_options() == set()


# Code on the pages runs ----------------------------------------------------


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)


def text_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```text\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)


async def test_readme_first_server_runs(tmp_path: Path) -> None:
    """The README's echo server answers 'Pong: Hello server', as its comment says."""
    code = python_blocks(README.read_text("utf-8"))[0]
    assert "port=7890" in code
    kernel = await Kernel.start(tmp_path)
    try:
        # Tests never hold fixed ports: a free one instead of the README's 7890.
        output = await kernel.run(code.replace("port=7890", "port=0"))
        output += await kernel.run("await wsteach.stop_all()")
    finally:
        await kernel.stop()
    assert "Traceback" not in output and "Error" not in output, output
    assert "Pong: Hello server\n" in output


async def test_setup_check_prints_what_the_page_says(tmp_path: Path) -> None:
    """The setup page's check cell prints the two lines the page shows."""
    markdown = SETUP.read_text("utf-8")
    [code] = python_blocks(markdown)
    [expected] = text_blocks(markdown)
    kernel = await Kernel.start(tmp_path)
    try:
        output = await kernel.run(code)
    finally:
        await kernel.stop()
    assert quote_matches(expected.rstrip("\n"), output), output
    assert output.count("\n") == 2, output
