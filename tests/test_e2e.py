"""File transcription end to end over the real processes: gateway → PostgreSQL → worker → API."""

from __future__ import annotations

import hashlib
import json
import struct
import time
from pathlib import Path

import httpx

from conftest import SPEECH, load_transcripts
from speech import error_rate, long_recording, normalise_zh



def test_speech_files_transcribe_through_the_stack(stack):
    """Every recording in the shared test set transcribes within the issue's error bounds."""
    stack.start_worker()
    stack.wait_ready()
    refs = load_transcripts()
    ids = {}
    for name in refs:
        r = stack.submit(SPEECH / name)
        assert r.status_code == 202, r.text
        body = r.json()
        assert body["status"] == "queued" and body["position"] >= 1
        ids[name] = body["task_id"]
    scores = {}
    for name, ref in refs.items():
        res = stack.wait_done(ids[name])
        assert res["status"] == "done", res
        rate = error_rate(ref["text"], res["text"], ref["language"])
        scores[name] = {"text": res["text"], "error_rate": round(rate, 4), "rtf": res["rtf"], "model": res["model"]}
        (stack.logs / "scores.json").write_text(json.dumps(scores, ensure_ascii=False, indent=1))
        limit = 0.10 if ref["language"] == "en" else 0.20
        assert rate <= limit, f"{name}: error rate {rate:.2%} > {limit:.0%}: {res['text']!r}"
        assert res["language"] == ref["language"]
        assert res["segments"], res
        starts = [s["start"] for s in res["segments"]]
        assert starts == sorted(starts)
        assert 0 < res["duration"] < 30
        assert res["worker"] == "worker-1" and res["model"]
    # Users query history with SQL through the pinned views.
    rows = dict(stack.sql("SELECT task_id::text, text FROM history WHERE status = 'done'"))
    assert set(rows) == set(ids.values())
    assert stack.sql("SELECT count(*) FROM history_segments")[0][0] >= len(ids)
    # Chinese substring search, through SQL and through the API: three characters the model
    # produced for the AISHELL utterance must find exactly that transcription.
    zh_id = ids["aishell_BAC009S0724W0121_zh.wav"]
    zh_text = normalise_zh(stack.result(zh_id)["text"])
    assert len(zh_text) >= 5, zh_text
    needle = zh_text[2:5]
    found = [r[0] for r in stack.sql("SELECT task_id::text FROM history WHERE text ILIKE %s", f"%{needle}%")]
    assert found == [zh_id], (needle, found)
    hist = httpx.get(f"{stack.base}/api/v1/asr/history", params={"q": needle}).json()
    assert hist["total"] == 1 and hist["records"][0]["task_id"] == zh_id
    hist = httpx.get(f"{stack.base}/api/v1/asr/history", params={"q": "fellow americans"}).json()
    assert [r["task_id"] for r in hist["records"]] == [ids["jfk_en.wav"]]


def test_exports_and_audio_download(stack):
    stack.start_worker()
    stack.wait_ready()
    src = SPEECH / "jfk_en.wav"
    task = stack.submit(src).json()["task_id"]
    assert stack.wait_done(task)["status"] == "done"
    srt = httpx.get(f"{stack.base}/api/v1/asr/export/{task}.srt").text
    blocks = [b for b in srt.strip().split("\n\n") if b]
    assert blocks and blocks[0].splitlines()[0] == "1"
    assert " --> " in blocks[0].splitlines()[1] and "," in blocks[0].splitlines()[1]
    vtt = httpx.get(f"{stack.base}/api/v1/asr/export/{task}.vtt").text
    assert vtt.startswith("WEBVTT")
    assert "country" in httpx.get(f"{stack.base}/api/v1/asr/export/{task}.txt").text.lower()
    assert httpx.get(f"{stack.base}/api/v1/asr/export/{task}.json").json()["task_id"] == task
    audio = httpx.get(f"{stack.base}/api/v1/asr/audio/{task}")
    assert audio.content == src.read_bytes()
    part = httpx.get(f"{stack.base}/api/v1/asr/audio/{task}", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == src.read_bytes()[100:200]


def test_bad_input_is_refused_and_the_stack_keeps_serving(stack, tmp_path: Path):
    stack.start_worker()
    stack.wait_ready()
    good = stack.submit(SPEECH / "librispeech_1995-1837-0001_en.wav").json()["task_id"]

    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    png = tmp_path / "picture.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(200))
    noise = tmp_path / "noise.wav"
    noise.write_bytes(bytes(range(256)) * 64)
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes((SPEECH / "jfk_en.wav").read_bytes()[:30])
    big = tmp_path / "big.wav"
    with open(big, "wb") as f:
        f.write(b"RIFF" + struct.pack("<I", 9 * 2**20) + b"WAVE")
        f.write(bytes(9 * 2**20))  # over the 8 MB limit this stack runs with

    cases = {empty: 400, png: 415, noise: 415, truncated: 422, big: 413}
    for path, status in cases.items():
        r = stack.submit(path)
        assert r.status_code == status, (path.name, r.status_code, r.text)
        body = r.json()
        assert body["error"] and body["code"], body
    r = httpx.post(f"{stack.base}/api/v1/asr/submit", data={"language": "en"}, timeout=10)
    assert r.status_code == 400 and "audio" in r.json()["error"]
    missing = "00000000-0000-4000-8000-000000000000"
    assert httpx.get(f"{stack.base}/api/v1/asr/result/{missing}").status_code == 404
    assert httpx.get(f"{stack.base}/api/v1/asr/result/not-a-uuid").status_code in (400, 404)
    r = httpx.post(f"{stack.base}/api/v1/asr/retry/{good}")
    assert r.status_code == 409 and r.json()["error"]

    # Nothing half-made: one row, one job, one stored file.
    assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 1
    assert stack.sql("SELECT count(*) FROM procrastinate_jobs")[0][0] == 1
    assert len([p for p in stack.store.rglob("*") if p.is_file()]) == 1
    assert stack.wait_done(good)["status"] == "done"
    after = stack.submit(SPEECH / "jfk_en.wav").json()["task_id"]
    assert stack.wait_done(after)["status"] == "done"


def test_a_corrupt_file_fails_in_the_worker_and_can_be_retried(stack, tmp_path: Path):
    """A file with a valid header and a garbage body fails with a readable reason, then retries."""
    stack.start_worker()
    stack.wait_ready()
    bad = tmp_path / "corrupt.mp3"
    bad.write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + bytes(range(256)) * 40)
    r = stack.submit(bad)
    if r.status_code == 202:
        task = r.json()["task_id"]
        res = stack.wait_done(task)
        assert res["status"] == "failed" and res["error"], res
        r = httpx.post(f"{stack.base}/api/v1/asr/retry/{task}")
        assert r.status_code == 202
        assert stack.wait_done(task)["status"] == "failed"
    else:
        assert r.status_code in (415, 422), r.text


def test_killed_worker_job_is_recovered_by_a_new_worker(stack, tmp_path: Path):
    """SIGKILL a worker mid-file; a worker started afterwards finishes it within 90 s, once."""
    stack.start_worker("worker-a")
    stack.wait_ready()
    audio = long_recording(tmp_path / "long.wav", seconds=120)
    digest = hashlib.sha256(audio.read_bytes()).hexdigest()
    task = stack.submit(audio).json()["task_id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        res = stack.result(task)
        if res["status"] == "processing" and res["progress"] > 0:
            break
        time.sleep(0.2)
    assert res["status"] == "processing", res
    stack.kill("worker-a")
    started = time.monotonic()
    stack.start_worker("worker-b")
    res = stack.wait_done(task, timeout=90)
    elapsed = time.monotonic() - started
    assert res["status"] == "done" and res["worker"] == "worker-b", res
    assert elapsed <= 90
    assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 1
    n_segments = stack.sql("SELECT count(*) FROM segments")[0][0]
    assert n_segments == len(res["segments"]) > 3
    idx = [r[0] for r in stack.sql("SELECT idx FROM segments ORDER BY idx")]
    assert idx == list(range(n_segments))
    assert stack.sql("SELECT attempts FROM transcriptions")[0][0] == 2
    served = httpx.get(f"{stack.base}/api/v1/asr/audio/{task}").content
    assert hashlib.sha256(served).hexdigest() == digest
    gone = stack.sql("SELECT state FROM workers WHERE id = 'worker-a'")
    assert gone and gone[0][0] == "gone"
