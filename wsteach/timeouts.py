"""The timeout factor: how much slower than a laptop this machine is.

Every default timeout of the kit (a client's receive, a grader's wait, the
class board's connect) is multiplied by :data:`TIMEOUT_FACTOR`, read once
from ``WSTEACH_TIMEOUT_FACTOR``. Set it to 2 or 3 on a slow Binder or CI
machine; the tests read it through ``tests/utils.py``.
"""

from __future__ import annotations

import math
import os
import warnings

__all__ = ["TIMEOUT_FACTOR", "timeout_factor"]


def timeout_factor(text: str | None) -> float:
    """Read ``WSTEACH_TIMEOUT_FACTOR``'s value: a number above 0, 1 if unset.

    A value that isn't one (``"slow"``, ``0``, ``inf``) warns, in a line that
    says what is wrong, and counts as 1: a typo in a variable must not stop
    ``import wsteach``.
    """
    if text is None or not text.strip():
        return 1.0
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        warnings.warn(
            f"WSTEACH_TIMEOUT_FACTOR must be a number above 0, such as 2, "
            f"got {text!r}: using 1",
            RuntimeWarning,
            stacklevel=2,
        )
        return 1.0
    return value


TIMEOUT_FACTOR = timeout_factor(os.environ.get("WSTEACH_TIMEOUT_FACTOR"))
"""Multiplies default timeouts; set ``WSTEACH_TIMEOUT_FACTOR`` on slow machines."""
