"""`fleet fix`: from a verdict to a verified fix (plan, approve, apply in waves, verify, roll back, record)."""
