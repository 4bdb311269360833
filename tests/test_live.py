"""Live captions end to end: FunASR-protocol clients → real gateway → PostgreSQL → real workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
import time
from pathlib import Path

import httpx

from conftest import SPEECH, WSCLIENT, load_transcripts, wait_for
from speech import error_rate, read_pcm16

JFK = SPEECH / "jfk_en.wav"
FAST_WORKER = {"ASR_HEARTBEAT_S": "1", "ASR_STALLED_AFTER_S": "5", "ASR_RECOVERY_INTERVAL_S": "1"}


def ws_url(stack) -> str:
    return f"ws://127.0.0.1:{stack.port}/"


class Client:
    """asr-wsclient in a thread: its JSON lines, as they arrive."""

    def __init__(self, stack, path: Path, *, speed: float = 1, mode: str = "2pass", timeout_s: int = 90):
        self.lines: list[dict] = []
        self.proc = subprocess.Popen(
            [str(WSCLIENT), "-url", ws_url(stack), "-speed", str(speed), "-mode", mode,
             "-timeout", f"{timeout_s}s", str(path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        self.t0 = time.monotonic()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("{"):
                self.lines.append(json.loads(line))

    def wait(self, timeout: float = 120) -> list[dict]:
        self.proc.wait(timeout=timeout)
        self.reader.join(5)
        return self.lines

    @property
    def msgs(self) -> list[dict]:
        return [x["msg"] for x in self.lines]


def finals_text(msgs: list[dict]) -> str:
    return " ".join(m["text"] for m in msgs if m.get("mode") == "2pass-offline" and m.get("text"))


def session_row(stack, sid: str) -> dict:
    r = httpx.get(f"{stack.base}/api/v1/asr/result/{sid}", timeout=10)
    r.raise_for_status()
    return r.json()


def test_realtime_stream_partials_finals_history_audio(stack):
    stack.start_worker(**FAST_WORKER)
    stack.wait_ready()
    ref = load_transcripts()["jfk_en.wav"]["text"]
    duration_ms = len(read_pcm16(JFK)[0]) / 16
    c = Client(stack, JFK, speed=1)
    lines = c.wait()
    msgs = c.msgs
    assert msgs and not any("error" in m for m in msgs), msgs
    partials = [x for x in lines if x["msg"].get("mode") == "2pass-online"]
    assert partials and partials[0]["audio_sent_ms"] < duration_ms, "a partial before the audio ends"
    text = finals_text(msgs)
    assert error_rate(ref, text, "en") <= 0.15, text
    last = msgs[-1]
    assert last["is_final"] is True and last["is_end"] is True
    sid = last["session_id"]
    # Figures for the report: partial latency (audio covered → arrival) and final latency after speech end.
    sent_at = {x["audio_sent_ms"]: x["elapsed_ms"] for x in lines}
    final_lat = []
    for x in lines:
        m = x["msg"]
        if m.get("mode") == "2pass-offline" and "end_ms" in m:
            sent = min((ms for ms in sent_at if ms >= m["end_ms"]), default=None)
            if sent is not None:
                final_lat.append(x["elapsed_ms"] - m["end_ms"])  # real-time pace: elapsed ≈ audio time
    (stack.logs / "live_latency.json").write_text(json.dumps({
        "partial_audio_end_vs_elapsed_ms": [x["elapsed_ms"] - x["msg"]["audio_end_ms"] for x in partials],
        "final_after_speech_end_ms": final_lat, "text": text,
    }, indent=1))
    res = wait_for(lambda: (r := session_row(stack, sid))["status"] == "done" and r.get("audio_url", True) and r, 30,
                   "the session's transcription")
    assert res["segments"] and error_rate(ref, res["text"], "en") <= 0.15
    hist = httpx.get(f"{stack.base}/api/v1/asr/history", params={"kind": "live"}).json()
    assert sid in [r["task_id"] for r in hist["records"]], hist
    audio = wait_for(lambda: (a := httpx.get(f"{stack.base}/api/v1/asr/audio/{sid}")).status_code == 200 and a, 20,
                     "the session's audio")
    assert audio.content[:4] == b"RIFF" and len(audio.content) >= JFK.stat().st_size - 20000


def test_four_sessions_at_once_and_a_bad_config(stack):
    stack.start_worker(**FAST_WORKER)
    stack.wait_ready()
    ref = load_transcripts()["jfk_en.wav"]["text"]
    clients = [Client(stack, JFK, speed=1) for _ in range(4)]

    async def garbage():
        import websockets

        # From another loopback address: the gateway allows 4 sessions per client address.
        async with websockets.connect(ws_url(stack), local_addr=("127.0.0.2", 0)) as ws:
            await ws.send("{this is not json")
            return json.loads(await asyncio.wait_for(ws.recv(), 10))

    err = asyncio.run(garbage())
    assert "error" in err, err
    for c in clients:
        c.wait(timeout=150)
    for c in clients:
        msgs = c.msgs
        assert msgs and msgs[-1].get("is_final") and msgs[-1].get("is_end"), msgs[-3:]
        assert error_rate(ref, finals_text(msgs), "en") <= 0.15, finals_text(msgs)
    sids = {c.msgs[-1]["session_id"] for c in clients}
    assert len(sids) == 4
    for sid in sids:
        assert wait_for(lambda s=sid: session_row(stack, s)["status"] == "done", 30, "done")


def test_client_disconnects_mid_sentence(stack):
    stack.start_worker(**FAST_WORKER)
    stack.wait_ready()
    pcm, _ = read_pcm16(JFK)

    async def talk_then_vanish():
        import websockets

        async with websockets.connect(ws_url(stack), subprotocols=["binary"]) as ws:
            await ws.send(json.dumps({"mode": "2pass", "wav_name": "cut", "wav_format": "pcm", "audio_fs": 16000,
                                      "chunk_size": [5, 10, 5], "chunk_interval": 10, "is_speaking": True}))
            data = pcm[: 16000 * 5].tobytes()  # 5 s: in the middle of "ask not what your country…"
            for i in range(0, len(data), 9600):
                await ws.send(data[i : i + 9600])
                await asyncio.sleep(0.1)
            # gone without is_speaking=false

    asyncio.run(talk_then_vanish())
    rows = wait_for(lambda: stack.sql("SELECT id::text FROM transcriptions WHERE kind = 'live'"), 10, "the session row")
    sid = rows[0][0]
    res = wait_for(lambda: (r := session_row(stack, sid))["status"] in ("done", "failed") and r, 60, "stored session")
    assert res["status"] == "done", res
    assert "fellow americans" in res["text"].lower(), res["text"]
    assert httpx.get(f"{stack.base}/api/v1/asr/audio/{sid}").status_code == 200


def test_no_live_worker_is_an_immediate_error(stack):
    stack.start_worker(ASR_WORKER_QUEUES="batch", **FAST_WORKER)
    stack.wait_ready()
    t0 = time.monotonic()
    c = Client(stack, JFK, speed=1, timeout_s=10)
    msgs = c.wait(timeout=30)
    assert msgs and msgs[0]["msg"].get("code") == "no_live_worker", msgs
    assert time.monotonic() - t0 < 5


def test_worker_killed_mid_session_resumes_on_a_new_worker(stack, tmp_path):
    stack.start_worker("worker-1", **FAST_WORKER)
    stack.wait_ready()
    # ~13 s of speech at real time; the worker dies about 5 s in.
    c = Client(stack, JFK, speed=1, timeout_s=90)
    wait_for(lambda: any(m.get("mode") == "2pass-online" for m in c.msgs), 15, "a first partial")
    time.sleep(1.5)
    stack.kill("worker-1")
    # The gateway notices (ASR_WORKER_TIMEOUT_S, 15 s) and tells the client; the audio keeps arriving.
    wait_for(lambda: any(m.get("code") == "worker_lost" for m in c.msgs), 40, "worker_lost")
    stack.start_worker("worker-2", **FAST_WORKER)
    lines = c.wait(timeout=150)
    msgs = [x["msg"] for x in lines]
    assert msgs[-1].get("is_final") is True and msgs[-1].get("is_end") is True, msgs[-3:]
    sid = msgs[-1]["session_id"]
    res = wait_for(lambda: (r := session_row(stack, sid))["status"] == "done" and r, 30, "done")
    ref = load_transcripts()["jfk_en.wav"]["text"]
    assert error_rate(ref, res["text"], "en") <= 0.15, res["text"]
    assert res["worker"] == "worker-2"
    n = stack.sql("SELECT count(*), count(DISTINCT idx) FROM live_sentences WHERE session_id = %s", sid)[0]
    assert n[0] == n[1]
    assert httpx.get(f"{stack.base}/api/v1/asr/audio/{sid}").status_code == 200
