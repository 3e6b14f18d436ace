"""nbval plugin: each notebook runs once more in the same kernel, as a student re-runs cells.

nbval runs a notebook's cells one by one in a fresh kernel and compares their
outputs with the saved ones. With ``-p nbval_rerun`` (``tests/`` on the path),
each notebook gets one more test item after its last cell: every code cell again,
in order, in the same kernel, which must raise nothing but what a cell tagged
``raises-exception`` is meant to raise. Re-running a server cell must never end
in "address already in use", a stopped script must start again, and so on.

So a solution notebook runs twice in all, in one kernel, and its outputs are
compared once (the first time, when they must equal the saved ones).
"""

from __future__ import annotations

import queue

import pytest
from nbval.plugin import IPyNbCell, IPyNbFile

CELL_TIMEOUT = 60


class RerunNotebook(pytest.Item):
    """Every code cell of the notebook once more, in the kernel nbval used for it."""

    def runtest(self) -> None:
        notebook: IPyNbFile = self.parent  # type: ignore[assignment]
        kernel = notebook.kernel
        failures = []
        for number, cell in enumerate(
            c for c in notebook.nb.cells if c.cell_type == "code"
        ):
            msg_id = kernel.execute_cell_input(cell.source, allow_stdin=False)
            errors = []
            while True:
                try:
                    message = kernel.get_message(stream="iopub", timeout=CELL_TIMEOUT)
                except queue.Empty:
                    errors.append(f"no answer within {CELL_TIMEOUT} s")
                    break
                if message["parent_header"].get("msg_id") != msg_id:
                    continue
                if message["msg_type"] == "error":
                    content = message["content"]
                    errors.append(f"{content['ename']}: {content['evalue']}")
                elif message["msg_type"] == "status" and (
                    message["content"]["execution_state"] == "idle"
                ):
                    break
            kernel.await_reply(msg_id, timeout=CELL_TIMEOUT)
            expected = "raises-exception" in cell.metadata.get("tags", [])
            if errors and not expected:
                failures.append(f"cell {number} ({cell.get('id', '?')}): {errors}")
        assert not failures, "on the second run in the same kernel:\n" + "\n".join(
            failures
        )

    def reportinfo(self):  # type: ignore[no-untyped-def]
        return self.path, 0, f"{self.parent.name}::second run"


def pytest_collection_modifyitems(
    session: pytest.Session, items: list[pytest.Item]
) -> None:
    """After each notebook's last cell, one item that runs the notebook again."""
    result: list[pytest.Item] = []
    for index, item in enumerate(items):
        result.append(item)
        following = items[index + 1] if index + 1 < len(items) else None
        if isinstance(item, IPyNbCell) and (
            following is None or following.parent is not item.parent
        ):
            result.append(RerunNotebook.from_parent(item.parent, name="second run"))
    items[:] = result
