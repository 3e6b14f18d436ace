"""binder/: the files Binder (repo2docker) builds the students' environment from."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

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


def test_apt_installs_redis_server() -> None:
    """apt.txt installs Debian's redis-server, which notebook 08 starts."""
    packages = (BINDER / "apt.txt").read_text().split()
    assert "redis-server" in packages
