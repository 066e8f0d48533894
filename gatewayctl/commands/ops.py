"""Operating a running gateway through its admin API: reload its config (and take backups, below)."""

from __future__ import annotations

from typing import Any

from gatewayctl.options import Json, Token, Url, admin
from gatewayctl.output import emit_json, note, say


def reload(json_out: Json = False, url: Url = None, token: Token = None) -> None:
    """Re-read the server's config.toml without a restart.

    Applies models, targets, prices, plans, providers, routing and limits (as SIGHUP does); requests in
    flight finish on the config they started with. A file that does not validate is refused with the
    reason, the running config stays, and the command exits 1. Other keys (listener, storage, billing)
    are named as needing a restart.
    """
    answer = admin(url, token).post("/reload")
    if json_out:
        emit_json(answer)
        return
    say(f"reloaded {answer['config']}: generation {answer['generation']} in {answer['took_ms']} ms")
    for line in change_lines(answer["changed"]):
        say(f"  {line}")
    if answer["restart_needed"]:
        note(f"needs a restart to apply: {', '.join(answer['restart_needed'])}")


def change_lines(changed: dict[str, Any]) -> list[str]:
    lines = []
    for section in ("models", "providers", "plans"):
        found = changed[section]
        parts = [f"{verb} {', '.join(found[verb])}" for verb in ("added", "removed", "changed") if found[verb]]
        if parts:
            lines.append(f"{section}: {'; '.join(parts)}")
    lines += [f"{section}: changed" for section in ("routing", "limits") if changed[section]]
    return lines or ["no changes"]
