"""The CLI's one error type: printed as one line (or `{"error": {...}}` with --json), exit code non-zero.

Exit codes: 1 when the operation failed (the server refused it, or could not be reached), 2 for a
usage error (a bad option value, a bad config), 130 when interrupted.
"""

from __future__ import annotations

from typing import Any

USAGE = 2


class CliError(Exception):
    def __init__(
        self,
        message: str,
        exit_code: int = 1,
        *,
        code: str | None = None,
        status: int | None = None,
        error: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
        self.code = code or ("usage_error" if exit_code == USAGE else "cli_error")
        self.status = status
        self.error = error  # the server's error object, when the server refused

    def as_json(self) -> dict[str, Any]:
        """`{"error": {...}}`: the server's own error object when there is one, else ours, same keys."""
        body: dict[str, Any] = dict(self.error or {})
        body.setdefault("message", self.message)
        body.setdefault("type", "usage_error" if self.exit_code == USAGE else "cli_error")
        body.setdefault("code", self.code)
        body.setdefault("param", None)
        body["status"] = self.status
        body["exit_code"] = self.exit_code
        return {"error": body}


def usage_error(message: str) -> CliError:
    return CliError(message, USAGE)
