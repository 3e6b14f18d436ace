"""Every exercise of every notebook: found, solved, stubbed, and kept apart.

The exercises are discovered from the modules of :mod:`wsteach.exercises`; each
module belongs to the solution notebook that imports it. For every exercise:
its solution passes, the stub of the student notebook reports "not attempted
yet", the solution is the code of the solution notebook and absent from the
student notebook, and a wrong answer fails without raising. The machinery has
its tests in ``test_exercises_core.py``, each module in
``test_exercises_<module>.py``.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest

import wsteach
import wsteach.exercises
from wsteach.exercises import (
    Exercise,
    Question,
)
from wsteach.exercises._core import NOT_ATTEMPTED, PASSED

ROOT = Path(__file__).resolve().parent.parent


SOLUTIONS = ROOT / "notebooks" / "solutions"


STUDENTS = ROOT / "notebooks"


MARKER = re.compile(r"^\s*# (BEGIN|END) SOLUTION")


IMPORT = re.compile(
    r"from wsteach\.exercises import (\w+)|import wsteach\.exercises\.(\w+)"
)


def _modules() -> list[str]:
    return sorted(
        info.name
        for info in pkgutil.iter_modules(wsteach.exercises.__path__)
        if not info.name.startswith("_")
    )


def _exercises() -> list[tuple[str, str]]:
    found = []
    for name in _modules():
        module = importlib.import_module(f"wsteach.exercises.{name}")
        found += [
            (name, attr)
            for attr, value in vars(module).items()
            if isinstance(value, Exercise)
        ]
    return found


EXERCISES = _exercises()


def _code_cells(path: Path) -> list[nbformat.NotebookNode]:
    notebook = nbformat.read(path, as_version=4)
    return [cell for cell in notebook.cells if cell.cell_type == "code"]


def _notebook_for(module: str) -> Path:
    """The solution notebook that imports ``module``; fail clearly if none does."""
    users = []
    for path in sorted(SOLUTIONS.glob("*.ipynb")):
        for cell in _code_cells(path):
            if module in {a or b for a, b in IMPORT.findall(cell.source)}:
                users.append(path)
                break
    if len(users) != 1:
        found = ", ".join(path.name for path in users) or "none"
        pytest.fail(
            f"wsteach.exercises.{module} must be imported by exactly one solution "
            f"notebook in notebooks/solutions, found {found}\n"
            f"fix: add the notebook that uses it, with "
            f"'from wsteach.exercises import {module} as ex'"
        )
    return users[0]


def _parse(source: str) -> ast.Module:
    """Parse a code cell, which may use top-level await."""
    flags = ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
    return compile(source, "<cell>", "exec", flags=flags)


def _imports(path: Path) -> dict[str, Any]:
    """A namespace holding everything the notebook imports at the top level."""
    namespace: dict[str, Any] = {"__name__": "notebook"}
    for cell in _code_cells(path):
        try:
            tree = _parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                exec(ast.unparse(node), namespace)
    return namespace


def _function_name(exercise: Exercise, attr: str) -> str:
    """The name of the function the student completes."""
    names = [
        node.name
        for node in ast.parse(exercise.code).body
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
    ]
    assert names, f"the solution of {exercise!r} defines no function"
    return attr if attr in names else names[-1]


def _defining_cell(path: Path, function: str, attr: str | None = None) -> str:
    """The source of the code cell that defines ``function``.

    With ``attr``, the last such cell before the one that runs
    ``ex.<attr>.check(...)``: a notebook may redefine a handler as the story
    goes (notebook 03 changes ``echo`` twice).
    """
    found = None
    for cell in _code_cells(path):
        if attr is not None and f".{attr}.check(" in cell.source and found:
            return found
        try:
            tree = _parse(cell.source)
        except SyntaxError:
            continue
        for node in tree.body:
            if (
                isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
                and node.name == function
            ):
                if attr is None:
                    return cell.source
                found = cell.source
    if found:
        return found
    pytest.fail(f"{path.relative_to(ROOT)} has no code cell defining {function}")


def _normalize(source: str) -> str:
    lines = [line.rstrip() for line in source.splitlines() if not MARKER.match(line)]
    return "\n".join(lines).strip("\n")


def _body_lines(code: str, function: str) -> list[str]:
    """The significant lines of ``function``'s body in ``code``, stripped."""
    for node in ast.parse(code).body:
        if (
            isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef)
            and node.name == function
        ):
            first = node.body[0].lineno
            lines = code.splitlines()[first - 1 : node.end_lineno]
            return [
                line.strip()
                for line in lines
                if line.strip() and not line.strip().startswith("#")
            ]
    raise AssertionError(f"no function {function} in the solution")


def _exercise(module: str, attr: str) -> Exercise:
    return getattr(importlib.import_module(f"wsteach.exercises.{module}"), attr)


def _id(case: tuple[str, str]) -> str:
    return ".".join(case)


def test_exercises_are_found():
    """Discovery finds the exercise modules and their exercises."""
    assert {"first_client", "echo_server", "disconnects"} <= set(_modules())
    assert len(EXERCISES) >= 6


@pytest.mark.parametrize("name", _modules())
def test_module_exports_its_exercises(name):
    """Each module exports its exercises in __all__, and has a notebook."""
    module = importlib.import_module(f"wsteach.exercises.{name}")
    exercises = {a for a, v in vars(module).items() if isinstance(v, Exercise)}
    assert exercises <= set(module.__all__)
    assert all(hasattr(module, public) for public in module.__all__)
    assert module.__doc__
    _notebook_for(name)


def test_exercise_numbers_are_unique():
    """No two exercises share a number."""
    numbers = [_exercise(*case).number for case in EXERCISES]
    assert len(numbers) == len(set(numbers))


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_solution_passes(case):
    """The solution's code, run with the notebook's imports, passes every scenario."""
    module, attr = case
    exercise = _exercise(module, attr)
    namespace = _imports(_notebook_for(module))
    exec(exercise.code, namespace)
    results = await exercise.results(namespace[_function_name(exercise, attr)])
    assert results
    assert [r.status for r in results] == [PASSED] * len(results), results


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_student_stub_is_not_attempted(case):
    """The stub in the student notebook reports "not attempted yet" everywhere."""
    module, attr = case
    exercise = _exercise(module, attr)
    student = STUDENTS / _notebook_for(module).name
    assert student.exists(), (
        f"{student.relative_to(ROOT)} is missing\nfix: make notebooks"
    )
    function = _function_name(exercise, attr)
    namespace = _imports(student)
    exec(_defining_cell(student, function, attr), namespace)
    results = await exercise.results(namespace[function])
    assert [r.status for r in results] == [NOT_ATTEMPTED] * len(results), results


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
def test_solution_is_in_solution_notebook_only(case):
    """The solution is the notebook's code; the student notebook has none of its body."""
    module, attr = case
    exercise = _exercise(module, attr)
    solution_path = _notebook_for(module)
    function = _function_name(exercise, attr)
    code = _normalize(exercise.code)

    assert code in _normalize(_defining_cell(solution_path, function, attr)), (
        f"the solution of exercise {exercise.number} differs from the code in "
        f"{solution_path.name}: make them the same"
    )
    check = re.compile(rf"\.{attr}\.check\({function}\)")
    for path in (solution_path, STUDENTS / solution_path.name):
        assert any(check.search(c.source) for c in _code_cells(path)), (
            f"{path.name} never runs ex.{attr}.check({function})"
        )

    student = STUDENTS / solution_path.name
    stub = _defining_cell(student, function, attr)
    leaked = [line for line in _body_lines(exercise.code, function) if line in stub]
    assert leaked == [], f"solution lines in the student notebook: {leaked}"
    everything = "\n".join(cell.source for cell in _code_cells(student))
    assert code not in everything
    assert "BEGIN SOLUTION" not in everything


async def _wrong_handler(websocket):
    async for _message in websocket:
        await websocket.send("wrong answer")


async def _wrong_client(url, *args):
    return "wrong answer"


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
async def test_wrong_answer_fails_without_raising(case, capsys):
    """A wrong answer (not a stub) gets "failed" lines, and check() doesn't raise."""
    exercise = _exercise(*case)
    wrong = _wrong_handler if exercise.kind == "handler" else _wrong_client
    await exercise.check(wrong)
    out = capsys.readouterr().out
    assert out.startswith(f"Exercise {exercise.number} · {exercise.title}\n")
    assert "✗" in out and ": failed — " in out
    assert "not attempted yet" not in out
    assert "all passed" not in out


@pytest.mark.parametrize("case", EXERCISES, ids=_id)
def test_hints_and_solution(case, capsys):
    """Each exercise has at least two hints and shows its solution."""
    exercise = _exercise(*case)
    assert len(exercise.hints) >= 2
    exercise.hint()
    exercise.hint(2)
    exercise.solution()
    out = capsys.readouterr().out
    assert f"Hint 1 of {len(exercise.hints)}: {exercise.hints[0]}" in out
    assert f"Hint 2 of {len(exercise.hints)}: {exercise.hints[1]}" in out
    assert exercise.code in out


def _questions() -> list[tuple[str, str]]:
    found = []
    for name in _modules():
        module = importlib.import_module(f"wsteach.exercises.{name}")
        found += [
            (name, attr)
            for attr, value in vars(module).items()
            if isinstance(value, Question)
        ]
    return found


QUESTIONS = _questions()


def test_questions_are_found():
    """Notebooks 01, 02 and 03 each ask at least one predict-the-output question."""
    modules = {module for module, _ in QUESTIONS}
    assert {"first_client", "echo_server", "disconnects"} <= modules


def _question_cell(path: Path, attr: str) -> str:
    for cell in _code_cells(path):
        if f".{attr}.check(" in cell.source:
            return cell.source
    pytest.fail(f"{path.name} never runs ex.{attr}.check(...)")


@pytest.mark.parametrize("case", QUESTIONS, ids=_id)
def test_question_in_notebooks(case, capsys):
    """The solution notebook's prediction is right; the student's is not attempted yet."""
    module, attr = case
    question = getattr(importlib.import_module(f"wsteach.exercises.{module}"), attr)
    assert question.wrong, "name at least one likely wrong answer and why"
    solution = _notebook_for(module)
    namespace = _imports(solution)
    exec(_question_cell(solution, attr), namespace)
    assert "✓ right: " in capsys.readouterr().out
    student = STUDENTS / solution.name
    namespace = _imports(student)
    exec(_question_cell(student, attr), namespace)
    assert "not attempted yet" in capsys.readouterr().out
    assert "BEGIN SOLUTION" not in _question_cell(student, attr)
