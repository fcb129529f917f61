"""The package version, kept apart so every module can import it without cycles."""

from __future__ import annotations

from typing import Final

__version__: Final = "0.1.0"
