"""``asr-worker check`` and start-up failures, as a user meets them."""

from __future__ import annotations

import subprocess

import pytest

from .conftest import VENV_BIN, WorkerProcess


def _run(args, env, cwd, timeout=120):
    return subprocess.run(
        [str(VENV_BIN / "asr-worker"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.models
def test_check_reports_what_this_worker_can_serve(database_url, store, tmp_path):
    # ASR_ENGINE is left at auto: FunASR's models are not available here, so the fallback must be loud.
    env = WorkerProcess(
        "chk",
        database_url,
        store,
        tmp_path,
        ASR_OFFLINE_MODEL="tiny.en",
        ASR_FUNASR_MODEL=str(tmp_path / "no-paraformer"),
    ).env
    ok = _run(["check"], env, tmp_path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "FALLING BACK TO THE OFFLINE PROFILE" in ok.stderr and "no-paraformer" in ok.stderr
    assert "database: ok" in ok.stdout
    assert "storage: ok" in ok.stdout
    assert "engine: offline" in ok.stdout and "whisper-tiny.en" in ok.stdout
    assert "device: cpu" in ok.stdout
    assert "queues: batch, live, final" in ok.stdout
    assert "live: ok" in ok.stdout

    # Without the audio store, live and final are still servable (their audio is in the database).
    nostore = dict(env, ASR_STORAGE_URL=(tmp_path / "no").as_uri(), ASR_WORKER_QUEUES="batch,live,final")
    ns = _run(["check"], nostore, tmp_path)
    assert ns.returncode == 0, ns.stdout + ns.stderr
    assert "queue batch: not servable without the audio store" in ns.stdout
    assert "queues: live, final" in ns.stdout

    bad = dict(
        env,
        DATABASE_URL="postgresql://nobody@127.0.0.1:1/none",
        ASR_STORAGE_URL=(tmp_path / "no").as_uri(),
        ASR_ENGINE="offline",
    )
    fail = _run(["check"], bad, tmp_path)
    assert fail.returncode != 0
    assert "database: UNREACHABLE" in fail.stdout and "storage: UNAVAILABLE" in fail.stdout
    assert "queues: NONE" in fail.stdout


def test_help_lists_settings(tmp_path):
    out = _run(["--help"], {"PATH": "/usr/bin:/bin"}, tmp_path)
    assert out.returncode == 0
    for name in (
        "DATABASE_URL",
        "ASR_STORAGE_URL",
        "ASR_WORKER_QUEUES",
        "ASR_ENGINE",
        "ASR_CONCURRENCY",
        "ASR_HEARTBEAT_S",
        "ASR_STALLED_AFTER_S",
        "ASR_RECOVERY_INTERVAL_S",
        "ASR_LOG_LEVEL",
    ):
        assert name in out.stdout


def test_model_failure_puts_the_worker_in_error_state(database_url, conn, store, tmp_path):
    env = WorkerProcess(
        "broken", database_url, store, tmp_path, ASR_ENGINE="offline", ASR_OFFLINE_MODEL=str(tmp_path / "missing-model")
    ).env
    out = _run(["run"], env, tmp_path)
    assert out.returncode == 1
    state, error = conn.execute("SELECT state, error FROM workers WHERE id = 'broken'").fetchone()
    assert state == "error" and "missing-model" in error


def test_refuses_queues_it_has_no_task_for(tmp_path):
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "DATABASE_URL": "postgresql://x@127.0.0.1:1/x",
        "ASR_WORKER_QUEUES": "gpu,other",
    }
    out = _run(["run"], env, tmp_path, timeout=60)
    assert out.returncode == 2
    assert "Not serving queue(s) gpu, other" in out.stderr
