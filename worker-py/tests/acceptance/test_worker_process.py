"""Acceptance: the installed ``asr-worker`` serves jobs submitted as the gateway submits them."""

from __future__ import annotations

import json
import re
import signal
import time
import unicodedata

import jiwer
import numpy as np
import pytest

from ..conftest import encode
from ..integration.conftest import job, key, row, segments, submit

pytestmark = [pytest.mark.models]

WER_MAX_EN = 0.10
CER_MAX_ZH = 0.20


def _wait(conn, task_ids, timeout, statuses=("done", "failed", "canceled")):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = conn.execute(
            "SELECT id::text, status FROM transcriptions WHERE id = ANY(%s::uuid[])", (list(task_ids),)
        ).fetchall()
        if rows and all(s in statuses for _, s in rows):
            return
        time.sleep(0.25)
    raise AssertionError(f"not finished within {timeout} s: {rows}")


def norm_en(text: str) -> str:
    text = re.sub(r"[^\w\s']", " ", text.lower())
    return " ".join(text.split())


def norm_zh(text: str) -> str:
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(("P", "Z", "S")) and not ch.isspace())


def test_transcripts_meet_accuracy_targets(workers, conn, transcripts, tmp_path):
    w = workers("acc-1", ASR_ENGINE="offline", ASR_CPU_THREADS=2)  # ASR_OFFLINE_MODEL: the default (base)
    ids = {name: submit(conn, key(name), filename=name) for name in transcripts}
    _wait(conn, ids.values(), timeout=180)
    report = {}
    for name, ref in transcripts.items():
        r = row(conn, ids[name])
        assert r["status"] == "done", (name, r["error"], w.log())
        assert r["engine"] == "offline" and r["model"] == "whisper-base"
        assert r["language"] == ref["language"]
        if ref["language"] == "en":
            err = jiwer.wer(norm_en(ref["text"]), norm_en(r["text"]))
            assert err <= WER_MAX_EN, (name, r["text"], err)
        else:
            err = jiwer.cer(norm_zh(ref["text"]), norm_zh(r["text"]))
            assert err <= CER_MAX_ZH, (name, r["text"], err)
        assert segments(conn, ids[name])
        report[name] = {"text": r["text"], "error_rate": round(err, 4), "rtf": round(r["rtf"], 3)}
    print("\nACCURACY " + json.dumps(report, ensure_ascii=False))
    reg = conn.execute("SELECT engine, models->>'asr', jobs_done, state FROM workers WHERE id = 'acc-1'").fetchone()
    assert reg[:3] == ("offline", "whisper-base", len(transcripts)) and reg[3] in ("idle", "busy")
    assert w.stop(signal.SIGTERM) == 0
    assert conn.execute("SELECT state FROM workers WHERE id = 'acc-1'").fetchone()[0] == "gone"


def test_killed_worker_job_finishes_elsewhere(workers, conn, store, speech_dir):
    from asr_worker.audio import decode_audio

    parts = [
        decode_audio(speech_dir / f).samples
        for f in (
            "jfk_en.wav",
            "librispeech_1995-1837-0001_en.wav",
            "jfk_en.wav",
            "librispeech_1995-1837-0001_en.wav",
            "jfk_en.wav",
            "librispeech_1995-1837-0001_en.wav",
        )
    ]
    gap = np.zeros(8000, np.float32)
    long = np.concatenate([x for p in parts for x in (p, gap)])
    assert len(long) / 16000 > 55
    encode(long, 16000, store / "uploads" / "long.flac", codec="flac")

    a = workers("kill-a", ASR_ENGINE="offline", ASR_CPU_THREADS=2)
    a.wait_ready(conn)
    task_id = submit(conn, "uploads/long.flac", language="en")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        r = row(conn, task_id)
        if r["status"] == "processing" and r["progress"] > 0:
            break
        time.sleep(0.1)
    assert r["status"] == "processing" and r["worker"] == "kill-a", a.log()
    a.proc.send_signal(signal.SIGKILL)
    a.proc.wait()
    killed_at = time.monotonic()

    b = workers("kill-b", ASR_ENGINE="offline", ASR_CPU_THREADS=2)
    _wait(conn, [task_id], timeout=90)
    took = time.monotonic() - killed_at
    r = row(conn, task_id)
    assert r["status"] == "done", (r, b.log())
    assert took <= 90
    assert r["worker"] == "kill-b" and r["attempts"] == 2
    segs = segments(conn, task_id)
    assert [s[0] for s in segs] == list(range(len(segs)))
    assert norm_en(r["text"]).count("ask not what your country") == 3
    for _ in range(40):  # the row is written before Procrastinate records the job's end
        if job(conn, task_id)["status"] != "doing":
            break
        time.sleep(0.25)
    assert job(conn, task_id)["status"] == "succeeded"
    assert conn.execute("SELECT count(*) FROM procrastinate_jobs").fetchone()[0] == 1
    assert conn.execute("SELECT state FROM workers WHERE id = 'kill-a'").fetchone()[0] == "gone"
    print(f"\nRECOVERY finished {took:.1f} s after SIGKILL; rtf {r['rtf']:.3f}")
