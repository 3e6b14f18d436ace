"""The lock (tools/lock.py), the early warning (tools/test_latest.py) and the tested Pythons."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
import tomllib
from pathlib import Path

from conftest import ROOT, load_tool
from packaging.requirements import Requirement

lock = load_tool("lock")
test_latest = load_tool("test_latest")
pythons = load_tool("pythons")


def pyproject() -> dict:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return tomllib.load(file)


def test_the_venv_holds_the_locks_versions() -> None:
    """Every installed package that the lock names has the lock's version."""
    pins = lock.read_pins(lock.LOCK)
    wrong = []
    for dist in importlib.metadata.distributions():
        key = lock.canonical(dist.metadata["Name"])
        if key in pins and pins[key][1] != dist.version:
            wrong.append(f"{key} {dist.version} (the lock says {pins[key][1]})")
    assert not wrong, f"not the lock's versions in {sys.prefix}: {', '.join(wrong)}"
    assert "websockets" in pins and "jupyterlab" in pins and "pytest" in pins


def test_the_lock_satisfies_pyprojects_ranges() -> None:
    """Each dependency of pyproject.toml, the test extras too, admits the lock's version."""
    project = pyproject()["project"]
    pins = lock.read_pins(lock.LOCK)
    requirements = [
        *project["dependencies"],
        *project["optional-dependencies"]["test"],
        *pyproject()["build-system"]["requires"],
    ]
    for line in requirements:
        requirement = Requirement(line)
        key = lock.canonical(requirement.name)
        assert key in pins, f"{requirement.name} is not in the lock: run make lock"
        version = pins[key][1]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"the lock's {requirement.name} {version} is outside {requirement}"
        )


def test_binder_pins_are_the_locks() -> None:
    """binder/requirements.txt installs this package and the lock's versions only."""
    binder = lock.read_pins(lock.BINDER)
    pins = lock.read_pins(lock.LOCK)
    lines = lock.BINDER.read_text(encoding="utf-8").splitlines()
    assert "." in lines
    assert {
        "websockets",
        "jupyterlab",
        "jupyter-server-proxy",
        "redis",
    } <= binder.keys()
    for key, (name, version, _) in binder.items():
        assert key in pins, f"{name} is in binder/requirements.txt, not in the lock"
        assert pins[key][1] == version, (
            f"{name}: {version} vs the lock's {pins[key][1]}"
        )
    assert not {"pytest", "ruff", "nbval"} & binder.keys(), "no test tools on Binder"


def test_the_lock_is_sorted_and_exact() -> None:
    """The lock is one name==version line per package, sorted, under its header."""
    text = lock.LOCK.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    assert all(lock.PIN.match(line) for line in lines), "only name==version lines"
    keys = [lock.canonical(line.split("==")[0]) for line in lines]
    assert keys == sorted(keys) and len(keys) == len(set(keys))
    pins = lock.parse_pins(text)
    python = text.split("resolved on Python ")[1].split(",")[0]
    also = text.split("checked to install on ")[1].split(".", 1)[0]
    assert lock.lock_text(pins, python=python, also=[]).endswith(
        "\n".join(lines) + "\n"
    ), "lock_text writes it as it is"
    assert also, "checked on more than one Python"


def test_changes_say_what_moved() -> None:
    """What changed between two locks: moved, new and gone packages, one line each."""
    old = {"a": ("a", "1", ""), "b": ("B", "2", ""), "c": ("c", "3", "")}
    new = {"a": ("a", "1", ""), "b": ("B", "2.1", ""), "d": ("d", "4", "")}
    assert lock.changes(old, new) == [
        "~ B 2 -> 2.1",
        "- c 3 (no longer needed)",
        "+ d 4 (new)",
    ]
    assert lock.changes(old, old) == []


def test_untested_versions_keep_the_lock() -> None:
    """A version make test-latest has not passed with stops make lock."""
    old = {"redis": ("redis", "8.1.0", ""), "six": ("six", "1.17.0", "")}
    new = {"redis": ("redis", "8.2.0", ""), "six": ("six", "1.17.0", "")}
    assert lock.untested(old, new, {}) == ["redis 8.2.0"]
    assert lock.untested(old, new, {"redis": ("redis", "8.2.0", "")}) == []
    assert lock.untested(old, new, {"redis": ("redis", "8.3.0", "")}) == ["redis 8.2.0"]


def test_newer_lists_the_moved_packages() -> None:
    """test-latest names each package whose newest release differs from the lock."""
    locked = {"redis": ("redis", "8.1.0", ""), "six": ("six", "1.17.0", "")}
    now = {"redis": ("redis", "8.2.0", ""), "six": ("six", "1.17.0", "")}
    assert test_latest.newer(locked, now) == [("redis", "8.1.0", "8.2.0")]


def test_failures_are_read_from_a_real_junit_file(tmp_path: Path) -> None:
    """The failed tests of a real pytest run are named by node id, passed ones not."""
    folder = tmp_path / "tests"
    folder.mkdir()
    (folder / "test_some.py").write_text(
        "def test_good():\n    pass\n\n\n"
        "def test_bad():\n    assert False\n\n\n"
        "class TestGroup:\n    def test_inside(self):\n        raise ValueError\n",
        encoding="utf-8",
    )
    junit = tmp_path / "junit"
    junit.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "no:randomly",
            f"--junitxml={junit / 'unit.xml'}",
            "tests",
        ],
        cwd=tmp_path,
        capture_output=True,
        check=False,
    )
    assert test_latest.failures(junit) == [
        "tests/test_some.py::test_bad",
        "tests/test_some.py::TestGroup::test_inside",
    ]


def test_tested_pythons_come_from_the_classifiers() -> None:
    """The tested versions are pyproject.toml's classifiers, oldest first, from 3.11."""
    versions = pythons.tested()
    assert versions[0] == "3.11" and len(versions) >= 3
    assert versions == sorted(versions, key=lambda v: int(v.split(".")[1]))
    requires = pyproject()["project"]["requires-python"]
    assert requires == f">={versions[0]}"


def test_the_running_python_is_found() -> None:
    """find() answers with an interpreter of the asked version, or None."""
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    found = pythons.find(version)
    assert found is not None, f"no python{version} found, though one runs this"
    python, full = found
    assert full.startswith(version + ".")
    assert Path(python).exists()
    assert pythons.find("3.2") is None
