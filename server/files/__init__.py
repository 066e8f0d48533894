"""Stored files: bytes on disk under the data dir, rows through the store, a per-project quota, and signed
download URLs."""
