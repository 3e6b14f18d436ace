"""The public names that notebooks and tests rely on."""

from __future__ import annotations

import ast
import json
import re
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
    "wsteach.server",
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
            module = _from_module(name, node)
            found.add(module)
            if node.level:
                found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _from_module(name: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module a ``from … import`` in module ``name`` reads."""
    if not node.level:
        return node.module or ""
    package = name.split(".")
    if not (PACKAGE / Path(*package[1:]) / "__init__.py").exists():
        package = package[:-1]
    base = ".".join(package[: len(package) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


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


def _uses_as_connection(function: ast.AsyncFunctionDef, name: str) -> bool:
    """Whether ``function`` treats its parameter ``name`` as a connection.

    It awaits ``name.recv()`` or ``name.send()``, or reads it with ``async for``:
    what a connection handler does, whatever its parameter is called.
    """
    for node in ast.walk(function):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("recv", "send", "close", "wait_closed")
            and isinstance(node.func.value, ast.Name)
            and node.func.value.id == name
        ):
            return True
        if (
            isinstance(node, ast.AsyncFor)
            and isinstance(node.iter, ast.Name)
            and node.iter.id == name
        ):
            return True
    return False


def _handlers(tree: ast.Module) -> list[str]:
    """The connection handlers a module defines (read from what they do)."""
    return [
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.AsyncFunctionDef)
        and any(_uses_as_connection(node, arg.arg) for arg in node.args.args)
    ]


def test_cli_parses_flags_and_defines_no_handler():
    """Only the CLI uses argparse, and it defines no connection handler."""
    trees = _modules()
    users = sorted(n for n, t in trees.items() if "argparse" in _imports(n, t))
    assert users == ["wsteach.cli"]
    assert _handlers(trees["wsteach.cli"]) == []


def test_the_handler_rule_reads_what_a_function_does():
    """A handler is found whatever its parameter's name (conn, client…), and a function that only passes it on is none."""
    tree = ast.parse(
        "async def relay(conn):\n"
        "    async for message in conn:\n"
        "        pass\n"
        "async def reply(client):\n"
        "    await client.send('x')\n"
        "async def run(args):\n"
        "    await serve(args)\n"
    )
    assert _handlers(tree) == ["relay", "reply"]


INTERNALS = ("transport", "protocol", "handler_tasks", "recv_messages")
"""Attributes of websockets' connections and servers that aren't documented API."""


def _internal_uses(tree: ast.Module) -> list[str]:
    """Where a module reads one of :data:`INTERNALS` (``internals.transport`` is the way)."""
    return sorted(
        f"line {node.lineno}: .{node.attr}"
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr in INTERNALS
        and not (isinstance(node.value, ast.Name) and node.value.id == "internals")
    )


def test_websockets_internals_are_touched_in_internals_only():
    """.transport, .protocol, .handler_tasks and .recv_messages appear in wsteach.internals only."""
    offenders = {
        name: found
        for name, tree in _modules().items()
        if name != "wsteach.internals" and (found := _internal_uses(tree))
    }
    assert offenders == {}


def test_the_internals_rule_reads_attributes():
    """The internals rule finds attribute access, not names, strings or imports."""
    tree = ast.parse(
        "from websockets.protocol import State\n"
        "protocol = 'transport'\n"
        "ws.transport.abort()\n"
        "server.handler_tasks\n"
        "internals.transport(ws).abort()\n"
    )
    assert _internal_uses(tree) == ["line 3: .transport", "line 4: .handler_tasks"]


# The exercises' own private modules; any other private name is the core's.
EXERCISES_PRIVATE = ("wsteach.exercises._core", "wsteach.exercises._scenarios")


def _private_imports(name: str, tree: ast.Module) -> list[str]:
    """Private names of wsteach's core (``wsteach._x``, ``wsteach.x._y``) imported."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
            names: list[str] = []
        elif isinstance(node, ast.ImportFrom):
            module = _from_module(name, node)
            modules = [module]
            names = [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for imported in [*modules, *names]:
            if not _is(imported, ("wsteach",)) or _is(imported, EXERCISES_PRIVATE):
                continue
            if imported.startswith("wsteach.exercises.") and imported.count(".") == 2:
                continue  # An exercise module itself: another rule's business.
            if any(part.startswith("_") for part in imported.split(".")):
                found.append(imported)
    return sorted(found)


def test_exercises_import_no_private_name_of_the_core():
    """An exercise module imports only public names of the core, besides _core and _scenarios."""
    trees = _modules()
    offenders = {
        name: found
        for name, tree in trees.items()
        if name.startswith("wsteach.exercises")
        and (found := _private_imports(name, tree))
    }
    assert offenders == {}


def test_the_private_import_rule_finds_each_form():
    """``from .._x import y``, ``from ..x import _y`` and ``import wsteach._x`` are private; _core is not."""
    tree = ast.parse(
        "from .._checks import check_handler\n"
        "from ..waves import _ms, HOST\n"
        "import wsteach._checks\n"
        "from ._core import Exercise, _hint\n"
        "from ..clients import connect\n"
    )
    assert _private_imports("wsteach.exercises.demo", tree) == [
        "wsteach._checks",
        "wsteach._checks",
        "wsteach._checks.check_handler",
        "wsteach.waves._ms",
    ]


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
    """wsteach.waves imports websockets and internals only: no server kinds, no cycle with measure."""
    trees = _modules()
    imported = _imports("wsteach.waves", trees["wsteach.waves"])
    assert {m for m in imported if _is(m, ("wsteach",))} <= {
        "wsteach.internals",
        "wsteach.internals.transport",
    }
    internals = _imports("wsteach.internals", trees["wsteach.internals"])
    assert sorted(m for m in internals if _is(m, ("wsteach",))) == []


# Where a newcomer looks for each job, and finds it: (module, names it defines).
HOMES = {
    "wsteach.server": ("start", "Running", "stop_all", "running_servers"),
    "wsteach.handlers": ("echo", "Room", "classroom_echo", "announce"),
    "wsteach.handler_check": ("check_handler", "handler_name"),
    "wsteach.names": ("NAME_HEADER", "encode_name", "client_name"),
    "wsteach.timeouts": ("TIMEOUT_FACTOR", "timeout_factor"),
    "wsteach.clients": ("Client", "connect", "crowd"),
    "wsteach.listening": ("listen", "free_port", "free_ports"),
    "wsteach.processes": ("own_group", "signal_group"),
}


def _defined(tree: ast.Module) -> set[str]:
    """The names a module defines at its top level (functions, classes, assignments)."""
    found = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            found.add(node.name)
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found |= {t.id for t in targets if isinstance(t, ast.Name)}
    return found


def test_each_job_has_one_home_named_for_it():
    """start lives in server, handlers in handlers, the name codec in names, the timeout factor in timeouts: defined there and nowhere else."""
    trees = _modules()
    # The exercises name their exercises after what the student writes (echo…).
    defined = {
        name: _defined(tree)
        for name, tree in trees.items()
        if not _is(name, ("wsteach.exercises",))
    }
    homes = {
        job: sorted(module for module, names in defined.items() if job in names)
        for jobs in HOMES.values()
        for job in jobs
    }
    assert homes == {job: [module] for module, jobs in HOMES.items() for job in jobs}
    assert "wsteach.notebook" not in trees  # A notebook is what students write.


def _port_zero_binds(tree: ast.Module) -> list[int]:
    """Lines that bind port 0 (``x.bind((host, 0))``): finding a free port."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "bind"
        and node.args
        and isinstance(node.args[0], ast.Tuple)
        and len(node.args[0].elts) == 2
        and isinstance(node.args[0].elts[1], ast.Constant)
        and node.args[0].elts[1].value == 0
    ]


def test_one_free_port_helper():
    """Only wsteach.listening binds port 0 to find a free port; no test defines its own."""
    offenders = {
        name: lines
        for name, tree in _modules().items()
        if name != "wsteach.listening" and (lines := _port_zero_binds(tree))
    }
    assert offenders == {}
    copies = [
        f"{path.relative_to(ROOT).as_posix()}: {node.name}"
        for path in sorted((ROOT / "tests").rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.name.lstrip("_") in ("free_port", "free_ports")
    ]
    assert copies == []


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


def test_tests_read_the_timeout_factor_in_one_place():
    """Tests read WSTEACH_TIMEOUT_FACTOR only through tests/utils.py (FACTOR, MS)."""
    readers = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("get", "getenv")
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and node.args[0].value == "WSTEACH_TIMEOUT_FACTOR"
            ):
                readers.append(path.relative_to(ROOT).as_posix())
    assert readers == []


PRAGMA = re.compile(r"#\s*pragma:\s*no (cover|branch)(?P<why>\s*-\s*\S.*)?$")


def test_every_pragma_says_why():
    """Each ``# pragma: no cover`` or ``no branch`` in wsteach is followed by ``- <why>``."""
    silent: dict[str, int] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for line in path.read_text().splitlines():
            found = PRAGMA.search(line)
            if found and not found["why"]:
                name = path.relative_to(ROOT).as_posix()
                silent[name] = silent.get(name, 0) + 1
    assert silent == {}, f"pragmas without '- <why>': {silent}"
