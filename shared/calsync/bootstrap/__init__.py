"""The composition root: settings, and one builder per function (``functions``) and for the streaming task
(``streaming``); the only place that picks concrete adapters."""
