"""Video and music generation: asynchronous jobs. The request that creates one is admitted, limited and
reserved like any call (the reservation holds the seconds it asks for, at `per_second_video` or
`per_second_music`), then the job runs in the background (server/media/jobs.py): its reservation is a
durable job hold, settled at the seconds actually produced when it completes, released if it fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.dialects import media_fields
from server.metering import Declared
from server.types import Unit

MAX_PROMPT = 32_000
UNITS = {"video": Unit.VIDEO_SECONDS, "music": Unit.MUSIC_SECONDS}
DEFAULT_SECONDS = {"video": 4, "music": 30}  # OpenAI's video default; a usual song sketch
MAX_SECONDS = {"video": 120, "music": 600}


@dataclass(frozen=True)
class JobDialect:
    kind: str  # video | music

    @property
    def name(self) -> str:
        return self.kind

    @property
    def capability(self) -> str:
        return self.kind

    def seconds(self, body: dict[str, Any]) -> int:
        found = media_fields.whole(body, "seconds", 1, MAX_SECONDS[self.kind], DEFAULT_SECONDS[self.kind])
        return found or DEFAULT_SECONDS[self.kind]

    def declare(self, body: dict[str, Any]) -> Declared:
        media_fields.text(body, "prompt", limit=MAX_PROMPT)
        media_fields.size(body)
        return Declared(output_cap=0, quantities={UNITS[self.kind]: self.seconds(body)})

    def cap_output(self, body: dict[str, Any], cap: int) -> None:
        return None


VIDEO = JobDialect("video")
MUSIC = JobDialect("music")
