"""The Files collaborator every media route and dialect uses: rows through the store, bytes through the
blob seam (server/files/blobs.py: on disk, or in PostgreSQL for a fleet), the storage quota and signed URLs,
scoped to one project at a time (another project's file is not found).

Failure behaviour: a file another project owns, or one deleted, is 404 `file_not_found`; an upload or a
stored result that would pass the plan's `storage_mb` is 413 `storage_quota_exceeded` before it is kept.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

from server.clock import now_ms
from server.errors import FILE_NOT_FOUND
from server.files.blobs import Blobs, Written
from server.files.quota import Quota, Reservation
from server.files.signing import UrlSigner
from server.settings import FileSettings, PlanSettings
from server.store.media_protocol import MediaStore, Page, StoredFile

log = logging.getLogger("gateway.files")
MIB = 1 << 20
DEFAULT_PLAN = PlanSettings()


def new_file_id() -> str:
    """OpenAI's shape: `file-` and 24 URL-safe characters."""
    return "file-" + secrets.token_urlsafe(18).replace("-", "a").replace("_", "b")


@dataclass(slots=True, frozen=True)
class Meta:
    """What a stored file's row says besides its bytes."""

    filename: str
    content_type: str
    purpose: str
    source: str  # upload | image | video | music
    request_id: str


GENERATED = "assistants_output"  # the purpose of files the gateway made (images, job results)


@dataclass(slots=True, frozen=True)
class Upload:
    """A file received to the scratch folder (server/api/multipart.py), not yet kept."""

    path: Path
    filename: str
    content_type: str
    size: int
    sha256: str


class Files:
    def __init__(
        self,
        store: MediaStore,
        blobs: Blobs,
        quota: Quota,
        signer: UrlSigner,
        settings: FileSettings,
        plans: Callable[[], dict[str, PlanSettings]],
    ) -> None:
        self.store = store
        self.blobs = blobs
        self.quota = quota
        self.signer = signer
        self.settings = settings
        self._plans = plans

    @property
    def max_file_bytes(self) -> int:
        return self.settings.max_file_mb * MIB

    def limit(self, plan: str | None) -> int:
        """The project's quota in bytes: its plan's `storage_mb` (else the default plan's, else 1024 MiB)."""
        plans = self._plans()
        found = plans.get(plan or "default") or plans.get("default") or DEFAULT_PLAN
        return found.storage_mb * MIB

    def headers(self, project_id: str, plan: str | None) -> dict[str, str]:
        """`x-storage-used-bytes` and `x-storage-limit-bytes`, on every /v1/files answer."""
        return {
            "x-storage-used-bytes": str(self.quota.in_use(project_id)),
            "x-storage-limit-bytes": str(self.limit(plan)),
        }

    def reserve(self, project_id: str, plan: str | None, adding: int) -> Reservation:
        return self.quota.reserve(project_id, self.limit(plan), adding)

    async def keep_upload(
        self, project_id: str, upload: Upload, purpose: str, reservation: Reservation, request_id: str
    ) -> StoredFile:
        """Move a received upload into place and give it its row; its reservation becomes use."""
        file_id = new_file_id()
        try:
            self.quota.confirm(reservation, upload.size)
            await self.blobs.keep(upload.path, project_id, file_id)
            meta = Meta(upload.filename, upload.content_type, purpose, "upload", request_id)
            stored = self.describe(project_id, file_id, Written(upload.size, upload.sha256), meta)
            await self.store.add_file(stored)
        except BaseException:
            await self._discard(project_id, file_id)
            self.quota.settle(reservation, None)
            raise
        self.quota.settle(reservation, upload.size)
        return stored

    async def add_bytes(self, project_id: str, data: bytes, meta: Meta) -> StoredFile:
        """Bytes the gateway produced or fetched whole (a generated image): stored, given a row, counted."""
        file_id = new_file_id()
        stored = self.describe(project_id, file_id, await self.blobs.write(project_id, file_id, data), meta)
        try:
            await self.store.add_file(stored)
        except BaseException:
            await self._discard(project_id, file_id)
            raise
        self.quota.add(project_id, stored.bytes)
        return stored

    async def receive(self, project_id: str, chunks: AsyncIterator[bytes], meta: Meta) -> StoredFile:
        """A job's result streamed to its blob; its row is written by the caller's closing (returned, not added)."""
        file_id = new_file_id()
        written = await self.blobs.write_stream(project_id, file_id, chunks, self.max_file_bytes)
        return self.describe(project_id, file_id, written, meta)

    @staticmethod
    def describe(project_id: str, file_id: str, written: Written, meta: Meta) -> StoredFile:
        return StoredFile(
            id=file_id,
            project_id=project_id,
            purpose=meta.purpose,
            filename=meta.filename,
            bytes=written.size,
            content_type=meta.content_type,
            sha256=written.sha256,
            source=meta.source,
            created_ms=now_ms(),
            request_id=meta.request_id,
        )

    def counted(self, stored: StoredFile) -> None:
        """A file whose row another transaction wrote (a job's result) now counts against the quota."""
        self.quota.add(stored.project_id, stored.bytes)

    async def find(self, file_id: str, project_id: str) -> StoredFile:
        found = await self.store.find_file(file_id, project_id)
        if found is None:
            raise FILE_NOT_FOUND(ref=file_id, param="file_id")
        return found

    async def delete(self, project_id: str, file_id: str) -> StoredFile:
        found = await self.store.delete_file(project_id, file_id, now_ms())
        if found is None:
            raise FILE_NOT_FOUND(ref=file_id, param="file_id")
        await self._discard(project_id, file_id)
        self.quota.free(project_id, found.bytes)
        return found

    async def _discard(self, project_id: str, file_id: str) -> None:
        """Remove bytes no live row refers to; a failure is logged, never raised over the error (or the
        deletion) that led here: what stays is an orphan the blob store sweeps at a later start."""
        try:
            await self.blobs.remove(project_id, file_id)
        except Exception as exc:
            log.warning("bytes of %s not removed (swept later): %r", file_id, exc)

    async def list(self, project_id: str, page: Page) -> list[StoredFile]:
        return await self.store.list_files(project_id, page)

    def url(self, base_url: str, file_id: str) -> str:
        return self.signer.url(self.settings.public_url or base_url, file_id, now_ms() // 1000)
