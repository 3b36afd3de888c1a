"""Desync detection: every rank's collective calls traced into a ring, compared when a test
fails or hangs, and the first call where the ranks diverge named in the verdict."""
