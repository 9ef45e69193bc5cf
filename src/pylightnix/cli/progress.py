"""Rendering of realize progress for the command line: :class:`ProgressView`.

The display itself lives in :mod:`pylightnix.realize.display`, so that
``realize(..., progress=True)`` from Python shows the same one.
"""

from __future__ import annotations

from pylightnix.realize.display import ProgressDisplay as ProgressView
from pylightnix.realize.display import stage_labels

__all__ = ["ProgressView", "stage_labels"]
