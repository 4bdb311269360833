"""Accuracy and speed of the offline profile on the test speech: one row per model and file.

Usage: .venv/bin/python worker-py/bench/offline_accuracy.py [--models base,tiny.en] [--speech DIR] [--json]
RTF = engine seconds / audio seconds (models loaded once, first call per model warmed up).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
import unicodedata
from pathlib import Path

import jiwer

from asr_worker.audio import decode_audio
from asr_worker.engines.offline import OfflineEngine

HERE = Path(__file__).resolve()
DEFAULT_SPEECH = HERE.parents[3] / "shared" / "testdata" / "speech"


def norm_en(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s']", " ", text.lower()).split())


def norm_zh(text: str) -> str:
    return "".join(c for c in text if not unicodedata.category(c).startswith(("P", "Z", "S")) and not c.isspace())


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tiny.en,base")
    p.add_argument("--speech", default=os.environ.get("ASR_TEST_SPEECH_DIR", str(DEFAULT_SPEECH)))
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    speech = Path(args.speech)
    refs = json.loads((speech / "transcripts.json").read_text(encoding="utf-8"))
    rows = []
    for model in args.models.split(","):
        t0 = time.perf_counter()
        engine = OfflineEngine(model=model, cpu_threads=args.threads)
        load_s = time.perf_counter() - t0
        engine.transcribe(decode_audio(speech / "jfk_en.wav").samples[: 16000 * 3])  # warm-up
        for name, ref in refs.items():
            if not engine.multilingual and ref["language"] != "en":
                continue
            audio = decode_audio(speech / name)
            t = engine.transcribe(audio.samples)
            if ref["language"] == "en":
                metric, err = "WER", jiwer.wer(norm_en(ref["text"]), norm_en(t.text))
            else:
                metric, err = "CER", jiwer.cer(norm_zh(ref["text"]), norm_zh(t.text))
            rows.append(
                {
                    "model": engine.model_name,
                    "file": name,
                    "audio_s": round(t.duration_s, 2),
                    "engine_s": round(t.engine_s, 3),
                    "rtf": round(t.rtf, 3),
                    "metric": metric,
                    "error": round(err, 4),
                    "language": t.language,
                    "load_s": round(load_s, 2),
                    "text": t.text,
                }
            )
    if args.json:
        print(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    print(f"{'model':<16} {'file':<36} {'audio s':>7} {'RTF':>6} {'err':>10}  text")
    for r in rows:
        print(
            f"{r['model']:<16} {r['file']:<36} {r['audio_s']:>7.2f} {r['rtf']:>6.3f} "
            f"{r['metric']} {r['error'] * 100:5.1f}%  {r['text']}"
        )


if __name__ == "__main__":
    main()
