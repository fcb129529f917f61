"""The instrumentation library: runs, steps, webhook verification, propagation, drills.

Import the public names from :mod:`accessproof`; the modules here are private
except :mod:`accessproof.instrument.errors`.
"""

from __future__ import annotations
