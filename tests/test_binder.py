"""binder/: the files Binder (repo2docker) builds the students' environment from."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType

from conftest import load_tool
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version
from standin import REAL_PYTHON, standin_python

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pins() -> dict[str, Version]:
    """The name==version lines of binder/requirements.txt, by canonical name."""
    found = {}
    for line in (BINDER / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and line != ".":
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"not an exact pin: {line}"
            found[canonicalize_name(requirement.name)] = Version(specifier.version)
    return found


def test_runtime_is_a_python_the_package_supports() -> None:
    """runtime.txt names python-3.X, a version that requires-python accepts."""
    runtime = (BINDER / "runtime.txt").read_text().strip()
    match = re.fullmatch(r"python-(3\.\d+)", runtime)
    assert match, runtime
    requires = SpecifierSet(PYPROJECT["project"]["requires-python"])
    assert Version(match[1]) in requires


def test_requirements_install_this_repository() -> None:
    """requirements.txt installs the package itself, from the repository root."""
    lines = [
        line.strip()
        for line in (BINDER / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines.count(".") == 1


def test_every_dependency_is_pinned_to_a_version_it_accepts() -> None:
    """Each runtime dependency of pyproject.toml is pinned, within its range."""
    pinned = pins()
    for dependency in PYPROJECT["project"]["dependencies"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pinned, f"{name} is not pinned in binder/requirements.txt"
        assert pinned[name] in requirement.specifier, (name, pinned[name])
    assert pinned["websockets"].major == 17


def test_binder_holds_only_what_repo2docker_reads() -> None:
    """binder/ has runtime.txt and requirements.txt; apt.txt, postBuild (set -e) may be there."""
    names = {path.name for path in BINDER.iterdir()}
    assert (
        {"runtime.txt", "requirements.txt"}
        <= names
        <= {
            "runtime.txt",
            "requirements.txt",
            "apt.txt",
            "postBuild",
        }
    )
    if "postBuild" in names:
        assert "set -e" in (BINDER / "postBuild").read_text()


def test_readme_badge_opens_the_start_notebook_in_jupyterlab() -> None:
    """The README's Binder badge opens notebooks/00-start-here.ipynb in JupyterLab."""
    readme = (ROOT / "README.md").read_text()
    badge = re.search(r"\(https://mybinder\.org/v2/gh/([^)\s]+)\)", readme)
    assert badge, "no Binder badge link in README.md"
    assert badge[1].endswith("?urlpath=lab/tree/notebooks/00-start-here.ipynb")


def test_readme_has_one_binder_badge_the_one_contributing_describes() -> None:
    """One Binder badge, whose address is the one docs/contributing.md tells a fork to change."""
    readme = (ROOT / "README.md").read_text()
    badges = re.findall(r"\]\((https://mybinder\.org/v2/gh/[^)\s]+)\)", readme)
    assert len(badges) == 1, badges
    contributing = (ROOT / "docs" / "contributing.md").read_text()
    assert f"`{badges[0]}`" in contributing
    assert "OWNER" in badges[0]  # The placeholder that contributing explains.


def load_binder_python() -> ModuleType:
    """``tools/binder_python.py``, imported from its file."""
    return load_tool("binder_python")


def choose_in(tmp_path: Path, path: list[Path]) -> subprocess.CompletedProcess[str]:
    """Run tools/binder_python.py with only ``path`` on PATH and an empty pyenv."""
    return subprocess.run(
        [
            sys.executable,
            ROOT / "tools" / "binder_python.py",
            "--fallback",
            REAL_PYTHON,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PATH": os.pathsep.join(map(str, path)),
            "PYENV_ROOT": str(tmp_path / "pyenv"),
        },
    )


def test_binder_check_uses_the_runtime_python_from_pyenv(tmp_path) -> None:
    """A pyenv Python of runtime.txt's version is chosen, the newest patch first."""
    version = load_binder_python().runtime_version()
    major, minor = map(int, version.split("."))
    versions = tmp_path / "pyenv" / "versions"
    standin_python(
        versions / f"{version}.2" / "bin", f"python{version}", (major, minor)
    )
    newest = standin_python(
        versions / f"{version}.10" / "bin", f"python{version}", (major, minor)
    )
    result = choose_in(tmp_path, [tmp_path / "empty"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{newest}\n"
    assert result.stderr == (
        f"Binder check: Python {version} (binder/runtime.txt), {newest} ({version}.0)\n"
    )


def test_binder_check_uses_the_runtime_python_on_path(tmp_path) -> None:
    """Without pyenv, python3.X on PATH is chosen when it really is 3.X."""
    version = load_binder_python().runtime_version()
    major, minor = map(int, version.split("."))
    on_path = standin_python(tmp_path / "bin", f"python{version}", (major, minor))
    result = choose_in(tmp_path, [tmp_path / "bin"])
    assert result.stdout == f"{on_path}\n"


def test_binder_check_falls_back_to_the_python_running_make(tmp_path) -> None:
    """No such Python (a shim that reports another version does not count): make's, said aloud."""
    version = load_binder_python().runtime_version()
    major, minor = map(int, version.split("."))
    # What a pyenv shim for a version not installed does: it runs another one.
    standin_python(tmp_path / "bin", f"python{version}", (major, minor - 1))
    result = choose_in(tmp_path, [tmp_path / "bin"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{REAL_PYTHON}\n"
    actual = ".".join(map(str, sys.version_info[:3]))
    assert result.stderr == (
        f"Binder check: Python {version} (binder/runtime.txt) is not available "
        f"here, so it uses Python {actual} ({REAL_PYTHON}), which runs make: the "
        "exact version is not the one tested\n"
    )


def test_the_lock_takes_the_oldest_patch_release(tmp_path, monkeypatch) -> None:
    """find(lowest=True): the oldest 3.11.Z anywhere (PATH or pyenv), where pins install on all."""
    versions = tmp_path / "pyenv" / "versions"
    standin_python(versions / "3.11.7" / "bin", "python3.11", (3, 11, 7))
    debian = standin_python(tmp_path / "usr-bin", "python3.11", (3, 11, 2))
    standin_python(tmp_path / "local-bin", "python3.11", (3, 11, 4))
    monkeypatch.setenv(
        "PATH", f"{tmp_path / 'local-bin'}{os.pathsep}{tmp_path / 'usr-bin'}"
    )
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "pyenv"))
    binder_python = load_binder_python()
    assert binder_python.find("3.11", lowest=True) == (str(debian), "3.11.2")
    assert binder_python.find("3.11") == (
        str(versions / "3.11.7" / "bin" / "python3.11"),
        "3.11.7",
    )


def test_apt_installs_redis_server() -> None:
    """apt.txt installs Debian's redis-server, which notebook 08 starts."""
    packages = (BINDER / "apt.txt").read_text().split()
    assert "redis-server" in packages
