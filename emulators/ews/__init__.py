"""A stand-in for Exchange Web Services (EWS), faithful at the protocol level.

Development-only: used by the tests, the local stack and the benchmarks; never deployed. See README.md.
``emulators.ews.app.build_app`` assembles the server; ``emulators.ews.testing`` runs it for tests.
"""
