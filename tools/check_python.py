"""Say in one line whether this Python can run wsteach. Exit 1 if not.

Written so that even very old Pythons can run it and print the message.
"""

import sys

NEEDED = (3, 11)

if sys.version_info[:2] < NEEDED:
    sys.stderr.write(
        "wsteach needs Python %d.%d or newer, but %s is Python %d.%d; "
        "install a newer Python and run: make PYTHON=python3.%d ...\n"
        % (NEEDED + (sys.executable,) + tuple(sys.version_info[:2]) + (NEEDED[1],))
    )
    sys.exit(1)

try:
    import ensurepip  # noqa: F401
    import venv  # noqa: F401
except ImportError:
    sys.stderr.write(
        "wsteach needs Python's venv module, which this Python lacks; "
        "on Debian or Ubuntu run: sudo apt install python3-venv\n"
    )
    sys.exit(1)
