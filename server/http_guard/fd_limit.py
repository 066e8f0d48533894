"""The process's open-files limit, raised at start, and a connection cap that fits in it.

Many systems start services with a soft RLIMIT_NOFILE of 1024 (or less) and a hard limit far
above; every connection, upstream connection and database file takes a descriptor, and running
out makes accept() fail for everyone. So `serve` raises the soft limit to the hard one (capped at
SOFT_LIMIT_CEILING, for hosts whose hard limit is "unlimited"), and the connection cap is lowered
(with a warning) when it would not leave room for the other descriptors the gateway needs.

Fails soft: when the limit cannot be raised (an unprivileged process on a host that refuses, a
platform without `resource`), the current limit is kept and a warning says so.
"""

from __future__ import annotations

import logging

log = logging.getLogger("gateway.http")

SOFT_LIMIT_CEILING = 1 << 20
SPARE_DESCRIPTORS = 64  # the listening socket, the database and its WAL, logs, stored files, slack


def raise_open_files_limit() -> int:
    """Raise the soft RLIMIT_NOFILE toward the hard limit; return the soft limit now in force."""
    try:
        import resource
    except ImportError:  # not a Unix: nothing to raise
        return SOFT_LIMIT_CEILING
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = SOFT_LIMIT_CEILING if hard == resource.RLIM_INFINITY else min(hard, SOFT_LIMIT_CEILING)
    if soft != resource.RLIM_INFINITY and soft >= target:
        log.info("open files: soft limit %d (hard %d)", soft, hard)
        return int(soft)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ValueError, OSError) as exc:
        log.warning("open files: could not raise the soft limit %d toward %d: %s", soft, target, exc)
        return int(soft)
    log.info("open files: soft limit raised from %d to %d (hard %d)", soft, target, hard)
    return target


def fit_connection_cap(wanted: int, reserved: int, open_files: int, other_descriptors: int) -> int:
    """The connection cap to use: `wanted`, lowered so the other descriptors keep room."""
    room = open_files - other_descriptors - SPARE_DESCRIPTORS
    if wanted <= room:
        return wanted
    fitted = max(room, reserved + 1)
    log.warning(
        "server.max_connections %d does not fit in %d open files (%d kept for upstream connections and files):"
        " using %d",
        wanted,
        open_files,
        other_descriptors + SPARE_DESCRIPTORS,
        fitted,
    )
    return fitted
