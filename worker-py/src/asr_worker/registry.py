"""This process's row in the ``workers`` table: registration, heartbeat, state, counters."""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
import os
import socket

from psycopg_pool import AsyncConnectionPool

from . import db

__all__ = ["Registry", "worker_version"]

log = logging.getLogger(__name__)


def worker_version() -> str:
    try:
        return importlib.metadata.version("lanasr-worker")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"


class Registry:
    """Keeps the ``workers`` row of one worker process up to date."""

    def __init__(
        self,
        pool: AsyncConnectionPool,
        worker_id: str,
        *,
        queues: list[str],
        concurrency: int,
        heartbeat_s: float,
    ):
        self.pool = pool
        self.worker_id = worker_id
        self.queues = queues
        self.concurrency = concurrency
        self.heartbeat_s = heartbeat_s
        self.procrastinate_worker_id: int | None = None
        self._running: dict[str, int] = {}
        self._task: asyncio.Task | None = None
        self.state = "starting"  # as last written by this process

    async def register(self, *, engine: str, device: str, models: dict, state: str = "starting", error=None) -> None:
        self.state = state
        await db.worker_insert(
            self.pool,
            worker_id=self.worker_id,
            host=socket.gethostname(),
            pid=os.getpid(),
            device=device,
            engine=engine,
            queues=self.queues,
            models=models,
            concurrency=self.concurrency,
            version=worker_version(),
            state=state,
            error=error,
        )

    def start_heartbeat(self) -> None:
        self._task = asyncio.create_task(self._beat(), name="registry heartbeat")

    async def _beat(self) -> None:
        while True:
            await asyncio.sleep(self.heartbeat_s)
            try:
                await db.worker_heartbeat(self.pool, self.worker_id, self.procrastinate_worker_id, self.state)
            except Exception as exc:  # the database may be briefly away: keep beating
                log.warning("Registry heartbeat failed: %s", exc)

    async def stop_heartbeat(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None

    async def set_state(self, state: str, *, error: str | None = None) -> None:
        current = next(iter(self._running), None)
        self.state = state
        await db.worker_set_state(self.pool, self.worker_id, state, current, error)

    async def job_started(self, task_id: str) -> None:
        self._running[task_id] = self._running.get(task_id, 0) + 1
        if self.state in ("idle", "busy"):
            self.state = "busy"
        await db.worker_set_state(self.pool, self.worker_id, "busy", task_id)

    async def job_finished(self, task_id: str, *, rtf: float | None, counted: bool) -> None:
        n = self._running.get(task_id, 0) - 1
        if n > 0:
            self._running[task_id] = n
        else:
            self._running.pop(task_id, None)
        state = "busy" if self._running else "idle"
        if self.state in ("stopping", "gone", "error"):
            state = self.state  # a job ending while the worker stops does not make it idle again
        else:
            self.state = state
        if counted:
            await db.worker_job_done(self.pool, self.worker_id, rtf, state)
        else:
            await db.worker_set_state(self.pool, self.worker_id, state, next(iter(self._running), None))
