"""The ``calsync`` operator CLI: the admin API of a deployed stack (signed with SigV4) or of ``calsync local``.

An HTTP client only: it never imports the Lambda layer's adapters or use cases, and is never shipped in the layer.
"""
