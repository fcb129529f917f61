"""Example apps instrumented with accessproof; ``accessproof demo`` runs them."""

from __future__ import annotations
