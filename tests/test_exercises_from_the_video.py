"""Exercise 7.1 (notebook 07): a ported script passes, the video's own fails clearly."""

from __future__ import annotations

from pathlib import Path

from test_claims import NOTEBOOK_07, writefile_cells

from wsteach.exercises import from_the_video as ex
from wsteach.exercises._core import FAILED, NOT_ATTEMPTED, PASSED


def _script(tmp_path: Path, code: str) -> Path:
    path = tmp_path / "video_server_ported.py"
    path.write_text(code)
    return path


async def test_solution_passes(tmp_path: Path):
    """The solution script, run as a real process, passes every scenario."""
    code = ex.port_the_script.code.split("\n", 1)[1]  # Without its %%writefile line.
    results = await ex.port_the_script.results(_script(tmp_path, code))
    assert [r.status for r in results] == [PASSED] * 4


async def test_the_notebooks_answer_is_the_solution():
    """Notebook 07's %%writefile cell holds the solution that check() shows."""
    cells = writefile_cells(NOTEBOOK_07)
    written = "\n".join(
        line
        for line in cells["video_server_ported.py"].splitlines()
        if "SOLUTION" not in line
    )
    assert written.strip() == ex.port_the_script.code.split("\n", 1)[1].strip()


async def test_stub_is_not_attempted(tmp_path: Path):
    """The student notebook's stub script reports "not attempted yet"."""
    stub = "# Your code here: the video's server_echo.py, in today's API\n...\n"
    results = await ex.port_the_script.results(_script(tmp_path, stub))
    assert {r.status for r in results} == {NOT_ATTEMPTED}
    assert "write video_server_ported.py" in results[0].detail


async def test_the_videos_script_fails_with_its_error(tmp_path: Path):
    """The video's script as it was fails, naming the script's last line."""
    video = writefile_cells(NOTEBOOK_07)["video_server_echo.py"]
    results = await ex.port_the_script.results(_script(tmp_path, video))
    assert results[0].status == FAILED
    assert results[0].detail.endswith(
        "its last line: RuntimeError: no running event loop"
    )


async def test_two_parameters_fail_at_the_first_message(tmp_path: Path):
    """A port that keeps (websocket, path) starts, then fails the Pong scenario."""
    code = ex.port_the_script.code.split("\n", 1)[1]
    code = code.replace(
        "async def echo(websocket):", "async def echo(websocket, path):"
    )
    results = await ex.port_the_script.results(_script(tmp_path, code), timeout=1)
    assert results[0].status == PASSED
    assert results[1].status == FAILED


async def test_missing_file_is_reported(tmp_path: Path):
    """No file yet: every scenario says to run the %%writefile cell first."""
    results = await ex.port_the_script.results(tmp_path / "nothing.py")
    assert {r.status for r in results} == {FAILED}
    assert "run its %%writefile cell first" in results[0].detail


async def test_check_prints_one_line_per_scenario(tmp_path: Path, capsys):
    """check() prints the header and one line per scenario, never raising."""
    await ex.port_the_script.check(tmp_path / "nothing.py")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Exercise 7.1 · Port the video's server_echo.py"
    assert len(out) == 1 + len(ex.port_the_script.scenarios)
    ex.port_the_script.hint(2)
    assert capsys.readouterr().out.startswith("Hint 2 of 2: one parameter")
    assert repr(ex.port_the_script) == (
        "<ScriptExercise 7.1 · Port the video's server_echo.py>"
    )
