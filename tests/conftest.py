"""Suite-wide settings: tests only ever talk to loopback."""

from __future__ import annotations

import os

# exchangelib's OAuth client refuses plain http unless told this is a test setting.
os.environ.setdefault("OAUTHLIB_INSECURE_TRANSPORT", "1")
