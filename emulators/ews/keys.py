"""The aiohttp application key under which the running Emulator is kept."""

from __future__ import annotations

from typing import Any

from aiohttp import web

EMULATOR: web.AppKey[Any] = web.AppKey("emulator")
