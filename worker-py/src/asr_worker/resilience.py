"""Surviving a PostgreSQL restart: transient-error retries and a Procrastinate worker that keeps going.

Procrastinate 3.10's worker stops for good when the database goes away: a failed heartbeat or
LISTEN reconnect ends its side task (and with no periodic task, nobody notices: the worker keeps
fetching but its heartbeat is dead, so its running jobs look stalled); a failed ``fetch_job`` ends
its run loop; a failed status update leaves a finished job in ``doing``. ``ResilientWorker``
retries each of those with a bounded backoff instead, so a worker rides out a database restart by
itself and its running job finishes exactly once (the attempt guard of docs/CONTRACT.md keeps a
second result out if the job was recovered elsewhere meanwhile).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import procrastinate.worker
import psycopg

__all__ = ["is_transient", "retry_transient", "ResilientWorker", "DB_RETRY_S"]

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long one database write that matters (a result, a status) is retried while PostgreSQL is away.
DB_RETRY_S = 120.0
_BACKOFF_MIN_S = 0.25
_BACKOFF_MAX_S = 3.0


def is_transient(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or its cause) is a lost or refused database connection, worth retrying."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError, ConnectionError)):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


async def retry_transient(
    fn: Callable[[], Awaitable[T]], what: str, *, timeout_s: float = DB_RETRY_S, on_error=None
) -> T:
    """Await ``fn()``, retrying while it fails on the connection, for up to ``timeout_s`` seconds."""
    deadline = time.monotonic() + timeout_s
    backoff = _BACKOFF_MIN_S
    warned = False
    while True:
        try:
            result = await fn()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() + backoff > deadline:
                raise
            if on_error is not None:
                on_error(exc)
            if not warned:
                log.warning("Database unavailable while %s (%s): retrying for up to %.0f s", what, exc, timeout_s)
                warned = True
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            continue
        if warned:
            log.info("Database back: %s done", what)
        return result


class ResilientWorker(procrastinate.worker.Worker):
    """A Procrastinate worker whose heartbeat, LISTEN, fetch and status updates survive a database restart.

    ``on_db_error(kind)`` is called once per failed database call (for the errors metric).
    """

    def __init__(self, *args: Any, on_db_error: Callable[[str], None] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_db_error = on_db_error or (lambda kind: None)

    def _db_error(self, exc: BaseException) -> None:
        self._on_db_error("database_unavailable" if is_transient(exc) else "database")

    async def _update_heartbeat(self):
        warned = False
        while True:
            await asyncio.sleep(self.update_heartbeat_interval)
            try:
                assert self.worker_id is not None
                await self.app.job_manager.update_heartbeat(self.worker_id)
                if warned:
                    log.info("Worker %s: heartbeat restored", self.worker_name)
                    warned = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._db_error(exc)
                if not warned:
                    log.warning("Worker %s: heartbeat failed (%s); retrying", self.worker_name, exc)
                    warned = True

    def _start_side_tasks(self) -> list[asyncio.Task[Any]]:
        listen, self.listen_notify = self.listen_notify, False
        try:
            tasks = super()._start_side_tasks()
        finally:
            self.listen_notify = listen
        if listen:
            tasks.append(asyncio.create_task(self._listen_forever(), name="listener"))
        return tasks

    async def _listen_forever(self) -> None:
        """LISTEN for new jobs; when the connection cannot be made, try again with a backoff."""
        backoff = _BACKOFF_MIN_S
        while True:
            started = time.monotonic()
            try:
                await self.app.job_manager.listen_for_jobs(
                    on_notification=self._handle_notification, queues=self.queues
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._db_error(exc)
                if time.monotonic() - started > 30:
                    backoff = _BACKOFF_MIN_S
                log.warning(
                    "Worker %s: job LISTEN lost (%s); reconnecting in %.1f s",
                    self.worker_name,
                    str(exc.__cause__ or exc).strip(),
                    backoff,
                )
            else:
                # listen_for_jobs returns when it cannot start listening: poll meanwhile, retry later.
                log.warning("Worker %s: job LISTEN ended; retrying", self.worker_name)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX_S)
            # Jobs deferred while the connection was down announced themselves to no one.
            self._new_job_event.set()

    async def _fetch_and_process_jobs(self):
        try:
            await super()._fetch_and_process_jobs()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._db_error(exc)
            log.warning("Worker %s: cannot fetch jobs (%s); retrying", self.worker_name, exc)
            # The run loop calls again after its polling interval (or a stop).
            await asyncio.sleep(_BACKOFF_MIN_S)

    async def _persist_job_status(self, *args: Any, **kwargs: Any):
        await retry_transient(
            lambda: super(ResilientWorker, self)._persist_job_status(*args, **kwargs),
            "recording a job's status",
            on_error=self._db_error,
        )
