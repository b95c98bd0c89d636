"""The use cases, one module each, each taking a small dependencies object that names only the ports it uses:
``accept_webhook``, ``sync_booking`` (with ``booking_executor``), ``sync_mailbox`` (with ``mailbox_executor``) and
the operator's ``admin`` queries and commands."""
