"""``python -m wsteach``: the same as the ``wsteach`` command."""

import sys

from .cli import main

sys.exit(main())
