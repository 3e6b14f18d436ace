"""Generate the student notebooks from the solution notebooks.

The solution notebooks in ``notebooks/solutions/`` are the source. For each one,
this script writes ``notebooks/<same name>`` with:

- cells tagged ``instructor`` dropped;
- every solution region in a code cell, from a line ``# BEGIN SOLUTION`` (or
  ``# BEGIN SOLUTION: what to do``) to a line ``# END SOLUTION``, replaced by
  ``# Your code here: what to do`` and ``...`` at the same indentation;
- outputs and execution counts cleared, cell ids kept (stable diffs).

Usage::

    python tools/make_notebooks.py            # execute solutions, then generate
    python tools/make_notebooks.py --no-execute
    python tools/make_notebooks.py --check    # exit 1 if a student notebook is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"
STUDENTS = ROOT / "notebooks"

BEGIN = re.compile(r"^(?P<indent>\s*)# BEGIN SOLUTION(?::\s*(?P<task>.*))?\s*$")
END = re.compile(r"^\s*# END SOLUTION\s*$")
INSTRUCTOR_TAG = "instructor"
CELL_TIMEOUT = 60


def strip_solutions(source: str) -> str:
    """Replace each solution region of a code cell's source by a stub.

    A region becomes ``# Your code here: <task>`` and ``...``. A region that
    only gives a value to the name the line above it leaves as ``NAME = ...``
    (a prediction: ``answer = ...  # your prediction``) adds no second
    ``...``: its task, unless it is just "your prediction", stays as a comment.
    """
    lines_out: list[str] = []
    inside = False
    region: list[str] = []
    for number, line in enumerate(source.splitlines(), start=1):
        begin = BEGIN.match(line)
        if begin:
            if inside:
                raise ValueError(f"line {number}: BEGIN SOLUTION inside a solution")
            inside, region = True, []
            indent = begin["indent"]
            task = begin["task"] or "write the solution"
        elif END.match(line):
            if not inside:
                raise ValueError(f"line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = False
            lines_out += _stub(region, lines_out[-1] if lines_out else "", indent, task)
        elif inside:
            region.append(line)
        else:
            lines_out.append(line)
    if inside:
        raise ValueError("BEGIN SOLUTION without END SOLUTION")
    return "\n".join(lines_out)


def _stub(region: list[str], above: str, indent: str, task: str) -> list[str]:
    """The lines that stand for one solution region in the student's cell."""
    value = re.fullmatch(r"\s*(\w+) = .+", region[0]) if len(region) == 1 else None
    if value and re.match(rf"{re.escape(indent)}{value[1]} = \.\.\.(\s|$)", above):
        return [] if task.lower() == "your prediction" else [f"{indent}# {task}"]
    return [f"{indent}# Your code here: {task}", f"{indent}..."]


def student_version(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Return the student notebook generated from a solution notebook."""
    student = nbformat.v4.new_notebook()
    student.metadata = {
        key: solution.metadata[key]
        for key in ("kernelspec", "language_info")
        if key in solution.metadata
    }
    for cell in solution.cells:
        if INSTRUCTOR_TAG in cell.get("metadata", {}).get("tags", []):
            continue
        metadata = {k: v for k, v in cell.get("metadata", {}).items() if k == "tags"}
        if cell.cell_type == "code":
            new = nbformat.v4.new_code_cell(strip_solutions(cell.source))
        elif cell.cell_type == "markdown":
            new = nbformat.v4.new_markdown_cell(_from_students_folder(cell.source))
        else:
            new = nbformat.v4.new_raw_cell(cell.source)
        new.id = cell.id
        new.metadata = metadata
        student.cells.append(new)
    return student


def _from_students_folder(markdown: str) -> str:
    """Rewrite links to the repository's root for a notebook one folder up.

    A solution notebook links ``../../docs/...``; the student notebook, in
    ``notebooks/``, reaches the same file at ``../docs/...``.
    """
    return markdown.replace("](../../", "](../")


def render(notebook: nbformat.NotebookNode) -> str:
    """Serialize a notebook the way it is committed."""
    return nbformat.writes(notebook) + "\n"


def execute(path: Path) -> None:
    """Run a solution notebook top to bottom in a fresh kernel and save its outputs."""
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=CELL_TIMEOUT,
        kernel_name="python3",
        record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    path.write_text(render(notebook))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="only report stale notebooks"
    )
    parser.add_argument("--no-execute", action="store_true", help="don't run solutions")
    parser.add_argument("names", nargs="*", help="solution notebooks (default: all)")
    args = parser.parse_args(argv)

    paths = [SOLUTIONS / name for name in args.names] or sorted(
        SOLUTIONS.glob("*.ipynb")
    )
    stale = []
    for path in paths:
        if not args.check and not args.no_execute:
            print(f"executing {path.relative_to(ROOT)}", flush=True)
            execute(path)
        solution = nbformat.read(path, as_version=4)
        text = render(student_version(solution))
        target = STUDENTS / path.name
        if args.check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.relative_to(ROOT))
        else:
            target.write_text(text)
            print(f"wrote {target.relative_to(ROOT)}", flush=True)
    if stale:
        names = ", ".join(str(name) for name in stale)
        print(f"student notebooks out of date: {names}\nfix: make notebooks")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
