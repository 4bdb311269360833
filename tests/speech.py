"""Helpers shared by the end-to-end tests and the benchmarks: scoring and test recordings."""

from __future__ import annotations

import re
import unicodedata
import wave
from pathlib import Path

import jiwer
import numpy as np

SPEECH = Path(__file__).resolve().parent.parent.parent / "shared" / "testdata" / "speech"


def normalise_en(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).lower()
    text = re.sub(r"[^\w\s']", " ", text)
    return " ".join(text.split())


def normalise_zh(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKC", text) if unicodedata.category(ch)[0] in "LN")


def error_rate(reference: str, hypothesis: str, language: str) -> float:
    """WER for English, CER for Chinese, after removing punctuation and case."""
    if language == "zh":
        return jiwer.cer(normalise_zh(reference), normalise_zh(hypothesis) or " ")
    return jiwer.wer(normalise_en(reference), normalise_en(hypothesis) or " ")


def read_pcm16(path: Path) -> tuple[np.ndarray, int]:
    with wave.open(str(path)) as w:
        assert w.getsampwidth() == 2, path
        data = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels())[:, 0]
        return data, w.getframerate()


def write_pcm16(path: Path, samples: np.ndarray, rate: int = 16000) -> Path:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return path


def long_recording(path: Path, seconds: float, gap_s: float = 0.8) -> Path:
    """Real speech from the test set, repeated with short silences, to at least `seconds`."""
    pieces: list[np.ndarray] = []
    total = 0
    names = sorted(p for p in SPEECH.glob("*.wav"))
    gap = np.zeros(int(gap_s * 16000), dtype=np.int16)
    while total < seconds * 16000:
        for name in names:
            pcm, rate = read_pcm16(name)
            assert rate == 16000, name
            pieces += [pcm, gap]
            total += len(pcm) + len(gap)
            if total >= seconds * 16000:
                break
    return write_pcm16(path, np.concatenate(pieces))
