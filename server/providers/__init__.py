"""Upstream providers behind one protocol; `registry.build_providers` makes one per config entry."""
