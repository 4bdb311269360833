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
6. A 30-minute recording split at silences (ASR_SPLIT_MINUTES=10): wall time (submit to done) with
   one worker, then with two workers sharing its pieces, each worker on one CPU thread; and the
   speed-up. `tests/bench/bench.py --only=split` runs just this one (`--only=live` the live rows,
   `--only=engines` the engine comparison).
7. CPU laptop worker (onnxruntime) against the torch worker: install size, and the real-time factor
   of the ONNX and FunASR engines (and of fsmn-vad alone) on the same files and models
   (worker-py/bench/engine_compare.py, in its own process). `--only=engines` runs just this one.
"""

from __future__ import annotations

import json
import shutil
import signal
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


def english_recording(path: Path, seconds: float, gap_s: float = 1.5) -> Path:
    """The English test speech in turn, `gap_s` of silence after each clip, to at least `seconds`."""
    clips = [read_pcm16(SPEECH / n)[0] for n in ("jfk_en.wav", "librispeech_1995-1837-0001_en.wav")]
    gap = np.zeros(int(gap_s * 16000), dtype=np.int16)
    parts, total, i = [], 0, 0
    while total < seconds * 16000:
        parts += [clips[i % 2], gap]
        total += len(clips[i % 2]) + len(gap)
        i += 1
    return write_pcm16(path, np.concatenate(parts))


SPLIT_WORKER_ENV = {
    "ASR_ENGINE": "offline",
    "ASR_OFFLINE_MODEL": "tiny.en",
    "ASR_WORKER_QUEUES": "batch",
    "ASR_SPLIT_MINUTES": "10",
    # One core per worker: two workers on this 2-core machine stand for two single-core machines
    # on the LAN, and the single worker gets the same one core (not both).
    "ASR_CPU_THREADS": "1",
    "ASR_METRICS_ADDR": "off",
}


def split_rows(tmp: Path) -> list[tuple]:
    """A 30-minute recording (ASR_SPLIT_MINUTES=10) finished by one worker, then by two together."""
    audio = english_recording(tmp / "rec30min.wav", 30 * 60)
    db = make_db()
    store = tmp / "split-audio"
    store.mkdir()
    stack = Stack(db_url=db, store=store, logs=ROOT / "tests" / "artifacts" / "bench-split")
    stack.logs.mkdir(parents=True, exist_ok=True)
    walls: dict[int, float] = {}
    notes: dict[int, str] = {}
    texts: dict[int, str] = {}
    try:
        stack.start_gateway(ASR_MAX_UPLOAD_MB="200")
        for n in (1, 2):
            names = [f"split{n}-w{i}" for i in range(n)]
            for name in names:
                stack.start_worker(name, **SPLIT_WORKER_ENV)
            deadline = time.monotonic() + 600
            while time.monotonic() < deadline:
                idle = stack.sql("SELECT count(*) FROM workers WHERE state = 'idle' AND id = ANY(%s)", names)[0][0]
                if idle == n:
                    break
                time.sleep(0.5)
            else:
                raise RuntimeError(f"{n} worker(s) did not become idle; see {stack.logs}")
            task = stack.submit(audio).json()["task_id"]
            res = stack.wait_done(task, timeout=7200)
            assert res["status"] == "done", res
            (wall,), = stack.sql("SELECT extract(epoch FROM finished_at - created_at) FROM transcriptions "
                                 "WHERE id = %s", task)
            pieces, workers, split_s = stack.sql(
                """SELECT count(*), count(DISTINCT p.worker), extract(epoch FROM min(p.started_at) - t.started_at)
                   FROM transcription_pieces p JOIN transcriptions t ON t.id = p.task_id
                   WHERE p.task_id = %s GROUP BY t.started_at""", task)[0]
            walls[n] = float(wall)
            texts[n] = res["text"]
            notes[n] = (f"{pieces} pieces on {workers} worker(s), split step {float(split_s):.1f} s, "
                        f"RTF {res['rtf']:.3f}")
            for name in names:
                stack.kill(name, signal.SIGTERM)
        dur = stack.result(task)["duration"]
    finally:
        stack.stop()
        drop_db(db)
        shutil.rmtree(store, ignore_errors=True)  # two 58 MB uploads
        audio.unlink(missing_ok=True)
    speedup = walls[1] / walls[2]
    return [(f"{dur / 60:.0f}-min recording, 1 worker vs 2 workers: wall s, speed-up",
             f"{walls[1]:.0f} s → {walls[2]:.0f} s", "-", "clearly < 1 worker",
             f"speed-up {speedup:.2f}×; tiny.en, 1 CPU thread per worker; 1: {notes[1]}; 2: {notes[2]}; "
             f"same text: {'yes' if texts[1] == texts[2] else 'NO'}")]


def print_table(rows: list[tuple]) -> None:
    head = ("measure", "median", "p99", "target", "notes")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(5)]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    print(line(head))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


def engine_rows() -> list[tuple]:
    """worker-py/bench/engine_compare.py, in its own process (it imports torch and onnxruntime)."""
    out = subprocess.run([sys.executable, str(ROOT / "worker-py" / "bench" / "engine_compare.py"), "--json"],
                         check=True, stdout=subprocess.PIPE, text=True, timeout=1800).stdout
    rows = []
    for r in json.loads(out.strip().splitlines()[-1]):
        value = f"{r['value']:.2f} {r['unit']}" if r.get("unit") else f"{r['value']:.3f}"
        rows.append((r["measure"], value, "-", "-", r["notes"]))
    return rows


def main() -> int:
    rows: list[tuple[str, str, str, str, str]] = []
    tmp = Path(tempfile.mkdtemp(prefix="lanasr-bench-"))
    if "--only=split" in sys.argv[1:]:
        print_table(split_rows(tmp))
        return 0
    if "--only=engines" in sys.argv[1:]:
        print_table(engine_rows())
        return 0
    if "--only=live" in sys.argv[1:]:
        db = make_db()
        store = tmp / "audio"
        store.mkdir()
        stack = Stack(db_url=db, store=store, logs=ROOT / "tests" / "artifacts" / "bench")
        try:
            stack.start_gateway()
            stack.start_worker("bench-worker")
            stack.wait_ready(timeout=600)
            print_table(live_rows(stack))
        finally:
            stack.stop()
            drop_db(db)
        return 0
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
    rows += split_rows(tmp)
    rows += engine_rows()
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
