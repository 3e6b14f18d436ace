"""Per-module coverage: is each module of wsteach covered by its own tests?

Suite-wide coverage can be 100 % while a module is covered only by accident,
by another module's tests: one failing test elsewhere then drops it below the
gate. websockets checks each module against its own test module
(``tests/maxi_cov.py``); this does the same from one run of the suite.

``make coverage-per-module`` runs the unit tests once with coverage's dynamic
contexts (``--cov-context=test``: each line knows which tests ran it), then
this script reports, for each module, the coverage that its own test files
give it: ``wsteach/x.py`` by ``tests/test_x.py``, a subpackage
``wsteach/x/`` by ``tests/test_x*.py``. Usage::

    python tools/coverage_per_module.py [--data .coverage] [MODULE_PATH ...]

Exit status 0 when each module reported is at 100 %, else 1.

Limits: lines that run when a module is imported (its ``def`` and
``import`` lines) carry no test's context, and count for the module whoever
imported it, as they would in websockets' one-process-per-module runs. So do
the lines of a subprocess the tests measure (``measured()`` in
``tests/conftest.py``: ``python -m wsteach``), which record no context either.
What a test's own body runs must come from the module's own tests. Coverage's
``sysmon`` core records no dynamic contexts, so this run uses the default core.
"""

from __future__ import annotations

import argparse
import io
import re
import sys
from pathlib import Path

import coverage

__all__ = ["main", "own_tests", "report"]

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "wsteach"

NO_TEST = "^$"
"""The context of lines run outside any test: at import, or in a measured subprocess."""

# Modules whose tests are named for what they do, not for the file.
OWN_TESTS = {
    "__init__": "test_package",  # The public names.
    "__main__": "test_cli",  # python -m wsteach is the command line.
}


def units(package: Path = PACKAGE) -> list[Path]:
    """The modules and subpackages of ``package`` whose tests this checks."""
    found = []
    for path in sorted(package.iterdir()):
        if path.suffix == ".py" or (path / "__init__.py").exists():
            found.append(path)
    return found


def own_tests(unit: Path) -> tuple[str, str]:
    """The files a module's lines are reported for, and the contexts of its tests.

    Both as patterns: coverage's ``include`` glob and a regular expression over
    pytest-cov's contexts (``tests/test_x.py::test_name|run``).
    """
    if unit.is_dir():
        return f"{unit}/*", rf"^tests/test_{re.escape(unit.name)}\w*\.py::"
    stem = OWN_TESTS.get(unit.stem, f"test_{unit.stem.lstrip('_')}")
    return str(unit), rf"^tests/{re.escape(stem)}\.py::"


def report(
    data: Path, unit: Path, out: io.TextIOBase | None = None
) -> tuple[float, str]:
    """The percentage of ``unit`` that its own tests cover, and coverage's table of it."""
    cov = coverage.Coverage(
        data_file=str(data), config_file=str(ROOT / "pyproject.toml")
    )
    cov.load()
    include, contexts = own_tests(unit)
    table = io.StringIO()
    try:
        percent = cov.report(
            include=[include],
            contexts=[contexts, NO_TEST],
            show_missing=True,
            skip_covered=False,
            file=table,
        )
    except coverage.exceptions.NoDataError:
        return 0.0, f"{unit.relative_to(ROOT)}: no data (did its tests run?)\n"
    return percent, table.getvalue()


def main(argv: list[str] | None = None) -> int:
    """Report each module's coverage by its own tests; 1 when one is below 100 %."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT / ".coverage")
    parser.add_argument("modules", nargs="*", type=Path)
    args = parser.parse_args(argv)
    if not args.data.exists():
        parser.error(f"no coverage data in {args.data}: run make coverage-per-module")
    chosen = [path.resolve() for path in args.modules] or units()
    short = []
    for unit in chosen:
        percent, table = report(args.data, unit)
        name = unit.relative_to(ROOT).as_posix() + ("/" if unit.is_dir() else "")
        print(f"{name}: {percent:.1f} % by its own tests")
        if percent < 100:
            short.append(name)
            print(table, end="")
    if short:
        print(f"below 100 % by their own tests: {', '.join(short)}")
        return 1
    print("every module is covered by its own tests")
    return 0


if __name__ == "__main__":
    sys.exit(main())
