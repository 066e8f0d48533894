"""systemd's notify protocol (sd_notify(3)) without libsystemd: one datagram to $NOTIFY_SOCKET.

`Type=notify` units learn from it that the gateway is READY (listening, database open), RELOADING and
back, STOPPING, and that its event loop is alive (WATCHDOG=1, every half of `WatchdogSec`). Outside
systemd (no NOTIFY_SOCKET) every call is a no-op.

Failure behaviour: a socket that cannot be reached is logged once per call and ignored; the gateway
never fails because its supervisor is not listening.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger("gateway")


def notify(*fields: str) -> bool:
    """Send `KEY=value` lines; True when a supervisor socket took them."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):  # an abstract socket
        address = "\0" + address[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall("\n".join(fields).encode())
    except OSError as exc:
        log.warning("sd_notify to %s failed: %s", os.environ.get("NOTIFY_SOCKET"), exc)
        return False
    return True


def monotonic_usec() -> str:
    """The MONOTONIC_USEC field systemd wants beside RELOADING=1."""
    return f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None when no watchdog is set for us."""
    usec = os.environ.get("WATCHDOG_USEC", "")
    pid = os.environ.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0 or (pid and pid != str(os.getpid())):
        return None
    return int(usec) / 2_000_000
