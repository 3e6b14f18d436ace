"""The hints of every exercise and step: they point the way, never give the answer.

Hint 1 names the idea, hint 2 the construct or a skeleton with blanks;
``solution()`` alone shows the code (see docs/contributing.md, "Adding an
exercise").
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

import wsteach.exercises
from wsteach.exercises._core import Checked, Question

# A solution line shorter than this ("try:", "continue") may appear in any text.
LONGEST_SHARED = 20


def _instances(kind: type) -> list[tuple[str, Any]]:
    """Every ``kind`` defined at the top of an exercise module, with its name."""
    found = []
    for info in pkgutil.iter_modules(wsteach.exercises.__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"wsteach.exercises.{info.name}")
        found += [
            (f"{info.name}.{attr}", value)
            for attr, value in vars(module).items()
            if isinstance(value, kind)
        ]
    return found


def _checked() -> list[tuple[str, Checked]]:
    return _instances(Checked)


CHECKED = _checked()


def _solution_lines(code: str) -> list[str]:
    """The solution's lines that would give it away: long, code, not comments."""
    lines = []
    for line in code.splitlines():
        line = line.split("  #")[0].strip()
        if len(line) > LONGEST_SHARED and not line.startswith(("#", "%%", '"""')):
            lines.append(line)
    return lines


def _squeezed(text: str) -> str:
    return " ".join(text.split())


def test_every_exercise_and_step_is_found():
    """The hints of the 27 checks of notebooks 01 to 09 (besides predictions) are read here."""
    assert len(CHECKED) >= 27


def _questions() -> list[tuple[str, Question]]:
    return _instances(Question)


@pytest.mark.parametrize(
    ("name", "question"), _questions(), ids=[n for n, _ in _questions()]
)
def test_a_prediction_has_no_hint_and_explains_after(name, question, capsys):
    """A prediction gets no hint before the answer; check() and solution() explain after."""
    assert question.hints == []
    question.hint()
    assert capsys.readouterr().out == (
        f"question {question.number} has no hint: a prediction is what you expect "
        "before you see it; check() explains after, right or wrong, and "
        "solution() shows the answer\n"
    )
    assert question.wrong and question.explanation


@pytest.mark.parametrize(("name", "exercise"), CHECKED, ids=[n for n, _ in CHECKED])
def test_no_hint_contains_a_line_of_the_solution(name, exercise):
    """No hint holds a line of the solution's code: solution() gives the answer."""
    hints = [_squeezed(hint) for hint in exercise.hints]
    leaked = [
        (number, line)
        for line in _solution_lines(exercise.code)
        for number, hint in enumerate(hints, start=1)
        if _squeezed(line) in hint
    ]
    assert leaked == [], (
        f"{name}: hint {leaked[0][0]} gives the line {leaked[0][1]!r} of the "
        "solution\nfix: name the construct, or give a skeleton with blanks (___)"
    )


@pytest.mark.parametrize(("name", "exercise"), CHECKED, ids=[n for n, _ in CHECKED])
def test_two_hints_the_idea_then_the_construct(name, exercise):
    """Two hints: the idea, then the construct; neither is empty."""
    assert len(exercise.hints) == 2
    assert all(hint.strip() for hint in exercise.hints)


# Headings: what a student reads above a check is what the check prints

SOLUTIONS = Path(__file__).resolve().parent.parent / "notebooks" / "solutions"
HEADING = re.compile(r"^#+ (?:Step|Exercise|Question|Challenge) (\d+\.\d+) · (.+)$")
IMPORTED = re.compile(r"from wsteach\.exercises import (\w+) as ex")
CHECKS = re.compile(r"\bex\.(\w+)\.check\(")


def _sections(path: Path) -> list[tuple[str, str, Any]]:
    """For each check cell: the heading above it, its number, and the check."""
    notebook = nbformat.read(path, as_version=4)
    module = None
    heading = ""
    found = []
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    heading = line.replace("`", "")
            continue
        imported = IMPORTED.search(cell.source)
        if imported:
            module = importlib.import_module(f"wsteach.exercises.{imported.group(1)}")
        for attr in CHECKS.findall(cell.source):
            assert module is not None, f"{path.name}: ex.{attr} before its import"
            found.append((heading, attr, getattr(module, attr)))
    return found


@pytest.mark.parametrize(
    "path", sorted(SOLUTIONS.glob("*.ipynb")), ids=lambda p: p.stem
)
def test_headings_equal_the_banners_in_order(path):
    """Above each check, a heading with the number and title its check prints, numbers in order."""
    numbers = []
    for heading, attr, checked in _sections(path):
        match = HEADING.match(heading)
        banner = f"{checked.number} · {checked.title}"
        assert match and f"{match[1]} · {match[2]}" == banner, (
            f"{path.name}: ex.{attr}.check prints {banner!r} under the heading "
            f"{heading!r}\nfix: make the heading '## Step {banner}' (or Exercise, "
            "Question, Challenge)"
        )
        if not numbers or numbers[-1] != checked.number:
            numbers.append(checked.number)
    as_numbers = [tuple(int(part) for part in n.split(".")) for n in numbers]
    assert as_numbers == sorted(as_numbers), (
        f"{path.name}: checks out of order {numbers}"
    )
