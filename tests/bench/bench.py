"""`make bench`: the foundation's figures, printed as a table of medians and p99s.

1. Submit latency of a 1 MB upload at 1 and at 32 concurrent clients (gateway + PostgreSQL;
   no worker running, so the figure is the gateway's own), measured by a Go client.
2. Dispatch latency: from the job's commit (Procrastinate's `deferred` event) to the worker
   starting the task (the row's `started_at`), with an idle worker, one short job at a time.
3. Pipeline overhead: submit-to-finished time over the engine's own time for one 45 s recording.
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
from conftest import ROOT, Stack, admin_url, db_url_for, scrubbed_env, GATEWAY_BIN  # noqa: E402
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
    finally:
        stack.stop()
        with psycopg.connect(admin_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{db.rsplit("/", 1)[1]}" WITH (FORCE)')

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
