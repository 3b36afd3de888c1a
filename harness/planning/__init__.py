"""Layer 9, planning: which executor runs each cell on this host, or why it is skipped. Pure decisions."""
