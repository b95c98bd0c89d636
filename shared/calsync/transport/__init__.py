"""Triggers: each turns its event into a use-case call and the use case's errors into its own outcomes (``webhook``
for HTTP, ``sqs`` for partial batch responses, ``admin`` for the admin API's routes)."""
