"""The Secure world: an SPMC and its partitions (not built yet: issue 7)."""
