"""The Files API as a dialect: no model (so no price card: a call is free), scoped and rate limited by the
`files` endpoint class, recorded like any call. Stored bytes are metered as a quantity of their own."""

from __future__ import annotations

from typing import Any

from server.metering import Declared


class FilesDialect:
    name = "files"
    capability = "files"

    def declare(self, body: dict[str, Any]) -> Declared:
        return Declared(output_cap=0)

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None


FILES = FilesDialect()
