"""Stalled-job recovery: jobs held by a worker that stopped heartbeating are retried elsewhere.

Procrastinate does not rescue a dead worker's jobs by itself. Every worker runs this loop; a
PostgreSQL advisory lock makes one pass run at a time across all workers, so a job just
re-fetched by a live worker is never taken from it by a stale list.
"""

from __future__ import annotations

import asyncio
import logging

import procrastinate
from psycopg_pool import AsyncConnectionPool

from . import db

__all__ = ["recover_once", "recovery_loop", "RECOVERY_LOCK_KEY"]

log = logging.getLogger(__name__)

# pg_advisory_lock key: 'lanasr-recovery' folded into a bigint.
RECOVERY_LOCK_KEY = 0x6C616E617372_01


async def recover_once(app: procrastinate.App, pool: AsyncConnectionPool, stalled_after_s: float) -> list[int]:
    """Retry every job whose worker is silent for ``stalled_after_s``; return their ids."""
    retried: list[int] = []
    async with pool.connection() as conn:
        cur = await conn.execute("SELECT pg_try_advisory_lock(%s)", (RECOVERY_LOCK_KEY,))
        row = await cur.fetchone()
        if not row or not row[0]:
            return retried
        try:
            jobs = await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=stalled_after_s)
            for job in jobs:
                log.warning(
                    "Recovering stalled job %s (%s %s): its worker %s stopped heartbeating",
                    job.id,
                    job.task_name,
                    job.task_kwargs,
                    job.worker_id,
                )
                await app.job_manager.retry_job(job)
                retried.append(job.id)
            gone = await db.workers_mark_gone(pool, stalled_after_s)
            if gone:
                log.info("Workers gone (no heartbeat for %.0f s): %s", stalled_after_s, ", ".join(gone))
        finally:
            await conn.execute("SELECT pg_advisory_unlock(%s)", (RECOVERY_LOCK_KEY,))
    return retried


async def recovery_loop(
    app: procrastinate.App, pool: AsyncConnectionPool, *, stalled_after_s: float, interval_s: float
) -> None:
    """Run ``recover_once`` every ``interval_s`` seconds until cancelled."""
    while True:
        try:
            await recover_once(app, pool, stalled_after_s)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("Stalled-job recovery pass failed: %s", exc)
        await asyncio.sleep(interval_s)
