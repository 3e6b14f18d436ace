"""Tests of tools/make_notebooks.py: solution regions, student versions, staleness."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from conftest import load_tool

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
STUDENTS = ROOT / "notebooks"


make_notebooks = load_tool("make_notebooks")
strip_solutions = make_notebooks.strip_solutions
student_version = make_notebooks.student_version


# strip_solutions


def test_region_becomes_stub_with_task():
    """A region with a task becomes "# Your code here: task" and "..."."""
    source = (
        "async def pong(websocket):\n"
        "    # BEGIN SOLUTION: reply to every message\n"
        "    async for message in websocket:\n"
        '        await websocket.send("Pong: " + message)\n'
        "    # END SOLUTION"
    )
    assert strip_solutions(source) == (
        "async def pong(websocket):\n"
        "    # Your code here: reply to every message\n"
        "    ..."
    )


def test_region_without_task_gets_default_task():
    """A bare "# BEGIN SOLUTION" line gets the generic task text."""
    source = "# BEGIN SOLUTION\nx = 1\n# END SOLUTION"
    assert strip_solutions(source) == "# Your code here: write the solution\n..."


def test_lines_outside_regions_and_indentation_are_kept():
    """Code around regions stays as it is; each stub takes its region's indent."""
    source = (
        "def f():\n"
        "    a = 1\n"
        "        # BEGIN SOLUTION: deep\n"
        "        b = 2\n"
        "        # END SOLUTION\n"
        "    # BEGIN SOLUTION: shallow\n"
        "    c = 3\n"
        "    # END SOLUTION\n"
        "    return a"
    )
    assert strip_solutions(source) == (
        "def f():\n"
        "    a = 1\n"
        "        # Your code here: deep\n"
        "        ...\n"
        "    # Your code here: shallow\n"
        "    ...\n"
        "    return a"
    )


def test_source_without_markers_is_unchanged():
    """A cell without solution markers comes out identical."""
    source = "import wsteach\n\nserver = await wsteach.start(wsteach.echo)"
    assert strip_solutions(source) == source


def test_begin_inside_a_region_is_an_error():
    """A second BEGIN before END names the line."""
    source = "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"
    with pytest.raises(ValueError, match="line 2: BEGIN SOLUTION inside a solution"):
        strip_solutions(source)


def test_end_without_begin_is_an_error():
    """An END without BEGIN names the line."""
    with pytest.raises(ValueError, match="line 2: END SOLUTION without BEGIN"):
        strip_solutions("x = 1\n# END SOLUTION")


def test_begin_without_end_is_an_error():
    """A region that never ends is refused instead of eating the rest of the cell."""
    with pytest.raises(ValueError, match="BEGIN SOLUTION without END SOLUTION"):
        strip_solutions("# BEGIN SOLUTION\nx = 1")


# student_version


def _solution_notebook() -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3"},
        "language_info": {"name": "python"},
        "widgets": {"state": "dropped"},
    }
    title = nbformat.v4.new_markdown_cell("# 99 · Test")
    title.id = "intro"
    code = nbformat.v4.new_code_cell(
        "def f():\n    # BEGIN SOLUTION: return 1\n    return 1\n    # END SOLUTION"
    )
    code.id = "answer"
    code.execution_count = 3
    code.outputs = [nbformat.v4.new_output("stream", name="stdout", text="1\n")]
    code.metadata = {"tags": ["raises-exception"], "collapsed": True}
    secret = nbformat.v4.new_code_cell("print('for the instructor')")
    secret.id = "secret"
    secret.metadata = {"tags": ["instructor"]}
    raw = nbformat.v4.new_raw_cell("raw text")
    raw.id = "raw"
    notebook.cells = [title, code, secret, raw]
    return notebook


def test_student_version_drops_instructor_cells():
    """Cells tagged instructor are not in the student notebook."""
    student = student_version(_solution_notebook())
    assert [cell.id for cell in student.cells] == ["intro", "answer", "raw"]


def test_student_version_clears_outputs_and_keeps_ids_and_tags():
    """Outputs and counts are cleared; ids and tags stay, other metadata goes."""
    student = student_version(_solution_notebook())
    code = student.cells[1]
    assert code.outputs == []
    assert code.execution_count is None
    assert code.metadata == {"tags": ["raises-exception"]}
    assert code.source == "def f():\n    # Your code here: return 1\n    ..."
    assert student.cells[0].source == "# 99 · Test"
    assert student.cells[2].cell_type == "raw"
    assert set(student.metadata) == {"kernelspec", "language_info"}
    nbformat.validate(student)


def test_student_version_rewrites_links_to_the_repository():
    """A solution's ../../docs link becomes ../docs, one folder up; others stay."""
    solution = _solution_notebook()
    solution.cells[
        0
    ].source = (
        "See the [glossary](../../docs/learners/glossary.md) and [01](01-x.ipynb)."
    )
    student = student_version(solution)
    assert student.cells[0].source == (
        "See the [glossary](../docs/learners/glossary.md) and [01](01-x.ipynb)."
    )


# Staleness: --check


def test_check_reports_stale_and_missing_student_notebooks(
    tmp_path, monkeypatch, capsys
):
    """--check passes right after generating, and fails once a solution changes."""
    solutions = tmp_path / "solutions"
    solutions.mkdir()
    monkeypatch.setattr(make_notebooks, "SOLUTIONS", solutions)
    monkeypatch.setattr(make_notebooks, "STUDENTS", tmp_path)
    monkeypatch.setattr(make_notebooks, "ROOT", tmp_path)
    path = solutions / "99-test.ipynb"
    path.write_text(make_notebooks.render(_solution_notebook()))

    assert make_notebooks.main(["--check"]) == 1
    assert "fix: make notebooks" in capsys.readouterr().out

    assert make_notebooks.main(["--no-execute"]) == 0
    assert (tmp_path / "99-test.ipynb").exists()
    assert make_notebooks.main(["--check"]) == 0

    notebook = _solution_notebook()
    notebook.cells[0].source = "# 99 · Changed"
    path.write_text(make_notebooks.render(notebook))
    assert make_notebooks.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "student notebooks out of date: 99-test.ipynb" in out
    assert "fix: make notebooks" in out


SOLUTION_PATHS = sorted(SOLUTIONS.glob("*.ipynb"))


@pytest.mark.parametrize("path", SOLUTION_PATHS, ids=lambda path: path.stem)
def test_committed_student_notebook_is_up_to_date(path):
    """Each student notebook equals the one generated from its solution."""
    expected = make_notebooks.render(student_version(nbformat.read(path, as_version=4)))
    target = STUDENTS / path.name
    assert target.exists(), (
        f"{target.relative_to(ROOT)} is missing\nfix: make notebooks"
    )
    assert target.read_text() == expected, (
        f"{target.relative_to(ROOT)} is out of date with its solution\n"
        "fix: make notebooks"
    )


def test_every_student_notebook_has_a_solution():
    """No student notebook exists without the solution it is generated from."""
    orphans = [
        path.name
        for path in sorted(STUDENTS.glob("*.ipynb"))
        if not (SOLUTIONS / path.name).exists()
    ]
    assert orphans == [], (
        "student notebooks are generated: put the source in notebooks/solutions"
    )


def test_solution_notebooks_exist():
    """The checks above have notebooks to look at."""
    assert SOLUTION_PATHS, "no solution notebooks in notebooks/solutions"


@pytest.mark.parametrize("path", SOLUTION_PATHS, ids=lambda path: path.stem)
def test_solution_notebook_is_executed_with_stable_ids(path):
    """Solutions are committed executed, with readable unique cell ids."""
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    ids = [cell.id for cell in notebook.cells]
    assert len(ids) == len(set(ids))
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    unrun = [cell.id for cell in code if cell.execution_count is None]
    assert unrun == [], f"cells not executed: {unrun}\nfix: make notebooks"


@pytest.mark.parametrize("path", SOLUTION_PATHS, ids=lambda path: path.stem)
def test_solution_notebook_ends_with_key_points_and_stops_servers(path):
    """The last cell holds the key points; the last code cell stops every server."""
    cells = nbformat.read(path, as_version=4).cells
    last = cells[-1]
    assert last.cell_type == "markdown"
    assert last.source.startswith("## Key points\n"), f"{path.name}: last cell"
    code = [cell for cell in cells if cell.cell_type == "code"]
    assert "await wsteach.stop_all()" in code[-1].source.splitlines(), (
        f"{path.name}: the last code cell must stop the servers with "
        "await wsteach.stop_all()"
    )


def test_handshake_and_fan_out_are_drawn():
    """00 or 02 draws a Mermaid diagram in markdown, and 04 one too once it exists."""

    def draws(name: str) -> bool:
        path = SOLUTIONS / name
        if not path.exists():
            return False
        return (
            any(
                "```mermaid" in cell.source
                for cell in nbformat.read(path, as_version=4).cells
                if cell.cell_type == "markdown"
            )
            or "```mermaid" in path.read_text()
        )

    assert draws("00-start-here.ipynb") or draws("02-echo-server.ipynb")
    if (SOLUTIONS / "04-broadcast.ipynb").exists():
        assert draws("04-broadcast.ipynb")


def test_a_prediction_gets_one_stub():
    """A region that only sets the name the line above leaves as ... adds no second ...."""
    source = (
        'bob_gets = ...  # your prediction: "a", "b" or "c"\n'
        '# BEGIN SOLUTION: "a" all 100, "b" some, "c" none\n'
        'bob_gets = "b"\n'
        "# END SOLUTION\n"
        "ex.predict_stall.check(bob_gets)"
    )
    assert strip_solutions(source) == (
        'bob_gets = ...  # your prediction: "a", "b" or "c"\n'
        '# "a" all 100, "b" some, "c" none\n'
        "ex.predict_stall.check(bob_gets)"
    )
    plain = source.replace('"a" all 100, "b" some, "c" none', "your prediction")
    assert strip_solutions(plain).count("...") == 1
    assert "your prediction\n# your prediction" not in strip_solutions(plain)
    other = source.replace('bob_gets = "b"', 'carol_gets = "b"')
    assert strip_solutions(other).count("...") == 2, "another name: a stub of its own"


def test_every_student_stub_has_one_ellipsis():
    """No code cell of a student notebook holds a stub line and then a second ... for it."""
    for path in sorted(STUDENTS.glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            lines = cell.source.splitlines() if cell.cell_type == "code" else []
            for above, line, below in zip(lines, lines[1:], lines[2:], strict=False):
                stub = above.rstrip().split("#")[0].rstrip().endswith("= ...")
                assert not (
                    stub
                    and line.lstrip().startswith("# Your code here")
                    and below.strip() == "..."
                ), f"{path.name}: {above!r}"
