"""JRNI emulator: the booking platform's admin REST API (HAL JSON) and its webhooks, for development and tests."""
