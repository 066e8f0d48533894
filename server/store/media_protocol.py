"""What stored files and asynchronous jobs ask of storage, as typed records.

A file's bytes live behind the blob seam (server/files/blobs.py); its row here says whose it is, what it
holds and whether it was deleted (a deleted file keeps its row, so an id is never reused). A job's row carries
everything its worker needs after a restart: the request it came from, the target it was sent to, the
provider's own job id once the provider accepted it, and its progress. A job ends in the transaction that
writes its request row, usage, debit and hold resolution (`JobEnd`, carried by `Closing`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.store.protocol import HoldRecord

QUEUED, IN_PROGRESS, COMPLETED, FAILED = "queued", "in_progress", "completed", "failed"
ACTIVE = (QUEUED, IN_PROGRESS)


@dataclass(slots=True, frozen=True)
class StoredFile:
    id: str
    project_id: str
    purpose: str
    filename: str
    bytes: int
    content_type: str
    sha256: str
    source: str  # upload | image | video | music
    created_ms: int
    request_id: str | None = None
    deleted_ms: int | None = None


@dataclass(slots=True, frozen=True)
class Job:
    id: str
    kind: str  # video | music
    project_id: str
    key_id: str
    request_id: str  # the request row written when the job ends (and the id of its hold)
    model: str
    body: Mapping[str, Any]
    created_ms: int
    deadline_ms: int
    status: str = QUEUED
    progress: int = 0
    client_request_id: str | None = None
    target: str | None = None
    upstream_id: str | None = None
    seconds: int | None = None
    size: str | None = None
    base_url: str = ""
    result_file_id: str | None = None
    error: Mapping[str, Any] | None = None
    submits: int = 0
    updated_ms: int | None = None
    completed_ms: int | None = None


@dataclass(slots=True, frozen=True)
class JobEnd:
    """How a job ended, written with its request's closing: the final state, the stored result (completed)
    or the error (failed)."""

    job_id: str
    status: str
    ended_ms: int
    result: StoredFile | None = None
    error: Mapping[str, Any] | None = None


@dataclass(slots=True, frozen=True)
class Page:
    """A listing's filter and cursor, as the OpenAI list endpoints take them."""

    after: str | None = None
    limit: int = 20
    order: str = "desc"
    filters: Mapping[str, Any] = field(default_factory=dict)


class MediaStore(Protocol):
    """Files and jobs. Writes are one transaction each; a job's creation writes its hold too."""

    async def add_file(self, stored: StoredFile) -> None: ...

    async def find_file(self, file_id: str, project_id: str | None) -> StoredFile | None:
        """A live file by id (of `project_id` when given: another project's file is not found)."""
        ...

    async def list_files(self, project_id: str, page: Page) -> list[StoredFile]:
        """Live files, `page.limit + 1` at most (the extra one says there are more)."""
        ...

    async def delete_file(self, project_id: str, file_id: str, when_ms: int) -> StoredFile | None: ...

    async def storage_used(self) -> dict[str, int]:
        """Bytes of live files by project (what the quota starts from)."""
        ...

    async def create_job(self, job: Job, hold: HoldRecord) -> None:
        """The job row and its reservation (kind 'job'), in one transaction."""
        ...

    async def update_job(self, job_id: str, **values: Any) -> None:
        """Progress, status and the provider's job id while the job runs (never its end: see JobEnd)."""
        ...

    async def active_jobs(self) -> list[Job]: ...

    async def find_job(self, job_id: str, project_id: str, kind: str) -> Job | None: ...

    async def list_jobs(self, project_id: str, kind: str, page: Page) -> list[Job]: ...

    async def delete_job(self, project_id: str, job_id: str, when_ms: int) -> Job | None:
        """Hide a finished job (its result file is deleted as a file); None when there is no such finished job."""
        ...
