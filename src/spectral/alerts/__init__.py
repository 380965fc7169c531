"""Alerts: webhooks told when a drill fails or cannot verify, when something becomes overdue,
and when it recovers; each attempt recorded in the environment's ledger."""
