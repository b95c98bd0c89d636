"""The local stack: calsync's Lambda functions on moto and the two emulators, on loopback. Development only.

The deployed functions find the ``calsync`` package in their layer (``shared/``); here ``shared/`` is put on the
path the same way, so ``calsync local`` works from an installed script as well as with ``PYTHONPATH=.:shared``.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_SHARED = str(ROOT / "shared")
if _SHARED not in sys.path:
    sys.path.append(_SHARED)
