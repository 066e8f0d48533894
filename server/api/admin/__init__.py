"""The admin API under /admin/v1: reachable only with an admin token (a router-wide guard)."""
