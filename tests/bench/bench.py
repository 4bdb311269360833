"""`make bench`: the foundation's figures, printed as a table of medians and p99s.

1. Submit latency of a 1 MB upload at 1 and at 32 concurrent clients (gateway + PostgreSQL;
   no worker running, so the figure is the gateway's own), measured by a Go client.
2. Dispatch latency: from the job's commit (Procrastinate's `deferred` event) to the worker
   starting the task (the row's `started_at`), with an idle worker, one short job at a time.
3. Pipeline overhead: submit-to-finished time over the engine's own time for one 45 s recording.
4. Live captions through the whole path (asr-wsclient → gateway → PostgreSQL → worker → NOTIFY →
   gateway → socket), jfk_en.wav streamed at real-time pace: partial-caption latency (arrival
   minus the moment the audio it covers had been sent) split into the engine's time and ours;
   final-caption latency after the end of speech; how many sessions at once keep real time.
5. Gateway memory per idle live connection, at 1000 idle sockets (no real worker: a registry row
   kept fresh by the benchmark stands in, so 1000 live jobs do not swamp a worker).
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from conftest import ROOT, WSCLIENT, Stack, admin_url, db_url_for, scrubbed_env, GATEWAY_BIN  # noqa: E402
from speech import long_recording, read_pcm16, write_pcm16, SPEECH  # noqa: E402


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    i = min(len(values) - 1, max(0, int(round(p * len(values))) - 1))
    return values[i]


def make_db() -> str:
    name = f"lanasr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = db_url_for(name)
    subprocess.run([str(GATEWAY_BIN), "migrate"], check=True, env=scrubbed_env(DATABASE_URL=url),
                   stdout=subprocess.DEVNULL)
    return url


def loadgen(base: str, path: Path, clients: int, n: int) -> dict:
    out = subprocess.run(
        ["go", "run", ".", "-url", base, "-file", str(path), "-clients", str(clients), "-n", str(n)],
        cwd=HERE / "loadgen", check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def drop_db(url: str) -> None:
    with psycopg.connect(admin_url(), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')


def stream(stack: Stack, path: Path) -> subprocess.Popen:
    return subprocess.Popen([str(WSCLIENT), "-url", f"ws://127.0.0.1:{stack.port}/", "-mode", "2pass",
                             "-timeout", "120s", str(path)], stdout=subprocess.PIPE, text=True)


def captions(proc: subprocess.Popen) -> list[dict]:
    out, _ = proc.communicate(timeout=300)
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


# asr-wsclient paces like FunASR's client: the 60 ms frame that ends at position p is written at
# elapsed p - 60 ms, so that is when the audio up to p "has been sent".
FRAME_MS = 60


def live_rows(stack: Stack) -> list[tuple]:
    """Partial/final latency at one session, then the most sessions at once that keep real time."""
    jfk = SPEECH / "jfk_en.wav"
    audio_s = len(read_pcm16(jfk)[0]) / 16000
    rows: list[tuple] = []
    sustained = 0
    for n in (1, 2, 3, 4):
        lines = [captions(p) for p in [stream(stack, jfk) for _ in range(n)]]
        partial, model, ours, final, closing = [], [], [], [], []
        for ls in lines:
            for x in ls:
                m = x["msg"]
                if m.get("mode") == "2pass-online" and "audio_end_ms" in m:
                    lat = x["elapsed_ms"] - (m["audio_end_ms"] - FRAME_MS)
                    partial.append(lat)
                    model.append(m.get("model_ms", 0))
                    ours.append(lat - m.get("model_ms", 0))
                elif m.get("mode") == "2pass-offline" and m.get("text"):
                    final.append(x["elapsed_ms"] - (m["end_ms"] - FRAME_MS))
                if m.get("is_final"):
                    closing.append(x["elapsed_ms"] / 1000 - audio_s)
        complete = len(closing) == n
        keeps_up = complete and final and statistics.median(final) <= 5000 and max(closing) <= 15
        if keeps_up:
            sustained = n
        if n == 1:
            if partial:
                rows.append(("live partial caption latency", f"{statistics.median(partial):.0f} ms",
                             f"{pct(partial, 0.99):.0f} ms", "-", f"{len(partial)} partials, 1 session"))
                rows.append(("  of which engine (model_ms)", f"{statistics.median(model):.0f} ms",
                             f"{pct(model, 0.99):.0f} ms", "-", "Whisper re-decoding the open sentence"))
                rows.append(("  of which ours (transport, queue, DB)", f"{statistics.median(ours):.0f} ms",
                             f"{pct(ours, 0.99):.0f} ms", "p50 ≤ 30 ms", "latency − engine time"))
            if final:
                rows.append(("live final caption after end of speech", f"{statistics.median(final):.0f} ms",
                             f"{pct(final, 0.99):.0f} ms", "p50 ≤ 1.5 s", f"{len(final)} sentences, 1 session"))
        elif not keeps_up:
            break
    rows.append(("live sessions sustained in real time", f"{sustained}", "-", "-",
                 "final p50 ≤ 5 s and session closed ≤ 15 s after its audio, tried 1–4"))
    return rows


def idle_memory_rows(tmp: Path, sockets: int = 1000) -> list[tuple]:
    db = make_db()
    store = tmp / "idle-audio"
    store.mkdir()
    stack = Stack(db_url=db, store=store, logs=ROOT / "tests" / "artifacts" / "bench")
    try:
        stack.start_gateway(ASR_LIVE_MAX_SESSIONS=str(sockets + 10), ASR_LIVE_MAX_PER_CLIENT=str(sockets + 10),
                            ASR_WS_IDLE_S="600")
        standin = psycopg.connect(db, autocommit=True)
        standin.execute("""INSERT INTO workers (id, host, pid, device, engine, queues, state)
                           VALUES ('bench-standin', 'bench', 1, 'cpu', 'offline', '{live}', 'idle')""")

        def rss_kb() -> int:
            status = Path(f"/proc/{stack.procs['gateway'].pid}/status").read_text()
            return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:")))

        before = rss_kb()
        proc = subprocess.Popen([str(WSCLIENT), "-url", f"ws://127.0.0.1:{stack.port}/", "-idle", str(sockets),
                                 "-hold", "25s", "-dial-rate", "400"], stdout=subprocess.PIPE, text=True)
        opened = 0
        peak = before
        deadline = time.monotonic() + 60
        while proc.poll() is None and time.monotonic() < deadline:
            standin.execute("UPDATE workers SET last_heartbeat = now() WHERE id = 'bench-standin'")
            opened = standin.execute("SELECT count(*) FROM live_sessions WHERE state = 'open'").fetchone()[0]
            if opened >= sockets:
                time.sleep(3)
                peak = rss_kb()
                break
            time.sleep(0.5)
        proc.terminate()
        proc.wait(timeout=30)
        standin.close()
        per = (peak - before) / max(opened, 1)
        return [("gateway memory per idle live socket", f"{per:.1f} KiB", "-", "-",
                 f"{opened} sockets open: RSS {before / 1024:.0f} → {peak / 1024:.0f} MiB (incl. session rows, WAV files)")]
    finally:
        stack.stop()
        drop_db(db)


def main() -> int:
    rows: list[tuple[str, str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="lanasr-bench-"))
    one_mb = tmp / "one_mb.wav"
    write_pcm16(one_mb, (np.random.default_rng(1).standard_normal(524_000) * 800))  # 1.05 MB
    short = tmp / "short.wav"
    pcm, _ = read_pcm16(SPEECH / "jfk_en.wav")
    write_pcm16(short, pcm[: 16000 * 2])
    rec45 = long_recording(tmp / "rec45.wav", seconds=45, gap_s=0.6)

    db = make_db()
    store = tmp / "audio"
    store.mkdir()
    logs = ROOT / "tests" / "artifacts" / "bench"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(db_url=db, store=store, logs=logs)
    try:
        stack.start_gateway()
        subprocess.run(["go", "build", "-o", "/dev/null", "."], cwd=HERE / "loadgen", check=True)
        for clients, n in ((1, 60), (32, 12)):
            runs = [loadgen(stack.base, one_mb, clients, n) for _ in range(3)]
            errors = sum(r["errors"] for r in runs)
            p50 = statistics.median(r["p50_ms"] for r in runs)
            p99 = statistics.median(r["p99_ms"] for r in runs)
            target = "p99 ≤ 50 ms" if clients == 32 else "-"
            rows.append((f"submit 1 MB, {clients} client{'s' if clients > 1 else ''}",
                         f"{p50:.1f} ms", f"{p99:.1f} ms", target,
                         f"3 runs × {clients * n} uploads, median of runs; errors {errors}"))
        with psycopg.connect(db, autocommit=True) as conn:
            conn.execute("TRUNCATE transcriptions, procrastinate_jobs CASCADE")

        stack.start_worker("bench-worker")
        stack.wait_ready(timeout=600)
        # Warm the engine so model loading is not counted as dispatch.
        stack.wait_done(stack.submit(short).json()["task_id"])
        dispatch, fetch = [], []
        for _ in range(25):
            task = stack.submit(short).json()["task_id"]
            assert stack.wait_done(task)["status"] == "done"
            time.sleep(0.3)  # the worker is idle again, waiting on LISTEN
            (d, f), = stack.sql(
                """SELECT extract(epoch FROM t.started_at - e.at) * 1000,
                          extract(epoch FROM s.at - e.at) * 1000
                   FROM transcriptions t
                   JOIN procrastinate_events e ON e.job_id = t.job_id AND e.type = 'deferred'
                   JOIN procrastinate_events s ON s.job_id = t.job_id AND s.type = 'started'
                   WHERE t.id = %s""", task)
            dispatch.append(float(d))
            fetch.append(float(f))
        rows.append(("dispatch: commit → task start", f"{statistics.median(dispatch):.1f} ms",
                     f"{pct(dispatch, 0.99):.1f} ms", "p50 ≤ 20 ms", f"{len(dispatch)} jobs, idle worker"))
        rows.append(("  of which commit → job fetched", f"{statistics.median(fetch):.1f} ms",
                     f"{pct(fetch, 0.99):.1f} ms", "-", "Procrastinate LISTEN + fetch"))

        ratios, e2e, engine = [], [], []
        for _ in range(3):
            task = stack.submit(rec45).json()["task_id"]
            res = stack.wait_done(task, timeout=600)
            assert res["status"] == "done", res
            (total, eng), = stack.sql(
                "SELECT extract(epoch FROM finished_at - created_at), engine_s FROM transcriptions WHERE id = %s",
                task)
            e2e.append(float(total))
            engine.append(float(eng))
            ratios.append(float(total) / float(eng))
        dur = stack.result(task)["duration"]
        rows.append((f"pipeline overhead ({dur:.0f} s recording)", f"{statistics.median(ratios):.3f}×",
                     f"{max(ratios):.3f}× (max)", "≤ 1.15",
                     f"end-to-end {statistics.median(e2e):.2f} s / engine {statistics.median(engine):.2f} s, 3 runs"))
        model = stack.result(task)["model"]
        rtf = statistics.median(engine) / dur
        rows.append(("engine real-time factor", f"{rtf:.3f}", "-", "-", f"model {model}, CPU, 2 cores"))
        rows += live_rows(stack)
    finally:
        stack.stop()
        drop_db(db)
    rows += idle_memory_rows(tmp)

    head = ("measure", "median", "p99", "target", "notes")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
