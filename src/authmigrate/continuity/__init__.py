"""Keeping the new store in step with the legacy one: status (sync, cutover, sunset to come)."""
