"""The FunASR engine: ``AutoModel`` with paraformer-zh + fsmn-vad + ct-punc, sentence timestamps.

Model names are ModelScope ids/aliases or local directories. One AutoModel object is not
thread-safe, so calls are serialised by ``lock``.
"""

from __future__ import annotations

import ast
import functools
import logging
import os
import threading
import time
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..text import has_cjk, join_texts, to_simplified
from .base import AbortCheck, Aborted, EngineError, ProgressCallback, Segment, Transcript

__all__ = ["FunasrEngine", "resolve_device", "modelscope_cached"]

log = logging.getLogger(__name__)


def resolve_device(device: str) -> str:
    """``auto`` becomes ``cuda`` when torch sees a GPU, else ``cpu``."""
    if device != "auto":
        return device
    try:
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    except Exception:
        return "cpu"


def modelscope_cached(name: str) -> Path | None:
    """The local directory of ``name`` (a directory, or a ModelScope id/alias already downloaded)."""
    if not name:
        return None
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    model_id = _modelscope_aliases().get(name, name)
    root = Path(os.environ.get("MODELSCOPE_CACHE", Path.home() / ".cache" / "modelscope" / "hub"))
    for base in (root / "models", root):
        candidate = base / model_id
        if (candidate / "config.yaml").is_file() or (candidate / "configuration.json").is_file():
            return candidate
    return None


@functools.lru_cache(maxsize=1)
def _modelscope_aliases() -> dict[str, str]:
    """FunASR's alias → ModelScope id map, read from its source: importing funasr takes ~20 s."""
    from .models import package_dir

    pkg = package_dir("funasr")
    if pkg is None:
        return {}
    try:
        tree = ast.parse((pkg / "download" / "name_maps_from_hub.py").read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "name_maps_ms" for t in node.targets):
                return dict(ast.literal_eval(node.value))
    except (OSError, SyntaxError, ValueError):
        pass
    return {}


class FunasrEngine:
    """FunASR AutoModel pipeline, loaded once per process."""

    name = "funasr"

    def __init__(
        self,
        *,
        model: str = "paraformer-zh",
        vad_model: str = "fsmn-vad",
        punc_model: str = "ct-punc",
        device: str = "auto",
        cpu_threads: int = 0,
        streaming_model: str = "",
    ):
        try:
            from funasr import AutoModel
        except ImportError as exc:
            raise EngineError("FunASR is not installed: install the worker's `funasr` and `torch` extras.") from exc
        self.device = resolve_device(device)
        self.model_name = Path(model).name if Path(model).expanduser().is_dir() else model
        kwargs = dict(
            model=_local_or_name(model),
            device=self.device,
            disable_update=True,
            disable_pbar=True,
            disable_log=True,
            ncpu=cpu_threads or os.cpu_count() or 1,
        )
        vad_model = _optional(vad_model)
        punc_model = _optional(punc_model)
        if vad_model:
            kwargs["vad_model"] = _local_or_name(vad_model)
            kwargs["vad_kwargs"] = {"max_single_segment_time": 30000}
        if punc_model:
            kwargs["punc_model"] = _local_or_name(punc_model)
        try:
            self.automodel = AutoModel(**kwargs)
        except Exception as exc:
            raise EngineError(f"FunASR models could not be loaded ({model}, {vad_model}, {punc_model}): {exc}") from exc
        self.models = {"asr": model, "vad": vad_model or "", "punc": punc_model or ""}
        self.lock = threading.Lock()
        # Live partials: a streaming paraformer, one object for every session (each keeps its own cache).
        self.streaming = None
        self.streaming_lock = threading.Lock()
        streaming_model = _optional(streaming_model)
        if streaming_model:
            try:
                self.streaming = AutoModel(
                    model=_local_or_name(streaming_model),
                    device=self.device,
                    disable_update=True,
                    disable_pbar=True,
                    disable_log=True,
                    ncpu=kwargs["ncpu"],
                )
                self.models["streaming"] = streaming_model
            except Exception as exc:  # files still transcribe; live sessions get finals without partials
                log.warning(
                    "!!! FunASR streaming model %s could not be loaded (%s): live sessions get no partial captions",
                    streaming_model,
                    exc,
                )

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        hotwords: str = "",
        progress: ProgressCallback | None = None,
        should_abort: AbortCheck | None = None,
    ) -> Transcript:
        with self.lock:
            t0 = time.perf_counter()
            duration = len(samples) / SAMPLE_RATE
            if should_abort is not None and should_abort():
                raise Aborted()

            def on_progress(current, total):
                if should_abort is not None and should_abort():
                    raise Aborted()
                if progress is not None and total:
                    progress(min(1.0, current / total))

            cfg = {"batch_size_s": 300, "sentence_timestamp": True}
            if hotwords:
                cfg["hotword"] = hotwords
            result = self.automodel.generate(
                input=np.ascontiguousarray(samples, dtype=np.float32), progress_callback=on_progress, **cfg
            )
            res = result[0] if result else {}
            segments = _segments(res, duration)
            text = join_texts([s.text for s in segments]) if segments else (res.get("text") or "").strip()
            if progress is not None:
                progress(1.0)
            lang = language or ("zh" if has_cjk(text) else ("en" if text else None))
            return Transcript(
                text=text,
                segments=segments,
                language=lang,
                duration_s=duration,
                engine=self.name,
                model=self.model_name,
                engine_s=time.perf_counter() - t0,
            )


def _optional(name: str) -> str:
    return "" if (name or "").strip().lower() in ("", "none", "off") else name


def _local_or_name(name: str) -> str:
    local = modelscope_cached(name)
    return str(local) if local is not None else name


def _segments(res: dict, duration: float) -> list[Segment]:
    out: list[Segment] = []
    for s in res.get("sentence_info") or []:
        text = to_simplified(str(s.get("text", "")).strip())
        if not text:
            continue
        start = max(0.0, float(s.get("start", 0)) / 1000.0)
        end = min(duration, max(start, float(s.get("end", 0)) / 1000.0))
        out.append(Segment(round(min(start, duration), 3), round(end, 3), text))
    if out:
        return out
    text = to_simplified(str(res.get("text", "")).strip())
    if not text:
        return []
    stamps = res.get("timestamp") or []
    if stamps:
        start, end = stamps[0][0] / 1000.0, stamps[-1][1] / 1000.0
    else:
        start, end = 0.0, duration
    start = min(max(0.0, start), duration)
    return [Segment(round(start, 3), round(min(duration, max(start, end)), 3), text)]
