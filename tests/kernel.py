"""A real IPython kernel (what JupyterLab runs), driven cell by cell from a test."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path

from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from utils import FACTOR

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class Kernel:
    """A kernel of ipykernel's own spec (this Python), whatever the user installed."""

    def __init__(self, manager: AsyncKernelManager) -> None:
        self.manager = manager
        self.client = manager.client()

    @classmethod
    async def start(cls, cwd: Path, env: dict[str, str] | None = None) -> Kernel:
        """Start a kernel in ``cwd``; ``env`` adds to this process's environment."""
        manager = AsyncKernelManager(
            kernel_name="python3", kernel_spec_manager=KernelSpecManager(kernel_dirs=[])
        )
        await manager.start_kernel(cwd=str(cwd), env={**os.environ, **(env or {})})
        kernel = cls(manager)
        kernel.client.start_channels()
        await kernel.client.wait_for_ready(timeout=60 * FACTOR)
        return kernel

    def send(self, code: str) -> str:
        """Start running a cell; return its message id for :meth:`shown`."""
        return self.client.execute(code)

    async def shown(self, msg_id: str) -> dict[str, str]:
        """What the cell shows until it ends: stdout, stderr, result, error."""
        shown = {"stdout": "", "stderr": "", "result": "", "error": ""}
        async with asyncio.timeout(30 * FACTOR):
            while True:
                msg = await self.client.get_iopub_msg()
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                kind, content = msg["msg_type"], msg["content"]
                if kind == "stream":
                    shown[content["name"]] += content["text"]
                elif kind == "execute_result":
                    shown["result"] += content["data"]["text/plain"]
                elif kind == "error":
                    shown["error"] += ANSI.sub("", "\n".join(content["traceback"]))
                elif kind == "status" and content["execution_state"] == "idle":
                    return shown

    async def run(self, code: str) -> dict[str, str]:
        """Run a cell to its end; return what it shows."""
        return await self.shown(self.send(code))

    async def stop(self) -> None:
        self.client.stop_channels()
        await self.manager.shutdown_kernel(now=True)
