"""`make soak`: bounded load, about 5 minutes, against the real gateway, workers and PostgreSQL.

Each round submits 100 uploads at once (the four test recordings, round robin) while 8 live
sessions stream jfk_en.wav at real-time pace through asr-wsclient; the round ends when every
upload is finished. Rounds repeat until SOAK_SECONDS (default 240) have passed (at least 3).
Then it checks, with SQL, that nothing was lost or duplicated, and that the resident memory of
the gateway and of each worker is flat: the last round's RSS within 10 % (or 24 MiB) of the
second round's (the first round loads models and warms caches). Prints a table; exits 1 on
any error.

    make soak                     # a throwaway PostgreSQL cluster, 2 workers, Whisper tiny.en
    SOAK_SECONDS=600 make soak    # longer
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from bench import make_db, drop_db, print_table  # noqa: E402
from conftest import ROOT, WSCLIENT, Stack  # noqa: E402
from speech import SPEECH  # noqa: E402

UPLOADS = int(os.environ.get("SOAK_UPLOADS", "100"))
LIVE = int(os.environ.get("SOAK_LIVE", "8"))
SECONDS = float(os.environ.get("SOAK_SECONDS", "240"))
FILES = sorted(p for p in SPEECH.glob("*.wav"))
WORKERS = ("soak-1", "soak-2")


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


async def upload_all(base: str, n: int) -> tuple[list[str], list[str], list[float]]:
    """Submit n uploads at once; (task ids, errors, latencies in ms)."""
    ids: list[str] = []
    errors: list[str] = []
    lat: list[float] = []
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:

        async def one(i: int) -> None:
            path = FILES[i % len(FILES)]
            t0 = time.perf_counter()
            try:
                r = await client.post("/api/v1/asr/submit", files={"audio": (path.name, path.read_bytes())})
            except httpx.HTTPError as exc:
                errors.append(f"upload {i}: {type(exc).__name__}: {exc}")
                return
            lat.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 202:
                errors.append(f"upload {i}: HTTP {r.status_code} {r.text[:200]}")
                return
            ids.append(r.json()["task_id"])

        await asyncio.gather(*(one(i) for i in range(n)))
    return ids, errors, lat


def start_live(base_ws: str, n: int) -> list[subprocess.Popen]:
    return [
        subprocess.Popen([str(WSCLIENT), "-url", base_ws, "-mode", "2pass", "-timeout", "180s",
                          str(SPEECH / "jfk_en.wav")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(n)
    ]


def finish_live(procs: list[subprocess.Popen]) -> tuple[int, list[str], list[str]]:
    """(sessions closed with a final text, session ids, errors)."""
    ok, sids, errors = 0, [], []
    for i, p in enumerate(procs):
        out, err = p.communicate(timeout=300)
        msgs = [json.loads(line)["msg"] for line in out.splitlines() if line.startswith("{")]
        bad = [m for m in msgs if "error" in m]
        finals = [m for m in msgs if m.get("mode") == "2pass-offline" and m.get("text")]
        closing = [m for m in msgs if m.get("is_final")]
        if p.returncode != 0 or bad or not closing or not finals:
            errors.append(f"live {i}: rc={p.returncode} errors={bad[:2]} finals={len(finals)} "
                          f"closed={bool(closing)} {err.strip()[-200:]}")
            continue
        if not any("country" in f["text"].lower() for f in finals):
            errors.append(f"live {i}: no final mentions 'country': {[f['text'] for f in finals]}")
            continue
        ok += 1
        sid = closing[-1].get("session_id")
        if sid:
            sids.append(sid)
    return ok, sids, errors


def wait_done(stack: Stack, ids: list[str], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = stack.sql("SELECT count(*) FROM transcriptions WHERE id = ANY(%s::uuid[]) "
                         "AND status NOT IN ('done', 'failed', 'canceled')", ids)[0][0]
        if left == 0:
            return
        time.sleep(1)
    raise AssertionError(f"{left} uploads not finished within {timeout:.0f} s")


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="lanasr-soak-"))
    store = tmp / "audio"
    store.mkdir()
    db = make_db()
    logs = ROOT / "tests" / "artifacts" / "soak"
    logs.mkdir(parents=True, exist_ok=True)
    stack = Stack(db_url=db, store=store, logs=logs)
    errors: list[str] = []
    rounds: list[dict] = []
    all_ids: list[str] = []
    all_sids: list[str] = []
    latencies: list[float] = []
    try:
        stack.start_gateway(ASR_LIVE_MAX_PER_CLIENT=str(LIVE * 2), ASR_LIVE_MAX_SESSIONS=str(LIVE * 4),
                            ASR_MAX_UPLOAD_MB="16")
        for name in WORKERS:
            stack.start_worker(name, ASR_OFFLINE_MODEL="tiny.en", ASR_ENGINE="offline",
                               ASR_LIVE_SESSIONS=str((LIVE + len(WORKERS) - 1) // len(WORKERS)),
                               ASR_CPU_THREADS="1")
        stack.wait_ready(timeout=300)
        pids = {"gateway": stack.procs["gateway"].pid, **{n: stack.procs[n].pid for n in WORKERS}}
        ws = f"ws://127.0.0.1:{stack.port}/"
        t_start = time.monotonic()
        while len(rounds) < 3 or time.monotonic() - t_start < SECONDS:
            t0 = time.monotonic()
            live = start_live(ws, LIVE)
            ids, up_errors, lat = asyncio.run(upload_all(stack.base, UPLOADS))
            errors += up_errors
            latencies += lat
            all_ids += ids
            ok_live, sids, live_errors = finish_live(live)
            errors += live_errors
            all_sids += sids
            wait_done(stack, ids)
            failed = stack.sql("SELECT count(*) FROM transcriptions WHERE id = ANY(%s::uuid[]) AND status <> 'done'",
                               ids)[0][0]
            if failed:
                errors.append(f"round {len(rounds) + 1}: {failed} uploads did not end done")
            rounds.append({"wall": time.monotonic() - t0, "uploads": len(ids), "live_ok": ok_live,
                           "rss": {k: rss_mib(p) for k, p in pids.items()}})
            print(f"round {len(rounds)}: {len(ids)} uploads, {ok_live}/{LIVE} live sessions, "
                  f"{rounds[-1]['wall']:.0f} s, RSS " + ", ".join(f"{k} {v:.0f} MiB" for k, v in rounds[-1]["rss"].items()),
                  flush=True)
            if any(stack.procs[n].poll() is not None for n in pids):
                errors.append("a process died: " + ", ".join(n for n in pids if stack.procs[n].poll() is not None))
                break

        # Nothing lost, nothing duplicated: one row and one job per upload, every row done once,
        # segments numbered 0..n-1; every live session stored once with its audio.
        rows = stack.sql("SELECT count(*), count(*) FILTER (WHERE status = 'done') FROM transcriptions "
                         "WHERE kind = 'file'")[0]
        jobs = stack.sql("SELECT count(*), count(DISTINCT args->>'task_id') FROM procrastinate_jobs "
                         "WHERE task_name = 'asr.transcribe_file'")[0]
        seg_bad = stack.sql("""SELECT count(*) FROM (SELECT transcription_id, count(*) AS n, max(idx) AS m FROM segments
                               GROUP BY transcription_id) s WHERE m <> n - 1""")[0][0]
        empty = stack.sql("SELECT count(*) FROM transcriptions WHERE kind = 'file' AND status = 'done' "
                          "AND coalesce(text, '') = ''")[0][0]
        live_rows = stack.sql("SELECT count(*), count(*) FILTER (WHERE status = 'done' AND audio_key IS NOT NULL) "
                              "FROM transcriptions WHERE kind = 'live'")[0]
        lost = len(all_ids) - rows[1]
        duplicated = (rows[0] - len(all_ids)) + (jobs[0] - jobs[1])
        if lost or duplicated or seg_bad or empty:
            errors.append(f"lost {lost}, duplicated {duplicated}, bad segment numbering {seg_bad}, empty texts {empty}")
        if live_rows[1] != len(all_sids) or live_rows[0] != LIVE * len(rounds):
            errors.append(f"live: {live_rows[0]} sessions stored ({live_rows[1]} done with audio), "
                          f"{LIVE * len(rounds)} streamed, {len(all_sids)} closed cleanly")

        base, last = rounds[1]["rss"], rounds[-1]["rss"]
        growth = {k: last[k] - base[k] for k in base}
        grew = [k for k, d in growth.items() if d > max(24.0, 0.10 * base[k])]
        if grew:
            errors.append("memory not flat: " + ", ".join(f"{k} +{growth[k]:.0f} MiB" for k in grew))

        table = [
            ("rounds (100 uploads + 8 live each)", f"{len(rounds)}", "-", "-",
             f"{sum(r['wall'] for r in rounds):.0f} s in all; median round {statistics.median(r['wall'] for r in rounds):.0f} s"),
            ("uploads submitted / done", f"{len(all_ids)} / {rows[1]}", "-", "all done",
             f"{len([e for e in errors if e.startswith('upload')])} upload errors"),
            ("submit latency under load", f"{statistics.median(latencies):.0f} ms", f"{max(latencies):.0f} ms (max)",
             "-", f"{UPLOADS} at once, with {LIVE} live sessions streaming"),
            ("live sessions closed with finals", f"{sum(r['live_ok'] for r in rounds)} / {LIVE * len(rounds)}", "-",
             "all", f"stored with audio: {live_rows[1]}"),
            ("lost / duplicated jobs", f"{lost} / {duplicated}", "-", "0 / 0",
             f"{rows[0]} rows, {jobs[0]} jobs for {jobs[1]} tasks; segment numbering errors {seg_bad}"),
        ]
        for k in base:
            table.append((f"RSS {k}: round 2 → last", f"{base[k]:.0f} → {last[k]:.0f} MiB", "-",
                          "flat (≤ +10 % or 24 MiB)", f"round 1: {rounds[0]['rss'][k]:.0f} MiB"))
        table.append(("errors", f"{len(errors)}", "-", "0", "; ".join(errors)[:300] or "-"))
        print()
        print_table(table)
        return 1 if errors else 0
    finally:
        stack.stop()
        drop_db(db)


if __name__ == "__main__":
    sys.exit(main())
