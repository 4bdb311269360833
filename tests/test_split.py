"""Long files in pieces, over the real processes: two workers share one recording, cut at silences.

The recording is built from the English test speech with known silences between the clips, so
every segment of the merged result can be checked against the clip that was placed at its time.
ASR_SPLIT_MINUTES is 0.5 here (pieces of about 30 s) so the test stays short; the wall-time
comparison on a 30-minute recording is in `make bench`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from conftest import SPEECH, load_transcripts, wait_for
from speech import error_rate, normalise_en, read_pcm16, write_pcm16

SR = 16000
SILENCE_S = 3.0  # between clips: longer than the engine's own 2 s span-merging gap
WORKER_ENV = {
    "ASR_ENGINE": "offline",
    "ASR_OFFLINE_MODEL": "tiny.en",
    "ASR_WORKER_QUEUES": "batch",
    "ASR_SPLIT_MINUTES": "0.5",
    "ASR_CPU_THREADS": "1",  # two workers on a 2-core machine: one core each
}


@dataclass
class Clip:
    name: str
    start: float
    end: float
    text: str


def build_recording(path: Path, pairs: int = 6) -> tuple[Path, list[Clip], np.ndarray]:
    """jfk_en and librispeech in turn, ``SILENCE_S`` of silence after each; returns where each clip lies."""
    refs = load_transcripts()
    names = ["jfk_en.wav", "librispeech_1995-1837-0001_en.wav"]
    gap = np.zeros(int(SILENCE_S * SR), dtype=np.int16)
    parts, clips, pos = [], [], 0
    for i in range(pairs * 2):
        name = names[i % 2]
        pcm, rate = read_pcm16(SPEECH / name)
        assert rate == SR
        clips.append(Clip(name, pos / SR, (pos + len(pcm)) / SR, refs[name]["text"]))
        parts += [pcm, gap]
        pos += len(pcm) + len(gap)
    pcm = np.concatenate(parts)
    return write_pcm16(path, pcm), clips, pcm


def start_two_workers(stack) -> None:
    stack.start_worker("worker-a", **WORKER_ENV)
    stack.start_worker("worker-b", **WORKER_ENV)
    stack.wait_ready()
    # The piece count follows the batch workers active at split time: wait for both.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        n = stack.sql("SELECT count(*) FROM workers WHERE state = 'idle' AND 'batch' = ANY (queues)")[0][0]
        if n == 2:
            return
        time.sleep(0.3)
    raise AssertionError(f"both workers did not become idle: {stack.sql('SELECT id, state, error FROM workers')}")


def pieces_of(stack, task: str) -> list[tuple]:
    return stack.sql(
        """SELECT idx, generation, start_sample, end_sample, status, worker, attempts
           FROM transcription_pieces WHERE task_id = %s ORDER BY idx""",
        task,
    )


def piece_jobs(stack, task: str, statuses: tuple[str, ...]) -> list[tuple]:
    return stack.sql(
        """SELECT id, status::text FROM procrastinate_jobs
           WHERE task_name = 'asr.transcribe_piece' AND args->>'task_id' = %s AND status::text = ANY(%s)""",
        task,
        list(statuses),
    )


def test_two_workers_share_a_long_recording_and_the_merge_is_seamless(stack, tmp_path: Path):
    audio, clips, pcm = build_recording(tmp_path / "long.wav")
    total = len(pcm)
    start_two_workers(stack)
    r = stack.submit(audio)
    assert r.status_code == 202, r.text
    task = r.json()["task_id"]
    progress_seen = set()
    deadline = time.monotonic() + 300
    res = stack.result(task)
    while res["status"] not in ("done", "failed", "canceled") and time.monotonic() < deadline:
        progress_seen.add(round(res["progress"], 3))
        time.sleep(0.2)
        res = stack.result(task)
    assert res["status"] == "done", res

    # The pieces: several, tiling the audio exactly, all done, shared by both workers.
    pieces = pieces_of(stack, task)
    assert len(pieces) >= 3, pieces
    assert [p[0] for p in pieces] == list(range(len(pieces)))
    assert {p[1] for p in pieces} == {1} and {p[4] for p in pieces} == {"done"}
    assert pieces[0][2] == 0 and pieces[-1][3] == total
    assert all(a[3] == b[2] for a, b in zip(pieces, pieces[1:]))
    workers = {p[5] for p in pieces}
    assert workers == {"worker-a", "worker-b"}, pieces
    assert stack.sql("SELECT count(DISTINCT worker) FROM transcription_pieces WHERE task_id = %s", task)[0][0] == 2
    assert set(res["worker"].split(", ")) == workers
    jobs = stack.sql("""SELECT status::text, count(*) FROM procrastinate_jobs
                        WHERE task_name = 'asr.transcribe_piece' GROUP BY 1""")
    assert jobs == [("succeeded", len(pieces))], jobs

    # Every cut is in silence: the audio around it is quiet, far below the speech level.
    speech_rms = float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2)))
    for _, _, start, _, _, _, _ in pieces[1:]:
        around = pcm[start - SR // 20 : start + SR // 20].astype(np.float64)
        assert np.sqrt(np.mean(around**2)) < 0.05 * speech_rms, f"cut at {start / SR:.2f} s is not in silence"

    # Progress moved through the pieces before the end.
    assert any(0 < p < 1 for p in progress_seen), progress_seen
    assert res["progress"] == 1

    # The merged segments: in time order, never overlapping, inside the recording.
    segs = res["segments"]
    assert len(segs) >= len(clips)
    for s in segs:
        assert 0 <= s["start"] <= s["end"] <= total / SR + 0.01 and s["text"].strip()
    for a, b in zip(segs, segs[1:]):
        assert a["end"] <= b["start"], (a, b)
    db_segs = stack.sql("SELECT idx, start_s, end_s, text FROM segments WHERE transcription_id = %s ORDER BY idx",
                        task)
    assert [r[0] for r in db_segs] == list(range(len(segs)))
    assert [(round(r[1], 3), r[3]) for r in db_segs] == [(round(s["start"], 3), s["text"]) for s in segs]

    # Each segment is text of the clip placed at its time; each clip is transcribed once, whole.
    def clip_at(t: float) -> Clip | None:
        return next((c for c in clips if c.start - 0.5 <= t <= c.end + 0.5), None)

    per_clip: dict[int, list[str]] = {i: [] for i in range(len(clips))}
    for s in segs:
        clip = clip_at((s["start"] + s["end"]) / 2)
        assert clip is not None, f"segment in a silence: {s}"
        words = normalise_en(s["text"]).split()
        ref = set(normalise_en(clip.text).split())
        assert sum(w in ref for w in words) >= 0.7 * len(words), (s, clip.name, clip.start)
        per_clip[clips.index(clip)].append(s["text"])
    for i, clip in enumerate(clips):
        said = " ".join(per_clip[i])
        rate = error_rate(clip.text, said, "en")
        assert rate <= 0.25, f"clip {i} ({clip.name} at {clip.start:.1f} s): {rate:.0%} errors: {said!r}"
    words = normalise_en(res["text"]).split()
    ref_words = sum(len(normalise_en(c.text).split()) for c in clips)
    assert abs(len(words) - ref_words) <= 0.1 * ref_words, (len(words), ref_words)
    assert abs(res["duration"] - total / SR) < 0.01
    assert res["model"] == "whisper-tiny.en" and res["language"] == "en"


def test_cancel_and_delete_mid_split_stop_every_piece_and_retry_splits_again(stack, tmp_path: Path):
    audio, _, pcm = build_recording(tmp_path / "long.wav")
    start_two_workers(stack)

    def running(task: str):
        return any(p[4] == "running" for p in pieces_of(stack, task))

    # Cancel while pieces run: none stays queued or running, no piece job stays alive, no merge.
    task = stack.submit(audio).json()["task_id"]
    wait_for(lambda: running(task), 120, "a running piece")
    r = httpx.post(f"{stack.base}/api/v1/asr/cancel/{task}", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "canceled", r.text
    assert {p[4] for p in pieces_of(stack, task)} <= {"done", "canceled"}
    assert "canceled" in {p[4] for p in pieces_of(stack, task)}
    wait_for(lambda: not piece_jobs(stack, task, ("todo", "doing")), 20, "piece jobs to stop")
    wait_for(lambda: stack.sql("SELECT count(*) FROM workers WHERE state = 'idle'")[0][0] == 2, 20, "idle workers")
    time.sleep(2)
    res = stack.result(task)
    assert res["status"] == "canceled" and res["segments"] == [] and res["text"] == "", res

    # Retry: the file is split again (generation 2) and finishes; the old pieces are gone.
    r = httpx.post(f"{stack.base}/api/v1/asr/retry/{task}", timeout=10)
    assert r.status_code == 202, r.text
    res = stack.wait_done(task, timeout=300)
    assert res["status"] == "done", res
    pieces = pieces_of(stack, task)
    assert pieces and {p[1] for p in pieces} == {2} and {p[4] for p in pieces} == {"done"}
    assert pieces[-1][3] == len(pcm)
    assert stack.sql("SELECT attempts FROM transcriptions WHERE id = %s", task)[0][0] == 2
    segs = res["segments"]
    assert segs and all(a["end"] <= b["start"] for a, b in zip(segs, segs[1:]))

    # Delete while pieces run: the row, its pieces and every piece job go.
    other = stack.submit(audio).json()["task_id"]
    wait_for(lambda: running(other), 120, "a running piece")
    r = httpx.delete(f"{stack.base}/api/v1/asr/task/{other}", timeout=10)
    assert r.status_code == 200, r.text
    assert pieces_of(stack, other) == []
    assert not piece_jobs(stack, other, ("todo",))
    wait_for(lambda: not piece_jobs(stack, other, ("todo", "doing")), 20, "piece jobs of the deleted task to stop")
    wait_for(lambda: stack.sql("SELECT count(*) FROM workers WHERE state = 'idle'")[0][0] == 2, 20, "idle workers")
    assert stack.sql("SELECT count(*) FROM transcriptions WHERE id = %s", other)[0][0] == 0


def test_a_piece_whose_worker_is_killed_is_finished_by_the_other_once(stack, tmp_path: Path):
    audio, clips, pcm = build_recording(tmp_path / "long.wav", pairs=3)
    start_two_workers(stack)
    task = stack.submit(audio).json()["task_id"]

    def running_on_b():
        return stack.sql("""SELECT idx FROM transcription_pieces
                            WHERE task_id = %s AND status = 'running' AND worker = 'worker-b'""", task)

    victim = wait_for(running_on_b, 120, "a piece running on worker-b")[0][0]
    stack.kill("worker-b")  # SIGKILL: no goodbye; stalled-job recovery must hand its piece to worker-a
    res = stack.wait_done(task, timeout=300)
    assert res["status"] == "done", res
    pieces = pieces_of(stack, task)
    assert {p[4] for p in pieces} == {"done"} and {p[1] for p in pieces} == {1}
    killed = next(p for p in pieces if p[0] == victim)
    assert killed[5] == "worker-a" and killed[6] == 2, killed  # its second attempt, on the survivor
    segs = res["segments"]
    assert all(a["end"] <= b["start"] for a, b in zip(segs, segs[1:]))
    said = normalise_en(res["text"]).split()
    expected = sum(len(normalise_en(c.text).split()) for c in clips)
    assert abs(len(said) - expected) <= 0.1 * expected, (len(said), expected)  # nothing lost, nothing twice
    assert stack.sql("SELECT count(*) FROM segments WHERE transcription_id = %s", task)[0][0] == len(segs)
