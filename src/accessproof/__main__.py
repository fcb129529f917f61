"""``python -m accessproof``: the same as the ``accessproof`` command."""

from __future__ import annotations

import sys

from accessproof.cli import main

sys.exit(main())
