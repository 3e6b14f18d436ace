"""Shared fixtures: every test starts real servers on free ports and stops them."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import wsteach

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TIMEOUT_FACTOR = float(os.environ.get("WSTEACH_TIMEOUT_FACTOR", "1"))


@pytest.fixture(autouse=True)
async def _stop_servers():
    """Stop whatever servers a test left running, so tests stay independent."""
    yield
    await wsteach.stop_all()
