"""Faults recovered without a person, over the real processes (issue 6).

- PostgreSQL restarts (a cluster this module owns, so restarting it disturbs no other test).
- A worker gets SIGTERM mid-file and mid-live-session (SIGKILL mid-file is
  test_e2e.py::test_killed_worker_job_is_recovered_by_a_new_worker; SIGKILL mid-session is
  test_live.py::test_worker_killed_mid_session_resumes_on_a_new_worker).
- The gateway restarts during batch work and a live session.
- The audio store is full, then read-only.
- A worker's model fails to load.
Along the way, the workers' Prometheus /metrics are read with prometheus_client's parser.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import ARTIFACTS, GATEWAY_BIN, ROOT, SPEECH, Stack, free_port, scrubbed_env, wait_for
from prometheus_client.parser import text_string_to_metric_families
from speech import long_recording
from test_live import Client, finals_text

sys.path.insert(0, str(ROOT / "scripts"))
import devdb  # noqa: E402

JFK = SPEECH / "jfk_en.wav"
# tiny.en: accuracy does not matter here, speed does.
FAST = {
    "ASR_ENGINE": "offline",
    "ASR_OFFLINE_MODEL": "tiny.en",
    "ASR_HEARTBEAT_S": "1",
    "ASR_STALLED_AFTER_S": "5",
    "ASR_RECOVERY_INTERVAL_S": "1",
    "ASR_SHUTDOWN_GRACE_S": "2",
    "ASR_METRICS_ADDR": "off",
}


def store_files(store: Path) -> list[Path]:
    """Every file in the store, temporary uploads included."""
    return sorted(p for p in store.rglob("*") if p.is_file())


def metrics_of(port: int) -> dict[tuple[str, tuple], float]:
    """One worker's /metrics, parsed: {(sample name, sorted labels): value}."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_processing(stack: Stack, task: str, timeout: float = 120) -> dict:
    return wait_for(lambda: (r := stack.result(task))["status"] == "processing" and r["progress"] > 0 and r,
                    timeout, f"task {task} processing")


def assert_done_once(stack: Stack, task: str, res: dict) -> None:
    """One done row; its segments numbered 0..n-1 with nothing left from an interrupted attempt."""
    assert res["status"] == "done", res
    assert stack.sql("SELECT count(*) FROM transcriptions WHERE id = %s AND status = 'done'", task)[0][0] == 1
    idx = [r[0] for r in stack.sql("SELECT idx FROM segments WHERE transcription_id = %s ORDER BY idx", task)]
    assert idx == list(range(len(res["segments"]))) and len(idx) > 3, idx
    # The job is finished in Procrastinate too: nothing left to run or stuck in doing.
    left = stack.sql("SELECT status::text FROM procrastinate_jobs WHERE args->>'task_id' = %s "
                     "AND status IN ('todo', 'doing')", task)
    assert left == [], left


# --- PostgreSQL restart ---------------------------------------------------------------------


class OwnCluster:
    """A PostgreSQL cluster of this test's own, that it can stop and start."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="lanasr-faultdb-"))
        self.data = self.root / "cluster"
        self.port = free_port()
        admin = devdb.start(self.data, self.port, "127.0.0.1", trust=True)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("CREATE DATABASE lanasr_faults")
        self.url = admin.rpartition("/")[0] + "/lanasr_faults"
        subprocess.run([str(GATEWAY_BIN), "migrate"], check=True, env=scrubbed_env(DATABASE_URL=self.url))

    def stop(self) -> None:
        devdb.stop(self.data)

    def start(self) -> None:
        devdb.start(self.data, self.port, "127.0.0.1", trust=True)

    def remove(self) -> None:
        try:
            devdb.stop(self.data)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture
def own_stack(tmp_path: Path, request):
    cluster = OwnCluster()
    logs = ARTIFACTS / request.node.name
    logs.mkdir(parents=True, exist_ok=True)
    store = tmp_path / "audio"
    store.mkdir()
    s = Stack(db_url=cluster.url, store=store, logs=logs)
    s.cluster = cluster
    try:
        s.start_gateway()
        yield s
    finally:
        s.stop()
        cluster.remove()


def slow_upload(stack: Stack, path: Path, seconds: float, out: list) -> threading.Thread:
    """Upload `path` spread over `seconds` (an upload in flight); the response lands in `out`."""
    data = path.read_bytes()
    boundary = uuid.uuid4().hex
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"{path.name}\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body = head + data + tail
    step = max(1, len(body) // 20)

    def gen():
        for i in range(0, len(body), step):
            yield body[i : i + step]
            time.sleep(seconds / 20)

    def run():
        try:
            out.append(httpx.post(f"{stack.base}/api/v1/asr/submit", content=gen(), timeout=60,
                                  headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}))
        except httpx.HTTPError as exc:
            out.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def test_postgres_restart_mid_job_and_mid_upload(own_stack: Stack, tmp_path: Path):
    stack = own_stack
    stack.start_worker("worker-a", **FAST)
    stack.wait_ready()
    audio = long_recording(tmp_path / "long.wav", seconds=100)
    task = stack.submit(audio).json()["task_id"]
    wait_processing(stack, task)

    # An upload in flight when the database goes away, and the event stream open across the restart.
    in_flight: list = []
    uploader = slow_upload(stack, JFK, 3.0, in_flight)
    time.sleep(0.5)
    stack.cluster.stop()
    t_down = time.monotonic()

    r = httpx.get(f"{stack.base}/api/v1/health", timeout=10)
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["database"] == "unreachable" and body["reason"] and body["code"] == "unavailable", body
    r = stack.submit(JFK)
    assert r.status_code == 503, r.text
    assert r.json()["code"] == "unavailable" and "database" in r.json()["error"].lower(), r.text
    uploader.join(30)
    assert in_flight and isinstance(in_flight[0], httpx.Response), in_flight
    assert in_flight[0].status_code == 503 and in_flight[0].json()["code"] == "unavailable", in_flight[0].text
    # Nothing half-made in the store: the first upload's file only, no temporary file left.
    files = store_files(stack.store)
    assert len(files) == 1 and files[0].name.startswith(task), files

    time.sleep(max(0.0, 4 - (time.monotonic() - t_down)))
    stack.cluster.start()
    t_up = time.monotonic()
    # The gateway's pool reconnects by itself within seconds; the worker's heartbeat follows.
    wait_for(lambda: httpx.get(f"{stack.base}/api/v1/health", timeout=5).status_code == 200, 20, "health 200")
    recovered_s = time.monotonic() - t_up
    assert recovered_s < 20, recovered_s

    # The gateway's LISTEN connection is back: a new task's events reach /api/v1/events.
    events: list[dict] = []
    stop_events = threading.Event()

    def read_events():
        with httpx.stream("GET", f"{stack.base}/api/v1/events", timeout=httpx.Timeout(5, read=60)) as resp:
            for line in resp.iter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line[6:]))
                if stop_events.is_set():
                    return

    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()
    time.sleep(1.0)
    after = stack.submit(JFK)
    assert after.status_code == 202, after.text
    after_id = after.json()["task_id"]

    res = stack.wait_done(task, timeout=240)
    assert_done_once(stack, task, res)
    attempts = stack.sql("SELECT attempts FROM transcriptions WHERE id = %s", task)[0][0]
    assert attempts in (1, 2), attempts  # finished in place, or handed back once and redone
    assert stack.wait_done(after_id, timeout=120)["status"] == "done"
    wait_for(lambda: any(e.get("task_id") == after_id and e.get("status") == "done" for e in events), 20,
             "SSE events after the restart")
    stop_events.set()

    # Exact counts: the interrupted job and the one after; the uploads refused during the outage left nothing.
    assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 2
    assert stack.sql("SELECT count(*) FROM procrastinate_jobs WHERE status IN ('todo', 'doing')")[0][0] == 0
    keys = {r[0] for r in stack.sql("SELECT audio_key FROM transcriptions")}
    assert {p.relative_to(stack.store).as_posix() for p in store_files(stack.store)} == keys
    # The worker rode it out (no restart by hand) and is active again.
    assert stack.procs["worker-a"].poll() is None
    workers = httpx.get(f"{stack.base}/api/v1/workers", timeout=5).json()["workers"]
    assert [(w["id"], w["active"]) for w in workers] == [("worker-a", True)], workers
    (stack.logs / "timings.json").write_text(json.dumps({"health_back_s": recovered_s, "attempts": attempts}))


# --- SIGTERM ----------------------------------------------------------------------------------


def test_sigterm_mid_file_hands_the_job_back_at_once(stack, tmp_path: Path):
    stack.start_worker("worker-a", **FAST)
    stack.start_worker("worker-b", **FAST)
    wait_for(lambda: len([w for w in httpx.get(f"{stack.base}/api/v1/workers").json()["workers"]
                          if w["active"] and w["state"] == "idle"]) == 2, 120, "two idle workers")
    audio = long_recording(tmp_path / "long.wav", seconds=90)
    task = stack.submit(audio).json()["task_id"]
    first = wait_processing(stack, task)["worker"]
    other = "worker-b" if first == "worker-a" else "worker-a"
    t0 = time.time()
    stack.kill(first, signal.SIGTERM)
    assert stack.procs[first].returncode == 0, stack.procs[first].returncode
    # Handed back after the 2 s grace, well before the stalled-job path (10 s of silence + a 5 s
    # recovery pass) could have: the job's 'aborted, to retry' event. (The process itself may
    # take longer to exit: the decoding thread stops at its next abort check.)
    (back_at,) = stack.sql(
        """SELECT extract(epoch FROM min(e.at)) FROM procrastinate_events e
            JOIN transcriptions t ON t.job_id = e.job_id
           WHERE t.id = %s AND e.type IN ('deferred_for_retry', 'retried', 'aborted')""", task)[0]
    assert back_at is not None and float(back_at) - t0 < 8, (back_at, t0)
    log = (stack.logs / f"{first}.log").read_text()
    assert "goes back to the queue" in log, log[-2000:]
    row = stack.sql("SELECT state FROM workers WHERE id = %s", first)[0][0]
    assert row == "gone", row
    # Handed back, not abandoned: the job was never left 'doing' for the stalled-job recovery.
    assert "Recovering stalled job" not in (stack.logs / f"{other}.log").read_text()
    res = stack.wait_done(task, timeout=180)
    assert res["worker"] == other, res
    assert_done_once(stack, task, res)
    assert stack.sql("SELECT attempts FROM transcriptions WHERE id = %s", task)[0][0] == 2
    assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 1
    assert "Recovering stalled job" not in (stack.logs / f"{other}.log").read_text()


def test_sigterm_mid_live_session_resumes_on_another_worker(stack):
    port = free_port()
    stack.start_worker("worker-1", **FAST)
    stack.start_worker("worker-2", **{**FAST, "ASR_METRICS_ADDR": f"127.0.0.1:{port}"})
    wait_for(lambda: len([w for w in httpx.get(f"{stack.base}/api/v1/workers").json()["workers"]
                          if w["active"] and w["state"] == "idle"]) == 2, 120, "two idle workers")
    # Let worker-2 finish its start (the live queue of each worker is polled every second).
    c = Client(stack, JFK, speed=1, timeout_s=120)
    wait_for(lambda: any(m.get("mode") == "2pass-online" for m in c.msgs), 20, "a first partial")
    sid = c.msgs[0]["session_id"]
    holder = wait_for(lambda: (r := stack.sql("SELECT worker FROM transcriptions WHERE id = %s", sid)) and r[0][0],
                      10, "the session's worker")
    survivor = "worker-2" if holder == "worker-1" else "worker-1"
    stack.kill(holder, signal.SIGTERM)
    assert stack.procs[holder].returncode == 0
    lines = c.wait(timeout=150)
    msgs = [x["msg"] for x in lines]
    notices = [m for m in msgs if m.get("code") == "worker_lost"]
    assert notices, msgs  # the client was told
    assert msgs[-1].get("is_final") is True and msgs[-1].get("is_end") is True, msgs[-3:]
    res = wait_for(lambda: (r := stack.result(sid))["status"] == "done" and r, 30, "the session done")
    assert res["worker"] == survivor, res
    assert "fellow americans" in res["text"].lower() or "country" in res["text"].lower(), res["text"]
    n = stack.sql("SELECT count(*), count(DISTINCT idx) FROM live_sentences WHERE session_id = %s", sid)[0]
    assert n[0] == n[1] > 0
    assert stack.sql("SELECT state FROM workers WHERE id = %s", holder)[0][0] == "gone"
    if survivor == "worker-2":
        m = metrics_of(port)
        assert m[("asr_worker_jobs_total", (("outcome", "done"), ("task", "asr.live_session")))] == 1
        assert m[("asr_worker_caption_latency_seconds_count", (("kind", "final"),))] >= 1
        assert m[("asr_worker_live_sessions", ())] == 0
    assert finals_text(msgs)


# --- gateway restart ----------------------------------------------------------------------------


def test_gateway_restart_during_batch_and_live(stack, tmp_path: Path):
    stack.start_worker("worker-1", **FAST)
    stack.wait_ready()
    audio = long_recording(tmp_path / "long.wav", seconds=90)
    c = Client(stack, JFK, speed=1, timeout_s=60)
    wait_for(lambda: any(m.get("mode") == "2pass-online" for m in c.msgs), 30, "a first partial")
    sid = c.msgs[0]["session_id"]
    # The batch job starts while the session streams (one worker, one model: partials wait for
    # the batch chunk being decoded, so the session is first seen captioning, then the file goes in).
    task = stack.submit(audio).json()["task_id"]
    wait_processing(stack, task)
    stack.kill("gateway", signal.SIGTERM)
    assert stack.procs["gateway"].returncode == 0
    msgs = [x["msg"] for x in c.wait(timeout=30)]
    assert msgs[-1].get("code") == "server_restarting" and "restarting" in msgs[-1]["error"], msgs[-3:]
    # Batch work goes on without the gateway.
    stack.start_gateway()
    res = stack.wait_done(task, timeout=180)
    assert_done_once(stack, task, res)
    # The interrupted session was ended with what it had: a history entry, not a hanging one.
    old = wait_for(lambda: (r := stack.result(sid))["status"] in ("done", "failed") and r, 60, "old session closed")
    assert old["status"] == "done", old
    # A new session on the new gateway works.
    c2 = Client(stack, JFK, speed=2, timeout_s=90)
    msgs2 = c2.msgs if c2.wait(timeout=120) else []
    assert msgs2 and msgs2[-1].get("is_final") is True, msgs2[-3:]
    assert "country" in finals_text(msgs2).lower(), finals_text(msgs2)
    assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 3


# --- the audio store --------------------------------------------------------------------------


@pytest.fixture
def small_store(tmp_path: Path):
    d = tmp_path / "audio"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], check=True)
    yield d
    subprocess.run(["umount", "-l", str(d)], check=False)


def test_full_then_read_only_store(database, small_store: Path, tmp_path: Path, request):
    logs = ARTIFACTS / request.node.name
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(db_url=database, store=small_store, logs=logs)
    try:
        stack.start_gateway()
        stack.start_worker("worker-1", **FAST)
        stack.wait_ready()
        big = long_recording(tmp_path / "big.wav", seconds=60)  # ~1.9 MB, over the 1 MiB store
        r = stack.submit(big)
        assert r.status_code == 507, r.text
        assert r.json()["code"] == "storage_full" and "full" in r.json()["error"], r.text
        assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 0
        assert stack.sql("SELECT count(*) FROM procrastinate_jobs")[0][0] == 0
        assert store_files(small_store) == []

        subprocess.run(["mount", "-o", "remount,ro", str(small_store)], check=True)
        r = stack.submit(JFK)
        assert r.status_code == 503, r.text
        assert r.json()["code"] == "unavailable" and "read-only" in r.json()["error"], r.text
        assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 0

        subprocess.run(["mount", "-o", "remount,rw", str(small_store)], check=True)
        r = stack.submit(JFK)
        assert r.status_code == 202, r.text
        res = stack.wait_done(r.json()["task_id"], timeout=120)
        assert res["status"] == "done" and "country" in res["text"].lower(), res
        assert stack.sql("SELECT count(*) FROM transcriptions")[0][0] == 1
        assert len(store_files(small_store)) == 1
    finally:
        stack.stop()


# --- a model that does not load ------------------------------------------------------------------


def test_model_that_fails_to_load_takes_no_jobs(stack, tmp_path: Path):
    broken = tmp_path / "broken-model"
    broken.mkdir()
    (broken / "model.bin").write_bytes(b"not a model")
    bad = stack.start_worker("worker-bad", **{**FAST, "ASR_OFFLINE_MODEL": str(broken)})
    assert bad.wait(timeout=120) == 1
    workers = {w["id"]: w for w in httpx.get(f"{stack.base}/api/v1/workers").json()["workers"]}
    assert workers["worker-bad"]["state"] == "error" and not workers["worker-bad"]["active"], workers
    assert str(broken) in workers["worker-bad"]["error"], workers["worker-bad"]
    task = stack.submit(JFK).json()["task_id"]
    time.sleep(2)
    assert stack.result(task)["status"] == "queued"
    port = free_port()
    stack.start_worker("worker-good", **{**FAST, "ASR_METRICS_ADDR": f"127.0.0.1:{port}"})
    res = stack.wait_done(task, timeout=120)
    assert res["status"] == "done" and res["worker"] == "worker-good", res
    # The failed worker's reason stays visible after the good worker's recovery passes.
    time.sleep(2)
    workers = {w["id"]: w for w in httpx.get(f"{stack.base}/api/v1/workers").json()["workers"]}
    assert workers["worker-bad"]["state"] == "error" and workers["worker-bad"]["error"]

    m = wait_for(lambda: (x := metrics_of(port)) and
                 x.get(("asr_worker_queue_depth", (("queue", "batch"), ("status", "todo")))) == 0 and x, 15,
                 "metrics")
    done = ("asr_worker_jobs_total", (("outcome", "done"), ("task", "asr.transcribe_file")))
    assert m[done] == 1, {k: v for k, v in m.items() if k[0].startswith("asr_worker_jobs")}
    assert m[("asr_worker_job_duration_seconds_count", (("task", "asr.transcribe_file"),))] == 1
    rtf = [v for (name, labels), v in m.items() if name == "asr_worker_rtf_count"]
    assert rtf == [1], rtf
    assert 0 < m[("asr_worker_audio_seconds_total", ())] < 30
    assert m[("asr_worker_live_sessions", ())] == 0
    assert ("asr_worker_info", (("device", "cpu"), ("engine", "offline"), ("worker", "worker-good"))) in m
