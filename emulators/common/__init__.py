"""Pieces both emulators share: running an aiohttp application in a background thread or from the CLI."""
