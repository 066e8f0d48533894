"""Raw-socket clients that misbehave on purpose: silent, slowloris, slow body, huge header.

Bounded by construction: a `Herd` closes every socket it opened when its `with` block ends, and the
helpers that loop stop after a deadline. Traffic goes to 127.0.0.1 only.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path
from types import TracebackType


def connect(port: int, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=timeout)


class Herd:
    """Many raw connections to one server; records what the server answered and when it closed each."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.socks: list[socket.socket] = []
        self.answers: dict[socket.socket, bytes] = {}
        self.closed: set[socket.socket] = set()

    def __enter__(self) -> Herd:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        for sock in self.socks:
            sock.close()

    def open(self, count: int, first: bytes = b"") -> None:
        """Open `count` connections, each sending `first` (it may be nothing)."""
        for _ in range(count):
            sock = connect(self.port)
            self.socks.append(sock)
            self.answers[sock] = b""
            if first:
                sock.sendall(first)
            sock.setblocking(False)

    @property
    def still_open(self) -> list[socket.socket]:
        return [s for s in self.socks if s not in self.closed]

    def poll(self) -> None:
        """Read whatever the server sent; a connection it closed (FIN or reset) is marked closed."""
        readable, _, _ = select.select(self.still_open, [], [], 0) if self.still_open else ([], [], [])
        for sock in readable:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            if data:
                self.answers[sock] += data
            else:
                self.closed.add(sock)

    def send_each(self, data: bytes) -> None:
        """Send `data` on every open connection; one the server closed is marked closed."""
        for sock in self.still_open:
            try:
                sock.send(data)
            except BlockingIOError:
                pass
            except OSError:
                self.closed.add(sock)


def send_huge_header(port: int, size: int, chunk: int = 65536, deadline_s: float = 10.0) -> bytes:
    """Send a request whose one header is `size` bytes, stopping as soon as the server answers.

    Returns what the server sent before closing (or b"" if it never answered in time).
    """
    answer = b""
    with connect(port) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        filler = b"a" * chunk
        sent = 0
        end = time.monotonic() + deadline_s
        try:
            while sent < size and time.monotonic() < end:
                readable, _, _ = select.select([sock], [], [], 0)
                if readable:
                    break
                sock.sendall(filler)
                sent += chunk
            if sent >= size:
                sock.sendall(b"\r\n\r\n")
        except OSError:
            pass  # the server stopped reading: its answer, if any, is still to be read
        sock.settimeout(max(0.1, end - time.monotonic()))
        try:
            while data := sock.recv(65536):
                answer += data
        except OSError:
            pass
    return answer


def peak_rss_kib(pid: int) -> int:
    """The process's peak resident set size (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for pid {pid}")


def open_files_limit(pid: int) -> tuple[int, int]:
    """The process's (soft, hard) open-files limit, from /proc."""
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            soft, hard = line.split()[3:5]
            return int(soft), int(hard)
    raise AssertionError(f"no open-files limit for pid {pid}")
