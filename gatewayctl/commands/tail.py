"""gatewayctl usage tail: requests as they complete, pushed by the server (GET /admin/v1/usage/tail).

On a terminal, a live view (rich): a header with requests per second, the error rate and the spend per
minute over the last minute, and the newest requests below it. Not on a terminal, one line per request;
with --json, one JSON object per line, for piping. Once connected, a lost connection (a restart, a stop)
is retried until the server is back; Ctrl-C exits 0.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from typing import Annotated, Any

import typer

from gatewayctl import humanize
from gatewayctl.client import AdminClient
from gatewayctl.commands.request_log import (
    KeyFilter,
    ModelFilter,
    StatusFilter,
    key_label,
    short_time,
    tokens_text,
)
from gatewayctl.errors import CliError
from gatewayctl.options import Json, OptionalProject, Token, Url, admin
from gatewayctl.output import note, say, use_color

WINDOW_S = 60.0
RETRY_S = (0.5, 1.0, 2.0, 5.0)  # waits between reconnection attempts, the last one repeated


class Rates:
    """Requests per second, error rate and spend per minute over the last WINDOW_S seconds."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self._seen: deque[tuple[float, bool, int]] = deque()

    def add(self, row: dict[str, Any]) -> None:
        self._seen.append((time.monotonic(), row["status"] != "ok", int(row.get("cost_micro") or 0)))

    def summary(self, currency: str) -> str:
        now = time.monotonic()
        while self._seen and self._seen[0][0] < now - WINDOW_S:
            self._seen.popleft()
        span = max(1.0, min(WINDOW_S, now - self.started))
        count = len(self._seen)
        errors = sum(1 for _, failed, _ in self._seen if failed)
        spend = sum(cost for _, _, cost in self._seen)
        rate = f"{count / span:.1f} req/s"
        error_rate = f"{100 * errors / count:.1f}% errors" if count else "0.0% errors"
        per_minute = humanize.money(int(spend * 60 / span), currency)
        return f"{rate}  {error_rate}  {per_minute}/min (last {int(span)} s)"


def _cells(row: dict[str, Any], currency: str) -> list[str]:
    status = row["status"] if row["status"] == "ok" else f"{row['status']} {row.get('http_status') or ''}".strip()
    return [
        short_time(row["ended_ms"]),
        str(row.get("project_name") or row["project_id"]),
        key_label(row),
        row["model"] + (" (replay)" if row.get("replay_of") else ""),
        status,
        tokens_text(row),
        humanize.money(row.get("cost_micro") or 0, currency),
        f"{row['latency_ms']:,} ms",
    ]


HEADERS = ["TIME", "PROJECT", "KEY", "MODEL", "STATUS", "IN/OUT", "COST", "LATENCY"]


class LiveView:
    """What the terminal shows: rich renders it again a few times a second (rates move without traffic)."""

    def __init__(self, client: AdminClient, rates: Rates) -> None:
        self._client, self._rates = client, rates
        self.rows: deque[dict[str, Any]] = deque(maxlen=200)
        self.status = "connecting…"

    def __rich__(self) -> Any:
        import shutil

        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        height = shutil.get_terminal_size((80, 24)).lines
        grid = Table(box=None, pad_edge=False, header_style="bold")
        for n, header in enumerate(HEADERS):
            grid.add_column(header, justify="right" if n >= 5 else "left", no_wrap=True)
        for row in list(self.rows)[-max(1, height - 6) :]:
            grid.add_row(*_cells(row, self._client.currency))
        where = Text(f"{self._client.url}: {self.status}", style="dim")
        rates = Text(self._rates.summary(self._client.currency), style="bold")
        return Group(where, rates, grid)


def _follow(client: AdminClient, params: dict[str, Any], on_row: Any, on_status: Any, count: int | None) -> None:
    """Follow the server's stream, reconnecting after a lost connection; returns after `count` rows."""
    seen, failures, connected_once = 0, 0, False
    while True:
        try:
            for event, data in client.events("/usage/tail", params):
                if event == "hello":
                    failures = 0
                    started = humanize.local_time(data.get("started_ms"), seconds=True)[:19]
                    on_status(f"connected (server up since {started})" if not connected_once else "reconnected")
                    connected_once = True
                elif event == "dropped":
                    on_status(f"{data['dropped']} requests not shown (this terminal fell behind)")
                elif event == "request":
                    on_row(data)
                    seen += 1
                    if count is not None and seen >= count:
                        return
        except CliError as exc:
            if exc.code != "unreachable" or not connected_once:
                raise
        wait = RETRY_S[min(failures, len(RETRY_S) - 1)]
        failures += 1
        on_status(f"connection lost; reconnecting in {wait:g} s…")
        time.sleep(wait)


def usage_tail(
    project: OptionalProject = None,
    key: KeyFilter = None,
    model: ModelFilter = None,
    status: StatusFilter = None,
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Exit after this many requests (default: follow until Ctrl-C).")
    ] = None,
    json_out: Json = False,
    url: Url = None,
    token: Token = None,
) -> None:
    """Follow requests live as they complete.

    Each with its time, project, key, model, status, tokens, cost and latency, under a header with
    req/s, the error rate and the spend per minute. Pushed by the server, filtered like
    `requests list`; with --json, one JSON object per line. Reconnects after a server restart;
    Ctrl-C exits.
    """
    import json

    client = admin(url, token)
    params = {"project": project, "key": key, "model": model, "status": status.value if status else None}
    rates = Rates()
    try:
        if json_out:

            def emit(row: dict[str, Any]) -> None:
                sys.stdout.write(json.dumps(row, sort_keys=True) + "\n")
                sys.stdout.flush()

            _follow(client, params, emit, note, count)
        elif sys.stdout.isatty() and use_color(sys.stdout):
            _follow_live(client, params, rates, count)
        else:

            def line(row: dict[str, Any]) -> None:
                say("  ".join(_cells(row, client.currency)))
                sys.stdout.flush()

            _follow(client, params, line, note, count)
    except KeyboardInterrupt:
        return


def _follow_live(client: AdminClient, params: dict[str, Any], rates: Rates, count: int | None) -> None:
    from rich.console import Console
    from rich.live import Live

    view = LiveView(client, rates)

    def add(row: dict[str, Any]) -> None:
        rates.add(row)
        view.rows.append(row)

    def set_status(text: str) -> None:
        view.status = text

    with Live(view, console=Console(), refresh_per_second=4, transient=False):
        _follow(client, params, add, set_status, count)
