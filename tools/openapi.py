"""Writes docs/openapi.json, the admin API's OpenAPI document as the admin function serves it at
``/admin/openapi?format=json`` (``make openapi``; ``tests/calsync/test_openapi.py`` fails when the two differ)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "shared")]

from calsync.transport.admin import build_admin_api, openapi_document  # noqa: E402

DOCUMENT = ROOT / "docs" / "openapi.json"


def document() -> str:
    """The document, indented and with a final newline, as committed."""
    return json.dumps(json.loads(openapi_document(build_admin_api(lambda: None))), indent=2) + "\n"


if __name__ == "__main__":
    DOCUMENT.write_text(document())
    print(f"wrote {DOCUMENT.relative_to(ROOT)}")
