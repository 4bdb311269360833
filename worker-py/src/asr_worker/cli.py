"""``asr-worker``: ``run`` serves the queues; ``check`` says what this machine can serve."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
import time

from .config import SETTINGS_HELP, ConfigError, Settings, load_settings

__all__ = ["main", "run_worker", "check"]

log = logging.getLogger("asr_worker")

BATCH_QUEUES = {"batch"}  # need the audio store; live and final do not
STORE_WAIT_S = 10.0  # at start, how long a batch worker waits for its audio store to answer
SUPPORTED_QUEUES = {"batch", "live", "final"}


def queue_groups(settings: Settings, queues: list[str]) -> list[tuple[str, int]]:
    """One Procrastinate worker per queue, so a long live session never blocks batch or final work."""
    sizes = {"batch": settings.concurrency, "live": settings.live_sessions, "final": 1}
    return [(q, sizes[q]) for q in ("live", "final", "batch") if q in queues]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="asr-worker",
        description="LAN speech-to-text worker: transcribes the jobs the gateway queues in PostgreSQL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="settings (environment variables, also read from .env):\n" + SETTINGS_HELP,
    )
    sub = parser.add_subparsers(dest="command", metavar="{run,check}")
    for name, text in (
        ("run", "Serve ASR_WORKER_QUEUES until SIGINT/SIGTERM."),
        ("check", "Print database, storage, engine and queue readiness; non-zero if nothing can be served."),
    ):
        sub.add_parser(
            name,
            help=text,
            description=text,
            formatter_class=argparse.RawDescriptionHelpFormatter,
            epilog="settings (environment variables, also read from .env):\n" + SETTINGS_HELP,
        )
    return parser


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if settings.log_level.lower() != "debug":
        for noisy in ("procrastinate", "faster_whisper", "psycopg.pool", "smbprotocol", "smbclient"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("procrastinate.worker").setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"asr-worker: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    if args.command == "run":
        return asyncio.run(_run_then_leave(settings))
    return asyncio.run(check(settings))


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> int:
    """Run one worker until ``stop`` is set or SIGINT/SIGTERM arrives. Returns the exit code."""
    from psycopg_pool import AsyncConnectionPool

    from . import metrics
    from .engines import EngineError, load_engine, load_live
    from .recovery import recovery_loop
    from .registry import Registry
    from .resilience import ResilientWorker
    from .storage import Storage
    from .tasks import Runtime, make_app

    if not settings.database_url:
        log.error("DATABASE_URL is not set.")
        return 2
    queues = [q for q in settings.queues if q in SUPPORTED_QUEUES]
    unsupported = [q for q in settings.queues if q not in SUPPORTED_QUEUES]
    if unsupported:
        # Listening on a queue without its task would fail those jobs (TaskNotFound): leave them to others.
        log.warning("Not serving queue(s) %s: this worker version has no task for them", ", ".join(unsupported))
    if not queues:
        log.error("None of ASR_WORKER_QUEUES=%s can be served by this worker.", ",".join(settings.queues))
        return 2
    worker_id = settings.resolved_worker_name()
    storage = Storage(settings.storage_url, password=settings.smb_password or None)
    # Checked while the models load: a worker that cannot read the store must not take batch jobs
    # (each would fail with "not in the store"); live and final jobs read their audio from the database.
    store_check = (
        asyncio.ensure_future(asyncio.to_thread(_wait_for_store, storage, STORE_WAIT_S))
        if BATCH_QUEUES & set(queues)
        else None
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    signals_seen = []

    def on_signal(signum):
        signals_seen.append(signum)
        if len(signals_seen) > 1:
            log.error("Second signal: exiting now")
            os._exit(128 + signum)
        log.info("Signal %s: stopping (a second one exits at once)", signal.Signals(signum).name)
        stop.set()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError, ValueError):
            pass

    groups = queue_groups(settings, queues)
    slots = sum(n for _, n in groups)
    app = make_app(settings.database_url, max_size=max(8, slots + 3 * len(groups) + 5))
    try:
        try:
            await app.open_async()
        except Exception as exc:
            log.error("Cannot connect to the database (DATABASE_URL): %s", exc)
            return 1
        try:
            pool: AsyncConnectionPool = app.connector.pool
            registry = Registry(
                pool,
                worker_id,
                queues=queues,
                concurrency=slots,
                heartbeat_s=settings.heartbeat_s,
            )
            await registry.register(engine=settings.engine, device=settings.device, models={})
            registry.start_heartbeat()
            try:
                try:
                    load = asyncio.ensure_future(asyncio.to_thread(load_engine, settings))
                    stopped = asyncio.ensure_future(stop.wait())
                    await asyncio.wait({load, stopped}, return_when=asyncio.FIRST_COMPLETED)
                    stopped.cancel()
                    if not load.done():
                        log.info("Stopped while loading models")
                        await registry.set_state("gone")
                        return 0
                    engine = load.result()
                    live = None
                    if {"live", "final"} & set(queues):
                        live = await asyncio.to_thread(load_live, settings, engine)
                except EngineError as exc:
                    log.error("Models failed to load: %s", exc)
                    await registry.set_state("error", error=str(exc))
                    return 1
                if store_check is not None:
                    store_ok, store_msg = await store_check
                    if store_ok:
                        log.info("Audio store: %s", store_msg)
                    else:
                        queues = [q for q in queues if q not in BATCH_QUEUES]
                        log.warning(
                            "!!! NOT SERVING THE batch QUEUE: the audio store is unavailable (%s). "
                            "Fix ASR_STORAGE_URL (and ASR_SMB_PASSWORD) and restart this worker to take files%s.",
                            store_msg,
                            "; meanwhile it serves " + ",".join(queues) if queues else "",
                        )
                        if not queues:
                            await registry.set_state("error", error=f"The audio store is unavailable: {store_msg}")
                            return 1
                        groups = queue_groups(settings, queues)
                        registry.queues = queues
                        registry.concurrency = sum(n for _, n in groups)
                await registry.register(engine=engine.name, device=engine.device, models=engine.models, state="idle")
                m = metrics.METRICS
                m.info.labels(worker_id, engine.name, engine.device).set(1)
                metrics_addr = metrics.start(m, settings.metrics_addr)
                log.info(
                    "Worker %s ready: engine=%s device=%s models=[%s] queues=%s",
                    worker_id,
                    engine.name,
                    engine.device,
                    ", ".join(f"{k}={v}" for k, v in engine.models.items() if not k.endswith("_path")),
                    ",".join(queues),
                )
                runtime = Runtime(
                    settings=settings,
                    engine=engine,
                    storage=storage,
                    registry=registry,
                    pool=pool,
                    live=live,
                )
                workers = [
                    ResilientWorker(
                        app,
                        queues=[queue],
                        name=f"{worker_id}/{queue}",
                        concurrency=n,
                        additional_context={"runtime": runtime},
                        install_signal_handlers=False,
                        update_heartbeat_interval=settings.heartbeat_s,
                        stalled_worker_timeout=settings.stalled_after_s,
                        shutdown_graceful_timeout=settings.shutdown_grace_s,
                        fetch_job_polling_interval=2.0 if queue == "batch" else 1.0,
                        abort_job_polling_interval=1.0,
                        worker_middleware=[metrics.job_middleware],
                        on_db_error=m.error,
                    )
                    for queue, n in groups
                ]
                worker_tasks = {
                    asyncio.create_task(w.run(), name=f"procrastinate worker {q}")
                    for w, (q, _) in zip(workers, groups, strict=True)
                }
                recovery = asyncio.create_task(
                    recovery_loop(
                        app,
                        pool,
                        stalled_after_s=settings.stalled_after_s,
                        interval_s=settings.recovery_interval_s,
                    ),
                    name="stalled-job recovery",
                )
                watcher = asyncio.create_task(_track_worker_id(workers, registry))
                queue_poll = asyncio.create_task(m.poll_queues(pool), name="metrics queue depths")
                stop_wait = asyncio.ensure_future(stop.wait())
                await asyncio.wait({*worker_tasks, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
                await registry.set_state("stopping")
                recovery.cancel()
                watcher.cancel()
                queue_poll.cancel()
                for w in workers:
                    w.stop()
                await asyncio.gather(*worker_tasks, recovery, watcher, queue_poll, return_exceptions=True)
                if metrics_addr is not None:
                    m.close()
                stop_wait.cancel()
                failed = [t for t in worker_tasks if t.done() and not t.cancelled() and t.exception()]
                if failed:
                    log.error("Worker stopped on an error: %s", failed[0].exception())
                    await registry.set_state("gone", error=str(failed[0].exception()))
                    return 1
                await registry.set_state("gone")
                log.info("Worker %s stopped", worker_id)
                return 0
            finally:
                await registry.stop_heartbeat()
        finally:
            await app.close_async()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


async def _run_then_leave(settings) -> int:
    """Run the worker; once it has stopped (jobs finished or handed back, registry row gone), leave
    at once. asyncio.run would otherwise wait for every executor thread, and a decoding thread of
    a job that was handed back can hold the process for as long as its chunk takes."""
    code = await run_worker(settings)
    busy = [t for t in threading.enumerate() if t is not threading.current_thread() and not t.daemon and t.is_alive()]
    if busy:
        log.debug("Leaving without joining %d thread(s): %s", len(busy), ", ".join(t.name for t in busy))
        logging.shutdown()
        os._exit(code)
    return code


def _wait_for_store(storage, wait_s: float) -> tuple[bool, str]:
    """(True, description) once the store answers, else (False, the last error) after ``wait_s``."""
    from .storage import StorageError

    deadline = time.monotonic() + wait_s
    while True:
        try:
            return True, storage.check()
        except StorageError as exc:
            if time.monotonic() >= deadline:
                return False, str(exc)
        time.sleep(1.0)


async def _track_worker_id(workers, registry) -> None:
    """The registry row names one Procrastinate worker id: the first group's (live when served)."""
    while True:
        wid = next((w.worker_id for w in workers if w.worker_id is not None), None)
        if wid is not None and registry.procrastinate_worker_id != wid:
            registry.procrastinate_worker_id = wid
        await asyncio.sleep(0.5)


async def check(settings: Settings) -> int:
    """Print what this worker can do here. Non-zero exit when it can serve no queue."""
    import psycopg

    from .engines import EngineError, load_engine, load_live
    from .storage import Storage, StorageError

    ok_db = ok_store = ok_engine = False
    if not settings.database_url:
        print("database: NOT SET (DATABASE_URL)")
    else:
        try:
            async with await psycopg.AsyncConnection.connect(settings.database_url, connect_timeout=5) as conn:
                cur = await conn.execute(
                    "SELECT current_setting('server_version'), to_regclass('procrastinate_jobs') IS NOT NULL, "
                    "to_regclass('transcriptions') IS NOT NULL"
                )
                version, has_jobs, has_rows = await cur.fetchone()
            ok_db = has_jobs and has_rows
            print(
                f"database: {'ok' if ok_db else 'NOT MIGRATED'} (PostgreSQL {version}"
                f"{'' if ok_db else ', run `asr-gateway migrate`'})"
            )
        except Exception as exc:
            print(f"database: UNREACHABLE ({exc})".strip())
    try:
        print(f"storage: ok {Storage(settings.storage_url, password=settings.smb_password or None).check()}")
        ok_store = True
    except StorageError as exc:
        print(f"storage: UNAVAILABLE ({exc})")
    try:
        engine = await asyncio.to_thread(load_engine, settings)
        ok_engine = True
        models = ", ".join(f"{k}={v}" for k, v in engine.models.items() if not k.endswith("_path"))
        print(f"engine: {engine.name} ({models})")
        print(f"device: {engine.device}")
    except EngineError as exc:
        print(f"engine: UNAVAILABLE ({exc})")
    ok_live = False
    if ok_engine and {"live", "final"} & set(settings.queues):
        try:
            live = await asyncio.to_thread(load_live, settings, engine)
            partials = live.new_partials()
            kind = type(partials).__name__ if partials is not None else "none"
            print(
                f"live: ok (streaming fsmn-vad, end of sentence after {settings.live_end_silence_ms} ms silence; "
                f"partials: {kind}; finals: {engine.model_name}; {settings.live_sessions} sessions at once)"
            )
            ok_live = True
        except EngineError as exc:
            print(f"live: UNAVAILABLE ({exc})")
    servable = []
    for q in settings.queues:
        if q not in SUPPORTED_QUEUES:
            print(f"queue {q}: not implemented by this worker version")
            continue
        if not (ok_db and ok_engine):
            continue
        if q in BATCH_QUEUES and not ok_store:
            print(f"queue {q}: not servable without the audio store")
        elif q in ("live", "final") and not ok_live:
            print(f"queue {q}: not servable without the streaming VAD")
        else:
            servable.append(q)
    print(f"queues: {', '.join(servable) if servable else 'NONE'} (asked: {', '.join(settings.queues)})")
    return 0 if servable else 1


if __name__ == "__main__":
    sys.exit(main())
