"""calsync: two-way sync between JRNI bookings and Exchange / Outlook calendars (the Lambda layer's package)."""
