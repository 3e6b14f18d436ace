"""The public names that notebooks and tests rely on."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import wsteach


def test_public_names():
    """wsteach exports exactly the documented API."""
    assert set(wsteach.__all__) == {
        "Client",
        "Limits",
        "PortInUseError",
        "Room",
        "Running",
        "Script",
        "ScriptExited",
        "Trace",
        "connect",
        "crowd",
        "echo",
        "join_class",
        "leave_class",
        "lower_hand",
        "raise_hand",
        "run_script",
        "running_servers",
        "start",
        "stop_all",
    }
    for name in wsteach.__all__:
        assert getattr(wsteach, name) is not None


def test_modules_declare_all():
    """Every module lists its public names in __all__."""
    import importlib
    import pkgutil

    for module in pkgutil.walk_packages(wsteach.__path__, "wsteach."):
        if module.name.endswith("__main__"):
            continue
        imported = importlib.import_module(module.name)
        assert hasattr(imported, "__all__"), module.name
        for name in imported.__all__:
            assert hasattr(imported, name), f"{module.name}.{name}"


# The import rules of docs/contributing.md, read from the source.

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "wsteach"
KERNEL = ("IPython", "ipykernel", "jupyter_client", "jupyter_core", "jupyter_server")
# Modules that run in a notebook and may talk to its kernel (display, shutdown
# hooks, the Jupyter runtime folder). Everything else is the core.
KERNEL_FACING = (
    "wsteach.exercises",
    "wsteach.notebook",
    "wsteach.scripts",
    "wsteach.web",
    "wsteach.registry",
)
PLATFORM_ONLY = ("resource", "fcntl", "termios", "pwd", "grp", "msvcrt", "winreg")


def _modules() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(), str(path))
    return trees


def _imports(name: str, tree: ast.Module, *, top_level_only: bool = False) -> set[str]:
    """Absolute names of the modules a module imports (relative ones resolved)."""
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = name.split(".")
                if not (PACKAGE / Path(*package[1:]) / "__init__.py").exists():
                    package = package[:-1]
                base = ".".join(package[: len(package) - node.level + 1])
                module = f"{base}.{node.module}" if node.module else base
                found.add(module)
                found |= {f"{module}.{alias.name}" for alias in node.names}
            else:
                found.add(node.module or "")
    return found


def _is(module: str, names: tuple[str, ...]) -> bool:
    return any(module == n or module.startswith(n + ".") for n in names)


def test_the_core_knows_no_kernel():
    """Only notebook-facing modules import IPython, ipykernel or jupyter packages."""
    offenders = {
        name: sorted(m for m in _imports(name, tree) if _is(m, KERNEL))
        for name, tree in _modules().items()
        if not _is(name, KERNEL_FACING)
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_no_platform_only_imports():
    """No module imports a POSIX- or Windows-only module: students use both."""
    offenders = {
        name: sorted(m for m in _imports(name, tree) if _is(m, PLATFORM_ONLY))
        for name, tree in _modules().items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}


def test_cli_parses_flags_and_defines_no_handler():
    """Only the CLI uses argparse, and it defines no connection handler."""
    trees = _modules()
    users = sorted(n for n, t in trees.items() if "argparse" in _imports(n, t))
    assert users == ["wsteach.cli"]
    handlers = [
        node.name
        for node in ast.walk(trees["wsteach.cli"])
        if isinstance(node, ast.AsyncFunctionDef)
        and node.args.args
        and node.args.args[0].arg in ("websocket", "connection", "ws")
    ]
    assert handlers == []


def test_no_exercise_imports_another():
    """Exercise modules share only private modules (``_core``, ``_scenarios``…)."""
    trees = _modules()
    exercises = {n for n in trees if n.startswith("wsteach.exercises.")}
    public = {n for n in exercises if not n.rsplit(".", 1)[1].startswith("_")}
    found = {
        name: sorted(m for m in _imports(name, trees[name]) if m in public)
        for name in exercises
    }
    assert {name: m for name, m in found.items() if m} == {}


def test_the_package_ships_no_authoring_or_test_tools():
    """wsteach imports neither tools/, benchmarks/, pytest nor the notebook builders."""
    banned = (
        "tools",
        "benchmarks",
        "harness",
        "pytest",
        "nbformat",
        "nbclient",
        "nbval",
    )
    offenders = {
        name: sorted(m for m in _imports(name, tree) if _is(m, banned))
        for name, tree in _modules().items()
    }
    assert {name: found for name, found in offenders.items() if found} == {}
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == [
        "wsteach"
    ]


def test_waves_knows_no_other_module_of_wsteach():
    """wsteach.waves imports websockets only: no server kinds, no cycle with measure."""
    imported = _imports("wsteach.waves", _modules()["wsteach.waves"])
    assert sorted(m for m in imported if _is(m, ("wsteach",))) == []


def test_tests_mirror_modules():
    """Each module of wsteach (or subpackage) has its tests/test_<module>.py."""
    tests = ROOT / "tests"
    names = {
        path.stem if path.suffix else path.name
        for path in PACKAGE.iterdir()
        if (path.suffix == ".py" and not path.name.startswith("__"))
        or (path / "__init__.py").exists()
    }
    missing = sorted(
        name for name in names if not (tests / f"test_{name.lstrip('_')}.py").exists()
    )
    assert missing == []


def test_examples_are_plain_websockets():
    """Each example imports only the standard library and websockets."""
    for path in sorted((ROOT / "examples").glob("*.py")):
        tree = ast.parse(path.read_text())
        roots = {m.split(".")[0] for m in _imports("examples", tree)}
        assert roots - set(sys.stdlib_module_names) <= {"websockets"}, path.name


def test_the_cli_needs_no_ipython():
    """`python -m wsteach` loads no IPython, ipykernel or jupyter module."""
    code = (
        "import sys, json, wsteach.cli, wsteach.measure, wsteach.waves\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {KERNEL!r})))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert json.loads(out) == []
