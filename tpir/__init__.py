"""The TPIR node: configuration, recovery-point store, port bridge and CLI."""
