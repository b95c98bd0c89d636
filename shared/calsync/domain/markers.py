"""The text calsync leaves on what it writes in JRNI, so that it knows its own blocks again: made and read here only.

A JRNI block calsync makes for an Outlook item carries, on the last line of its private note, a marker::

    calsync:<integration id>:<hash of the Outlook item id>

The marker is written with the block, so even a block made a moment ago (its link not yet recorded) is recognised:
inbound finds a block whose creation was not recorded, and outbound never pushes such a block back to Outlook.
(The stamp on calendar items is a pair of named properties: see ``calsync.adapters.ews.stamps``.)
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

MARKER_PREFIX = "calsync:"


def block_marker(integration_id: str, remote_id: str) -> str:
    """The marker of the block made for the Outlook item ``remote_id``."""
    return f"{marker_prefix(integration_id)}{hashlib.sha256(remote_id.encode()).hexdigest()[:20]}"


def marker_prefix(integration_id: str) -> str:
    """What every marker of one integration starts with (``calsync:<integration id>:``)."""
    return f"{MARKER_PREFIX}{integration_id}:"


def block_note(title: str, marker: str) -> str:
    """The private note of a block calsync makes: its title, then the marker on a line of its own."""
    title = title.strip()
    return f"{title}\n{marker}" if title else marker


def has_marker(notes: Iterable[str], integration_id: str) -> bool:
    """Whether any of these private notes carries a marker of this integration."""
    prefix = marker_prefix(integration_id)
    return any(line.startswith(prefix) for note in notes for line in _lines(note))


def has_any_marker(notes: Iterable[str]) -> bool:
    """Whether any of these private notes carries a marker of any integration (a block some calsync made)."""
    return any(line.startswith(MARKER_PREFIX) for note in notes for line in _lines(note))


def has_exact_marker(notes: Iterable[str], marker: str) -> bool:
    """Whether any of these private notes carries exactly ``marker`` on a line of its own."""
    return any(marker in _lines(note) for note in notes)


def split_note(note: str) -> tuple[str, str | None]:
    """(title, marker) of a block's note; the marker is the last ``calsync:`` line, if any."""
    lines = _lines(note)
    markers = [line for line in lines if line.startswith(MARKER_PREFIX)]
    title = "\n".join(line for line in lines if not line.startswith(MARKER_PREFIX))
    return title, markers[-1] if markers else None


def _lines(note: str) -> list[str]:
    return [line.strip() for line in note.splitlines() if line.strip()]
