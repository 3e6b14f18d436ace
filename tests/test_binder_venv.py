"""tools/binder_venv.py: the Binder check's venv is rebuilt exactly when its inputs change."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, load_tool

TOOL = ROOT / "tools" / "binder_venv.py"


def make_venv(tmp_path: Path, *more: str) -> subprocess.CompletedProcess[str]:
    """Run the tool on a venv in ``tmp_path`` from ``tmp_path/requirements.txt``."""
    return subprocess.run(
        [
            sys.executable,
            TOOL,
            "--python",
            sys.executable,
            "--venv",
            str(tmp_path / "venv"),
            "--requirements",
            str(tmp_path / "requirements.txt"),
            "--inputs",
            str(tmp_path / "runtime.txt"),
            *more,
        ],
        capture_output=True,
        text=True,
        timeout=100,
        cwd=tmp_path,
        # Fail at once, not after a network timeout, if pip looked at an index.
        env={**os.environ, "PIP_NO_INDEX": "1"},
    )


def hello_wheel(folder: Path, greeting: str) -> Path:
    """A one-module wheel of a local package ("./hello-1-py3-none-any.whl").

    A wheel, not a source folder: building one needs setuptools from the
    index, and the tests have no network.
    """
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "hello-1-py3-none-any.whl"
    files = {
        "hello.py": f"GREETING = {greeting!r}\n",
        "hello-1.dist-info/METADATA": "Metadata-Version: 2.1\nName: hello\nVersion: 1\n",
        "hello-1.dist-info/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
            "Tag: py3-none-any\n"
        ),
    }
    record = "".join(f"{name},,\n" for name in files) + "hello-1.dist-info/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in {**files, "hello-1.dist-info/RECORD": record}.items():
            wheel.writestr(name, text)
    return path


def greeting_in(venv: Path) -> str:
    """What ``hello.GREETING`` is in the venv's Python."""
    return subprocess.run(
        [venv / "bin" / "python", "-c", "import hello; print(hello.GREETING)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=venv,
    ).stdout.strip()


def test_a_finished_build_is_kept_and_its_local_package_reinstalled(
    tmp_path: Path,
) -> None:
    """Built once; then kept while its inputs are the same, with the local package reinstalled."""
    wheel = "./dist/hello-1-py3-none-any.whl"
    (tmp_path / "requirements.txt").write_text(f"# the package\n{wheel}\n")
    (tmp_path / "runtime.txt").write_text("python-3.12\n")
    venv = tmp_path / "venv"

    hello_wheel(tmp_path / "dist", "first")
    first = make_venv(tmp_path)
    assert first.returncode == 0, first.stderr
    assert (
        "building" in first.stdout and "(no record of a finished build)" in first.stdout
    )
    assert greeting_in(venv) == "first"
    (venv / "left-by-the-first-build").touch()

    hello_wheel(tmp_path / "dist", "second")
    again = make_venv(tmp_path)
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("Binder check: reusing")
    assert "BINDER_FRESH=1 rebuilds it" in again.stdout
    assert f"--no-deps --force-reinstall {wheel}" in again.stdout
    assert (venv / "left-by-the-first-build").exists()
    assert greeting_in(venv) == "second"


def test_a_change_or_fresh_rebuilds(tmp_path: Path, monkeypatch, capsys) -> None:
    """With the record matching, --fresh rebuilds; a changed input rebuilds and is named."""
    tool = load_tool("binder_venv")
    built: list[Path] = []
    monkeypatch.setattr(tool, "build", lambda python, venv, *rest: built.append(venv))
    venv, requirements, runtime = (
        tmp_path / "venv",
        tmp_path / "req.txt",
        tmp_path / "rt.txt",
    )
    venv.mkdir()
    requirements.write_text("# nothing\n")
    runtime.write_text("python-3.12\n")
    args = [
        "--python",
        sys.executable,
        "--venv",
        str(venv),
        "--requirements",
        str(requirements),
    ]
    args += ["--inputs", str(runtime)]
    record = tool.inputs_of(sys.executable, [requirements, runtime], [])
    (venv / tool.RECORD).write_text(json.dumps(record))

    assert tool.main(args) == 0
    assert built == [] and "reusing" in capsys.readouterr().out
    assert tool.main([*args, "--fresh"]) == 0
    assert built == [venv] and "from nothing (--fresh)" in capsys.readouterr().out
    runtime.write_text("python-3.13\n")
    assert tool.main(args) == 0
    assert built == [venv, venv]
    assert f"from nothing ({runtime} changed)" in capsys.readouterr().out


def test_a_build_that_fails_leaves_no_record(tmp_path: Path, monkeypatch) -> None:
    """The record is written only once pip has installed everything."""
    tool = load_tool("binder_venv")
    commands: list[tuple] = []

    def run(*command) -> None:
        commands.append(command)
        if "pip" in command:
            raise subprocess.CalledProcessError(1, command)
        Path(command[-1]).mkdir()  # python -m venv VENV

    monkeypatch.setattr(tool, "run", run)
    venv = tmp_path / "venv"
    with pytest.raises(subprocess.CalledProcessError):
        tool.build(sys.executable, venv, tmp_path / "requirements.txt", [], {})
    assert [c[1:3] for c in commands] == [("-m", "venv"), ("-m", "pip")]
    assert venv.is_dir() and not (venv / tool.RECORD).exists()


def test_what_changed_is_named(tmp_path: Path) -> None:
    """The reason for a rebuild names the file, the Python or the extras that changed."""
    tool = load_tool("binder_venv")
    venv, runtime = tmp_path / "venv", tmp_path / "runtime.txt"
    venv.mkdir()
    runtime.write_text("python-3.12\n")
    built = tool.inputs_of(sys.executable, [runtime], ["pytest"])
    assert tool.changed(venv, built) == "no record of a finished build"
    (venv / tool.RECORD).write_text(json.dumps(built))
    assert tool.changed(venv, built) is None
    assert (
        tool.changed(venv, {**built, "extra": ["pytest", "nbval"]})
        == "other extra packages"
    )
    assert tool.changed(venv, {**built, "version": "3.13.0"}) == "another Python"
    runtime.write_text("python-3.13\n")
    now = tool.inputs_of(sys.executable, [runtime], ["pytest"])
    assert tool.changed(venv, now) == f"{runtime} changed"
    (venv / tool.RECORD).write_text("[]")
    assert tool.changed(venv, built) == "no record of a finished build"
