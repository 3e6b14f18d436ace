"""One timeout unit for every test, in the style of websockets' ``tests/utils.py``.

``WSTEACH_TIMEOUT_FACTOR`` is read once, by wsteach itself (a bad value warns
and counts as 1), and tests write their timeouts in :data:`MS`: ``5000 * MS``
is 5 s here and 50 s on a machine ten times slower.
"""

from __future__ import annotations

from wsteach.timeouts import TIMEOUT_FACTOR

__all__ = ["FACTOR", "MS"]

FACTOR = TIMEOUT_FACTOR
"""``WSTEACH_TIMEOUT_FACTOR``: how much slower than a laptop this machine is."""

MS = 0.001 * FACTOR
"""One millisecond, scaled: write a timeout as ``500 * MS``."""
