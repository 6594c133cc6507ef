"""The audit trail: every lookup and authentication event, hash-chained, signed, verifiable."""
