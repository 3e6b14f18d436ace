"""The tested Pythons, as the installed package knows them, and the untested one's line."""

from __future__ import annotations

import subprocess
import sys

from conftest import load_tool

from wsteach import versions


def test_the_package_knows_the_tested_pythons() -> None:
    """The installed metadata names the same versions as pyproject.toml, this one among them."""
    known = versions.tested()
    pythons = load_tool("pythons")
    assert [f"3.{minor}" for _, minor in known] == pythons.tested()
    assert tuple(sys.version_info[:2]) in known
    assert versions.tested("no-such-distribution") == [], "not installed: no list"


def test_a_newer_python_gets_one_line() -> None:
    """Python 3.14 with 3.11-3.13 tested: one line that says it should work, untested."""
    tested = [(3, 11), (3, 12), (3, 13)]
    assert versions.untested_line((3, 14, 0), tested) == (
        "wsteach: Python 3.14 is not one the kit is tested on (3.11 to 3.13): it "
        "should work; if something behaves oddly, tell your instructor, or use "
        "Python 3.13"
    )
    assert versions.untested_line((3, 12, 1), tested) is None
    assert versions.untested_line((3, 14, 0), []) is None, "no metadata: nothing to say"


def test_import_on_a_tested_python_says_nothing() -> None:
    """import wsteach on a tested Python prints nothing at all."""
    result = subprocess.run(
        [sys.executable, "-c", "import wsteach"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert (result.stdout, result.stderr) == ("", "")


def test_an_untested_python_is_said_on_stderr(monkeypatch, capsys) -> None:
    """say_if_untested prints the untested line on stderr, and nothing on stdout."""
    monkeypatch.setattr(versions, "tested", lambda: [(3, 9), (3, 10)])
    versions.say_if_untested()
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(
        f"wsteach: Python {sys.version_info[0]}.{sys.version_info[1]} "
    )
