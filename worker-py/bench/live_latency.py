"""Live caption latency: one `asr-worker run` process, sessions simulated with SQL at real-time pace.

    ASR_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:54331/postgres \\
        .venv/bin/python worker-py/bench/live_latency.py [--model base|tiny.en] [--sessions N]

Needs the lanasr_py_tpl template (made by the worker's integration tests). Prints, per session and
overall: partial latency (caption arrival − moment the audio it covers was sent) and final latency
after end of speech (2pass-offline arrival − moment the sentence's end_ms was sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
import wave
from pathlib import Path

import numpy as np
import psycopg

CHUNK = 19200
SPEECH = Path("/work/shared/testdata/speech/jfk_en.wav")


def pcm() -> bytes:
    with wave.open(str(SPEECH)) as w:
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
    return np.concatenate([np.zeros(4800, np.int16), data, np.zeros(16000, np.int16)]).tobytes()


async def session(url: str, audio: bytes, caps: dict, sid: str) -> float:
    chunks = [audio[i : i + CHUNK] for i in range(0, len(audio), CHUNK)]
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as c:
        t0 = time.monotonic()
        caps[sid] = {"t0": t0, "msgs": []}
        for seq, ch in enumerate(chunks):
            await asyncio.sleep(max(0.0, t0 + (seq + 1) * 0.6 - time.monotonic()))  # chunk complete at (seq+1)*600 ms
            last = seq == len(chunks) - 1
            await c.execute(
                "INSERT INTO live_chunks (session_id, seq, pcm, is_last) VALUES (%s, %s, %s, %s)", (sid, seq, ch, last)
            )
    return t0


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="base")
    ap.add_argument("--sessions", type=int, default=1)
    ap.add_argument("--end-silence-ms", default="500")
    ap.add_argument("--short-context", default="true", help="ASR_LIVE_SHORT_CONTEXT for the worker")
    args = ap.parse_args()
    admin = os.environ["ASR_TEST_DATABASE_URL"]
    name = f"lanasr_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(admin, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}" TEMPLATE lanasr_py_tpl')
    url = psycopg.conninfo.make_conninfo(admin, dbname=name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASR_")}
    env.update(
        DATABASE_URL=url,
        ASR_ENGINE="offline",
        ASR_OFFLINE_MODEL=args.model,
        ASR_WORKER_NAME="bench",
        ASR_LIVE_END_SILENCE_MS=args.end_silence_ms,
        ASR_LIVE_SHORT_CONTEXT=args.short_context,
    )
    worker = subprocess.Popen(
        [str(Path(sys.executable).parent / "asr-worker"), "run"],
        env=env,
        stderr=open("/tmp/live_bench_worker.log", "w"),
    )
    try:
        with psycopg.connect(url, autocommit=True) as c:
            for _ in range(600):
                r = c.execute("SELECT state FROM workers WHERE id = 'bench'").fetchone()
                if r and r[0] == "idle":
                    break
                time.sleep(0.1)
            sids = []
            for _ in range(args.sessions):
                with c.transaction():
                    sid = str(
                        c.execute(
                            "INSERT INTO transcriptions (kind, status, filename) VALUES "
                            "('live', 'processing', 'b.wav') RETURNING id"
                        ).fetchone()[0]
                    )
                    c.execute("INSERT INTO live_sessions (id, mode) VALUES (%s, '2pass')", (sid,))
                    c.execute(
                        """SELECT procrastinate_defer_jobs_v1(ARRAY[ROW('live', 'asr.live_session', 40,
                        'live:' || %(id)s, 'live:' || %(id)s, jsonb_build_object('session_id', %(id)s),
                        NULL)::procrastinate_job_to_defer_v1])""",
                        {"id": sid},
                    )
                sids.append(sid)
        caps: dict = {}
        listen = await psycopg.AsyncConnection.connect(url, autocommit=True)
        await listen.execute("LISTEN asr_captions")
        done = set()

        async def collect():
            async for n in listen.notifies():
                b = json.loads(n.payload)
                caps[b["session_id"]]["msgs"].append((time.monotonic(), b["msg"]))
                if b["msg"].get("is_final"):
                    done.add(b["session_id"])
                    if len(done) == len(sids):
                        return

        audio = pcm()
        col = asyncio.create_task(collect())
        await asyncio.gather(*(session(url, audio, caps, s) for s in sids))
        await asyncio.wait_for(col, 180)
        part, fin = [], []
        for sid in sids:
            t0 = caps[sid]["t0"]
            for t, m in caps[sid]["msgs"]:
                if m.get("mode") == "2pass-online":
                    part.append((t - t0) * 1000 - m["audio_end_ms"])
                elif m.get("mode") == "2pass-offline" and "end_ms" in m:
                    fin.append((t - t0) * 1000 - m["end_ms"])
        print(
            json.dumps(
                {
                    "model": args.model,
                    "sessions": args.sessions,
                    "partials": len(part),
                    "partial_latency_ms_p50": round(statistics.median(part)) if part else None,
                    "finals": len(fin),
                    "final_after_speech_end_ms_p50": round(statistics.median(fin)),
                    "final_after_speech_end_ms_max": round(max(fin)),
                    "finals_ms": [round(x) for x in fin],
                }
            )
        )
    finally:
        worker.terminate()
        worker.wait(30)
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
