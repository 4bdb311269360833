"""ASR engines and the factory that picks one for ``ASR_ENGINE`` (auto, funasr, onnx, offline)."""

from __future__ import annotations

import importlib.util
import logging
import socket
import threading
from pathlib import Path

from ..config import Settings
from .base import Aborted, Engine, EngineError, Segment, Transcript

__all__ = [
    "load_engine",
    "load_live",
    "funasr_usable",
    "onnx_usable",
    "Engine",
    "EngineError",
    "Aborted",
    "Segment",
    "Transcript",
]

log = logging.getLogger(__name__)

_MODELSCOPE_HOST = ("www.modelscope.cn", 443)


def _installed(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _hub_reachable(timeout: float = 2.0) -> bool:
    result = [False]

    def probe():
        try:
            socket.create_connection(_MODELSCOPE_HOST, timeout=timeout).close()
            result[0] = True
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout + 1)
    return result[0]


def funasr_usable(settings: Settings) -> tuple[bool, str]:
    """Whether the FunASR engine can be tried here, and if not, why (checked without importing it)."""
    if not _installed("funasr"):
        return False, "FunASR is not installed (the worker's `funasr` extra)"
    if not _installed("torch"):
        return False, "torch is not installed (the worker's `torch` extra)"
    from .funasr_engine import modelscope_cached

    names = [
        n
        for n in (settings.funasr_model, settings.funasr_vad_model, settings.funasr_punc_model)
        if n and n.strip().lower() not in ("none", "off")
    ]
    missing = [n for n in names if modelscope_cached(n) is None]
    if missing and not _hub_reachable():
        return False, f"models {', '.join(missing)} are not downloaded and ModelScope cannot be reached"
    return True, ""


def load_engine(settings: Settings) -> Engine:
    """Build the engine ``settings.engine`` asks for, loading its models once.

    ``auto`` tries FunASR (torch), then the ONNX engine (FunASR's ONNX exports on onnxruntime), then
    falls back to the offline profile (Whisper) with a loud warning; it logs which it took and why.
    Raises EngineError when the chosen engine (or, for ``auto``, the last resort) cannot load.
    """
    if settings.engine == "funasr":
        return _funasr(settings)
    if settings.engine == "onnx":
        return _onnx(settings)
    if settings.engine == "offline":
        return _offline(settings)
    ok, why = funasr_usable(settings)
    if ok:
        try:
            return _funasr(settings)
        except EngineError as exc:
            why = str(exc)
    ok_onnx, why_onnx = onnx_usable(settings)
    if ok_onnx:
        try:
            engine = _onnx(settings)
        except EngineError as exc:
            why_onnx = str(exc)
        else:
            log.info("ASR_ENGINE=auto took engine=onnx: the FunASR (torch) engine is unavailable (%s).", why)
            return engine
    engine = _offline(settings)
    log.warning(
        "!!! FALLING BACK TO THE OFFLINE PROFILE: the FunASR engine is unavailable (%s), and so is the ONNX "
        "engine (%s). Transcribing with engine=offline (%s). Set ASR_ENGINE=offline to silence this warning, "
        "or install the funasr+torch extras and its models to use FunASR, or export its models to ONNX "
        "(python -m asr_worker.engines.onnx_export) for the ONNX engine.",
        why,
        why_onnx,
        _names(engine.models),
    )
    return engine


def _onnx_dir(value: str, default_name: str, settings: Settings) -> tuple[Path | None, bool]:
    """A configured ONNX model directory: (path or None for none/off, whether it was set explicitly)."""
    v = (value or "").strip()
    if v.lower() in ("none", "off"):
        return None, True
    if v:
        return Path(v).expanduser(), True
    return Path(settings.model_cache).expanduser() / "onnx" / default_name, False


def onnx_usable(settings: Settings) -> tuple[bool, str]:
    """Whether the ONNX engine can be tried here, and if not, why (checked without loading models)."""
    if not (_installed("funasr_onnx") and _installed("onnxruntime")):
        return False, "funasr-onnx / onnxruntime are not installed (the worker's `offline` extra)"
    path, _ = _onnx_dir(settings.onnx_model, "paraformer-zh", settings)
    if path is None:
        return False, "ASR_ONNX_MODEL is none"
    if not (path / "config.yaml").is_file() or not any(path.glob("model*.onnx")):
        return False, f"no ONNX model export in {path} (ASR_ONNX_MODEL)"
    return True, ""


def _onnx(settings: Settings) -> Engine:
    from .models import fsmn_vad_dir
    from .onnx_engine import OnnxEngine

    asr, _ = _onnx_dir(settings.onnx_model, "paraformer-zh", settings)
    if asr is None:
        raise EngineError("ASR_ONNX_MODEL is none: the ONNX engine needs an ASR model directory.")
    vad_setting = (settings.onnx_vad_model or "").strip()
    vad = None if vad_setting.lower() in ("none", "off") else fsmn_vad_dir(vad_setting)
    punc, explicit = _onnx_dir(settings.onnx_punc_model, "ct-punc", settings)
    if punc is not None and not explicit and not punc.is_dir():
        log.warning("ONNX engine: no punctuation model (%s does not exist; set ASR_ONNX_PUNC_MODEL)", punc)
        punc = None
    streaming = None
    if "live" in settings.queues:
        streaming, explicit = _onnx_dir(settings.onnx_streaming_model, "paraformer-zh-streaming", settings)
        if streaming is not None and not explicit and not streaming.is_dir():
            log.warning(
                "!!! ONNX engine: no streaming model (%s does not exist; set ASR_ONNX_STREAMING_MODEL): "
                "live sessions get no partial captions",
                streaming,
            )
            streaming = None
    if settings.device not in ("auto", "cpu"):
        log.warning("ASR_DEVICE=%s: the ONNX engine runs on the CPU (onnxruntime)", settings.device)
    engine = OnnxEngine(
        model=asr,
        vad_model=vad,
        punc_model=punc,
        streaming_model=streaming,
        quantize=settings.onnx_quantize,
        cpu_threads=settings.cpu_threads,
    )
    log.info("Engine onnx on %s: %s", engine.device, _names(engine.models))
    return engine


def _names(models: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in models.items() if not k.endswith("_path"))


def _funasr(settings: Settings) -> Engine:
    from .funasr_engine import FunasrEngine

    engine = FunasrEngine(
        model=settings.funasr_model,
        vad_model=settings.funasr_vad_model,
        punc_model=settings.funasr_punc_model,
        device=settings.device,
        cpu_threads=settings.cpu_threads,
        streaming_model=_streaming_model(settings),
    )
    log.info("Engine funasr on %s: %s", engine.device, _names(engine.models))
    return engine


def _streaming_model(settings: Settings) -> str:
    """The streaming model to load for live partials, or '' (not serving live, or it cannot be had)."""
    name = settings.funasr_streaming_model
    if "live" not in settings.queues or (name or "").strip().lower() in ("", "none", "off"):
        return ""
    from .funasr_engine import modelscope_cached

    if modelscope_cached(name) is None and not _hub_reachable():
        log.warning(
            "!!! FunASR streaming model %s is not downloaded and ModelScope cannot be reached: "
            "live sessions get no partial captions",
            name,
        )
        return ""
    return name


def _offline(settings: Settings) -> Engine:
    from .offline import OfflineEngine

    device = settings.device
    if device == "auto":
        device = "cuda" if _cuda_for_ctranslate2() else "cpu"
    engine = OfflineEngine(
        model=settings.offline_model,
        vad_model=settings.offline_vad_model,
        cache_dir=settings.model_cache,
        device=device,
        cpu_threads=settings.cpu_threads,
        beam_size=settings.beam_size,
        short_context=settings.live_short_context,
    )
    log.info("Engine offline on %s: %s", engine.device, _names(engine.models))
    return engine


def _cuda_for_ctranslate2() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:
        return False


def load_live(settings: Settings, engine: Engine):
    """The live pieces for ``engine``: the streaming fsmn-vad (shipped ONNX model) and partial decoders."""
    from .models import fsmn_vad_dir
    from .streaming import LiveModels, StreamingVad

    vad = StreamingVad(
        Path(engine.models.get("vad_path") or fsmn_vad_dir(settings.offline_vad_model)),
        end_silence_ms=settings.live_end_silence_ms,
        max_sentence_ms=int(settings.live_max_sentence_s * 1000),
    )
    return LiveModels(engine, vad, partial_interval_ms=settings.live_partial_interval_ms)
