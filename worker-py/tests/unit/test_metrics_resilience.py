"""Worker metrics (address parsing, the job middleware) and transient-error retries."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from prometheus_client import generate_latest

from asr_worker import metrics as metrics_mod
from asr_worker.config import ConfigError, load_settings
from asr_worker.metrics import WorkerMetrics, parse_addr
from asr_worker.resilience import is_transient, retry_transient


def test_parse_addr():
    assert parse_addr("127.0.0.1:9464") == ("127.0.0.1", 9464)
    assert parse_addr(":9100") == ("0.0.0.0", 9100)
    assert parse_addr("9100") == ("0.0.0.0", 9100)
    assert parse_addr("[::1]:9100") == ("::1", 9100)
    for off in ("", "0", "off", "none"):
        assert parse_addr(off) is None
    with pytest.raises(ValueError):
        parse_addr("host:port")
    with pytest.raises(ConfigError):
        load_settings({"ASR_METRICS_ADDR": "localhost:99999"}, env_file="/nonexistent")


def test_is_transient_follows_the_cause():
    try:
        try:
            raise psycopg.OperationalError("server closed the connection")
        except psycopg.OperationalError as exc:
            raise RuntimeError("Database error.") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)
    assert not is_transient(ValueError("bad input"))


def test_retry_transient_retries_connection_errors_only():
    calls = []

    async def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise psycopg.OperationalError("connection refused")
        return "ok"

    assert asyncio.run(retry_transient(flaky, "testing", timeout_s=10)) == "ok"
    assert len(calls) == 3

    async def broken():
        raise ValueError("not a connection problem")

    with pytest.raises(ValueError):
        asyncio.run(retry_transient(broken, "testing", timeout_s=10))

    async def down():
        raise psycopg.OperationalError("still down")

    with pytest.raises(psycopg.OperationalError):
        asyncio.run(retry_transient(down, "testing", timeout_s=0.5))


class _Job:
    task_name = "asr.transcribe_file"


class _Context:
    job = _Job()

    def abort_reason(self):
        return None


def test_job_middleware_counts_outcomes(monkeypatch):
    m = WorkerMetrics()
    monkeypatch.setattr(metrics_mod, "METRICS", m)

    async def done():
        return {"status": "done", "rtf": 0.2, "audio_s": 10.0, "engine": "offline"}

    async def failed():
        return {"status": "failed", "error": "bad audio"}

    async def boom():
        raise RuntimeError("boom")

    asyncio.run(metrics_mod.job_middleware(done, _Context(), None))
    asyncio.run(metrics_mod.job_middleware(failed, _Context(), None))
    with pytest.raises(RuntimeError):
        asyncio.run(metrics_mod.job_middleware(boom, _Context(), None))
    text = generate_latest(m.registry).decode()
    assert 'asr_worker_jobs_total{outcome="done",task="asr.transcribe_file"} 1.0' in text
    assert 'asr_worker_jobs_total{outcome="failed",task="asr.transcribe_file"} 1.0' in text
    assert 'asr_worker_jobs_total{outcome="error",task="asr.transcribe_file"} 1.0' in text
    assert 'asr_worker_errors_total{kind="bad_audio"} 1.0' in text
    assert 'asr_worker_errors_total{kind="task_error"} 1.0' in text
    assert 'asr_worker_rtf_count{engine="offline"} 1.0' in text
    assert "asr_worker_audio_seconds_total 10.0" in text
    assert 'asr_worker_job_duration_seconds_count{task="asr.transcribe_file"} 3.0' in text
