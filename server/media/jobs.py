"""The background runner of asynchronous jobs (video, music): durable across restarts and kill -9.

Everything a job needs lives in its row (server/store/media_protocol.py) and its durable hold. The runner
loads the active jobs at start-up and then, every `[jobs] poll_interval_s` (at once for a new job):

- a job the provider has not accepted yet is submitted through the model's targets (fallback like any
  call), with the job's id as its Idempotency-Key; the provider's job id is recorded as soon as it
  answers, so after a restart a submitted job is only polled, never sent again (and a crash inside the
  submission itself is covered by the key: the provider answers the job it already has);
- a submitted job is polled; its status and progress are recorded as they move;
- a completed job's result is streamed to the file store and the job ends in one transaction with its
  request row, its usage (the seconds produced), its ledger debit, its hold settled and `job.completed`;
- a job that fails upstream, is refused, or passes `[jobs] timeout_s` ends with its hold released,
  nothing billed, and `job.failed`.

Failure behaviour: a provider that cannot be reached is tried again at the next poll until the job's
deadline; an outcome the store cannot write now is kept by settlement and written when it recovers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import secrets
from dataclasses import replace
from typing import Any

import orjson

from server.budget import Hold
from server.clock import now_ms
from server.dialects.jobs import UNITS, JobDialect
from server.errors import GatewayError, UpstreamError
from server.events.outbox import job_event
from server.files.service import GENERATED, Files, Meta
from server.limits import Admission
from server.metering import Rates
from server.pipeline import RequestPath
from server.providers.base import Provider
from server.providers.forms import Form
from server.settings import JobSettings
from server.settlement import ERROR, OK, UPSTREAM_FAILED, Ticket, conclude
from server.snapshot import ModelEntry, Snapshot
from server.store.media_protocol import COMPLETED, FAILED, IN_PROGRESS, QUEUED, Job, JobEnd, MediaStore
from server.store.protocol import HoldRecord, Intent
from server.types import Call, Caller, Target, Unit, Usage

log = logging.getLogger("gateway.jobs")
EXTENSIONS = {"video": ".mp4", "music": ".wav"}


def new_job_id(kind: str) -> str:
    return f"{kind}_{secrets.token_hex(16)}"


def _status(value: Any) -> str:
    return value if value in (QUEUED, IN_PROGRESS, COMPLETED, FAILED) else IN_PROGRESS


def _progress(value: Any) -> int:
    return max(0, min(100, int(value))) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def _seconds(value: Any, asked: int | None) -> int:
    """The seconds the provider says it produced (OpenAI sends them as a string), else those asked for."""
    try:
        found = float(value)
    except (TypeError, ValueError):
        found = -1.0
    return math.ceil(found) if 0 < found <= 86_400 else (asked or 1)


def job_form(job: Job) -> Form:
    """The fields a provider's job API takes (prompt, seconds, size; the model is set per target)."""
    fields = [(name, str(job.body[name])) for name in ("prompt", "seconds", "size") if job.body.get(name) is not None]
    return Form(fields)


class JobRunner:
    def __init__(
        self,
        path: RequestPath,
        store: MediaStore,
        files: Files,
        snapshot: Snapshot,
        settings: JobSettings,
        holds: dict[str, tuple[Hold, HoldRecord]],
        adopted_only: bool = False,
    ) -> None:
        """`adopted_only` (a fleet on a shared store): resume at start only the jobs whose holds this
        process adopted (those of processes that are gone), not those other live processes run."""
        self._path, self._store, self._files, self._snapshot = path, store, files, snapshot
        self._settings = settings
        self._holds = holds  # job holds restored at start-up, by hold id (the job's request id)
        self._adopted_only = adopted_only
        self._active: dict[str, Job] = {}
        self._tickets: dict[str, Ticket] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._slots = asyncio.Semaphore(settings.concurrency)

    @property
    def active(self) -> int:
        return len(self._active)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="jobs")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for ticket in self._tickets.values():
            ticket.end()
        self._tickets.clear()

    async def create(self, ticket: Ticket, job: Job) -> None:
        """Write the job and its durable hold (one transaction); it is submitted at once."""
        await self._store.create_job(job, ticket.intent.hold)
        self._active[job.id] = job
        self._tickets[job.id] = ticket
        self._wake.set()

    async def _run(self) -> None:
        for job in await self._store.active_jobs():
            if self._adopted_only and job.request_id not in self._holds and job.id not in self._tickets:
                continue  # a live process of the fleet runs it (its hold is that process's)
            self._active.setdefault(job.id, job)
        if self._active:
            log.info("resuming %d unfinished job(s)", len(self._active))
        while True:
            self._wake.clear()
            jobs = list(self._active.values())
            await asyncio.gather(*(self._guarded(job) for job in jobs))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._settings.poll_interval_s):
                    await self._wake.wait()

    async def _guarded(self, job: Job) -> None:
        async with self._slots:
            try:
                await self._step(self._active.get(job.id, job))
            except Exception:
                log.exception("job %s: step failed; trying again at the next poll", job.id)

    async def _step(self, job: Job) -> None:
        if job.id not in self._active:
            return
        ticket = self._ticket(job)
        if ticket is None:
            return
        if now_ms() > job.deadline_ms:
            seconds = self._settings.timeout_s
            await self._end_failed(job, ticket, {"code": "timeout", "message": f"not finished within {seconds} s"})
        elif job.upstream_id is None:
            await self._submit(job, ticket)
        else:
            await self._poll(job, ticket)

    async def _submit(self, job: Job, ticket: Ticket) -> None:
        form = job_form(job)
        try:
            _, target, answer, lease = await ticket.generation.router.first_success(
                ticket.model.targets,
                lambda provider, model: provider.job_create(job.kind, model, form, job.id),
                [],
                job.project_id,
            )
        except UpstreamError as exc:
            if not exc.retryable:  # the provider refused the job: it will not run
                await self._end_failed(job, ticket, {"code": "rejected", "message": exc.message})
            return
        except GatewayError as exc:
            log.warning("job %s: not submitted yet (%s)", job.id, exc.message)
            return
        lease.release()
        upstream_id = answer.get("id")
        if not isinstance(upstream_id, str) or not upstream_id:
            await self._end_failed(job, ticket, {"code": "invalid_response", "message": "the provider gave no job id"})
            return
        changes = {
            "upstream_id": upstream_id,
            "target": str(target),
            "status": _status(answer.get("status")) if answer.get("status") in (QUEUED, IN_PROGRESS) else QUEUED,
            "progress": _progress(answer.get("progress")),
            "submits": job.submits + 1,
            "updated_ms": now_ms(),
        }
        await self._store.update_job(job.id, **changes)
        self._active[job.id] = replace(job, **changes)
        self._wake.set()  # poll it at once: a fast provider may already be done

    def _provider(self, job: Job, ticket: Ticket) -> tuple[Target, Provider | None]:
        target = Target.parse(job.target or "")
        return target, ticket.generation.providers.get(target.provider)

    async def _poll(self, job: Job, ticket: Ticket) -> None:
        target, provider = self._provider(job, ticket)
        if provider is None:
            await self._end_failed(job, ticket, {"code": "provider_removed", "message": f"{target.provider} is gone"})
            return
        assert job.upstream_id is not None
        try:
            answer = await provider.job_status(job.kind, job.upstream_id)
        except UpstreamError as exc:
            if not exc.retryable:
                await self._end_failed(job, ticket, {"code": "lost", "message": exc.message})
            return
        status, progress = _status(answer.get("status")), _progress(answer.get("progress"))
        if status == COMPLETED:
            await self._end_completed(job, ticket, provider, answer)
        elif status == FAILED:
            error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
            await self._end_failed(job, ticket, {"code": str(error.get("code") or "failed"), **_message(error)})
        elif (status, progress) != (job.status, job.progress):
            await self._store.update_job(job.id, status=status, progress=progress, updated_ms=now_ms())
            self._active[job.id] = replace(job, status=status, progress=progress)

    async def _end_completed(self, job: Job, ticket: Ticket, provider: Provider, answer: dict[str, Any]) -> None:
        assert job.upstream_id is not None
        content = await provider.job_content(job.kind, job.upstream_id)
        try:
            name, content_type = job.id + EXTENSIONS[job.kind], content.content_type.split(";", 1)[0]
            meta = Meta(name, content_type, GENERATED, job.kind, job.request_id)
            stored = await self._files.receive(job.project_id, content.__aiter__(), meta)
        finally:
            await content.aclose()
        seconds = _seconds(answer.get("seconds"), job.seconds)
        usage = Usage({UNITS[job.kind]: seconds, Unit.STORED_BYTES: stored.bytes})
        target = Target.parse(job.target or "")
        outcome = conclude(ticket.model.rates, [], status=OK, http_status=200, target=target, usage=usage)
        assert outcome.charge is not None
        facts = {"kind": job.kind, "model": job.model, "file_id": stored.id, "seconds": seconds}
        event = job_event(job.id, job.project_id, COMPLETED, outcome.ended_ms, cost_micro=outcome.charge.micro, **facts)
        end = JobEnd(job.id, COMPLETED, outcome.ended_ms, result=stored)
        await self._close(job, ticket, outcome, end, event)
        self._files.counted(stored)

    async def _end_failed(self, job: Job, ticket: Ticket, error: dict[str, Any]) -> None:
        target = Target.parse(job.target) if job.target else None
        status = UPSTREAM_FAILED if target is not None else ERROR
        outcome = conclude(
            ticket.model.rates, [], status=status, http_status=502, target=target, error_code="job_failed"
        )
        event = job_event(job.id, job.project_id, FAILED, outcome.ended_ms, kind=job.kind, model=job.model, error=error)
        await self._close(job, ticket, outcome, JobEnd(job.id, FAILED, outcome.ended_ms, error=error), event)

    async def _close(self, job: Job, ticket: Ticket, outcome: Any, end: JobEnd, event: Any) -> None:
        """The job's end, its request row, usage, debit, hold and event: one transaction (kept by settlement
        and written later if the store cannot take it now)."""
        written = self._path.settlement.close(ticket, outcome, delivered=True, job_end=end, events=(event,))
        self._active.pop(job.id, None)
        self._tickets.pop(job.id, None)
        ticket.end()
        await asyncio.shield(written)
        self._path.bodies.record(ticket.call, outcome.ended_ms, {"job": job.id, "status": end.status}, outcome.status)

    def _ticket(self, job: Job) -> Ticket | None:
        """This process's ticket for the job, or one rebuilt from its row and its restored hold."""
        found = self._tickets.get(job.id)
        if found is not None:
            return found
        restored = self._holds.pop(job.request_id, None)
        key = self._snapshot.keys_by_id.get(job.key_id)
        project = self._snapshot.projects_by_id.get(job.project_id)
        if restored is None or key is None or project is None:
            log.error("job %s: its hold, key or project is gone; it cannot be settled", job.id)
            self._active.pop(job.id, None)
            return None
        hold, record = restored
        generation = self._path.generations.current
        model = generation.models.get(job.model)
        entry = ModelEntry(
            name=job.model,
            targets=model.targets if model is not None else (),
            rates=Rates.from_micro(record.price_card),  # the card the reservation was made at
            capabilities=(job.kind,),
            context_window=0,
        )
        raw = orjson.dumps(job.body)
        call = Call(
            request_id=job.request_id,
            endpoint=job.kind,
            model=job.model,
            body=dict(job.body),
            client_request_id=job.client_request_id,
            started_ms=job.created_ms,
            body_bytes=len(raw),
            raw=raw,
        )
        caller = Caller(project.id, key.id, "", key=key, project=project)
        written: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        written.set_result(None)
        generation.enter()
        ticket = Ticket(
            caller, call, entry, JobDialect(job.kind), Admission(), hold, Intent(caller, call, record), written,
            generation, job=True,
        )  # fmt: skip
        self._tickets[job.id] = ticket
        return ticket


def _message(error: dict[str, Any]) -> dict[str, str]:
    return {"message": str(error.get("message") or "the provider reported the job failed")}
