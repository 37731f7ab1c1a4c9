"""Demonstrations of TPIR that run on this machine alone (127.0.0.1 only)."""
