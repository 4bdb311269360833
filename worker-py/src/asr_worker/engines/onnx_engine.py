"""The ONNX engine: FunASR's ONNX exports on onnxruntime (CPU), no torch.

Files: the real fsmn-vad finds speech, a paraformer / seaco-paraformer / SenseVoiceSmall export
decodes each stretch, ct-punc punctuates the whole text, and sentences are cut at punctuation with
the paraformer's token timestamps (the same sentence shape as the FunASR engine). Live partials: a
paraformer-online export, one object for every session (each with its own cache and frontend).
int8 (``model_quant.onnx``) is used where a directory has it, unless told otherwise.
"""

from __future__ import annotations

import copy
import functools
import logging
import os
import re
import threading
import time
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..text import has_cjk, join_texts, to_simplified
from .base import AbortCheck, Aborted, EngineError, ProgressCallback, Segment, Transcript
from .streaming import FunasrStreamingPartials
from .vad import FsmnVad, SpeechSpan

__all__ = ["OnnxEngine", "OnnxStreamingPartials", "model_kind", "quantized_files", "build_sentences"]

log = logging.getLogger(__name__)

_MAX_SEGMENT_S = 30.0  # VAD segments longer than this are cut (as the FunASR engine's max_single_segment_time)
_MIN_SAMPLES = SAMPLE_RATE // 40  # 25 ms: shorter stretches have no fbank frame
_TAG = re.compile(r"<\|([^|]*)\|>")
_SENSEVOICE_LANGS = {"zh", "en", "yue", "ja", "ko"}
_ASCII_PUNC = {"，": ",", "。": ".", "？": "?", "、": ",", "！": "!"}

# The graphs each kind of model directory holds (the int8 variant adds ``_quant``).
_GRAPHS = {
    "paraformer": ("model",),
    "seaco": ("model", "model_eb"),
    "sensevoice": ("model",),
    "streaming": ("model", "decoder"),
    "punc": ("model",),
}


def model_kind(model_dir: Path) -> str:
    """``paraformer``, ``seaco``, ``sensevoice`` or ``streaming``, from the directory's config.yaml."""
    config = Path(model_dir) / "config.yaml"
    if not config.is_file():
        raise EngineError(f"The ONNX model directory {model_dir} has no config.yaml.")
    from funasr_onnx.utils.utils import read_yaml

    name = str(read_yaml(str(config)).get("model", ""))
    if name in ("SeacoParaformer", "ContextualParaformer"):
        return "seaco"
    if name.startswith("SenseVoice"):
        return "sensevoice"
    if name in ("ParaformerStreaming", "ParaformerOnline"):
        return "streaming"
    if name in ("Paraformer", "BiCifParaformer"):
        return "paraformer"
    raise EngineError(f"{model_dir}: the ONNX engine does not run a {name or 'model without a name'} model.")


def quantized_files(model_dir: Path, kind: str, quantize: str) -> bool:
    """Whether to load the int8 graphs of ``model_dir``: ``auto`` when all are there, ``true``, ``false``."""
    model_dir = Path(model_dir)
    graphs = _GRAPHS[kind]
    quant = all((model_dir / f"{g}_quant.onnx").is_file() for g in graphs)
    plain = all((model_dir / f"{g}.onnx").is_file() for g in graphs)
    mode = quantize.lower()
    if mode == "true":
        if not quant:
            raise EngineError(
                f"ASR_ONNX_QUANTIZE=true but {model_dir} lacks {', '.join(g + '_quant.onnx' for g in graphs)}."
            )
        return True
    if mode == "false" or not quant:
        if not plain:
            raise EngineError(f"{model_dir} has no ONNX export ({', '.join(g + '.onnx' for g in graphs)}).")
        return False
    return True


def _ort_available() -> None:
    try:
        import funasr_onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise EngineError("funasr-onnx / onnxruntime are not installed: install the worker's `offline` extra.") from exc


class OnnxEngine:
    """fsmn-vad + paraformer (or seaco / SenseVoice) + ct-punc on onnxruntime; calls serialised per model."""

    name = "onnx"

    def __init__(
        self,
        *,
        model: str | Path,
        vad_model: str | Path | None = None,
        punc_model: str | Path | None = None,
        streaming_model: str | Path | None = None,
        quantize: str = "auto",
        cpu_threads: int = 0,
    ):
        _ort_available()
        from funasr_onnx import CT_Transformer, Paraformer, SeacoParaformer, SenseVoiceSmall

        threads = cpu_threads or os.cpu_count() or 1
        self.device = "cpu"
        model_dir = Path(model).expanduser()
        if not model_dir.is_dir():
            raise EngineError(f"The ONNX model directory {model_dir} does not exist (ASR_ONNX_MODEL).")
        self.kind = model_kind(model_dir)
        if self.kind == "streaming":
            raise EngineError(f"{model_dir} is a streaming model: set it as ASR_ONNX_STREAMING_MODEL, not the model.")
        self.quantized = quantized_files(model_dir, self.kind, quantize)
        cls = {"paraformer": Paraformer, "seaco": SeacoParaformer, "sensevoice": SenseVoiceSmall}[self.kind]
        try:
            self.asr = cls(str(model_dir), quantize=self.quantized, intra_op_num_threads=threads)
        except Exception as exc:
            raise EngineError(f"The ONNX model {model_dir} could not be loaded: {exc}") from exc
        # funasr-onnx's frontend dithers unless the config says otherwise (kaldi's training default):
        # decode deterministically, the same file giving the same transcript.
        self.asr.frontend.opts.frame_opts.dither = 0.0
        self.timestamps = self._has_timestamps()
        self.model_name = model_dir.name + ("-int8" if self.quantized else "")
        self.models = {
            "asr": model_dir.name,
            "precision": "int8" if self.quantized else "fp32",
            "asr_path": str(model_dir),
        }
        self.lock = threading.Lock()

        self.vad: FsmnVad | None = None
        if vad_model:
            self.vad = FsmnVad(Path(vad_model).expanduser(), threads=min(threads, 2), max_segment_s=_MAX_SEGMENT_S)
            self.models["vad"] = Path(vad_model).name
            self.models["vad_path"] = str(Path(vad_model).expanduser())
        else:
            self.models["vad"] = ""

        self.punc = None
        self.punc_lock = threading.Lock()
        if punc_model and self.kind != "sensevoice":  # SenseVoice punctuates by itself (itn)
            punc_dir = Path(punc_model).expanduser()
            if not punc_dir.is_dir():
                raise EngineError(f"The ONNX punctuation model directory {punc_dir} does not exist.")
            try:
                self.punc = CT_Transformer(
                    str(punc_dir),
                    quantize=quantized_files(punc_dir, "punc", quantize),
                    intra_op_num_threads=threads,
                )
            except EngineError:
                raise
            except Exception as exc:
                raise EngineError(f"The ONNX punctuation model {punc_dir} could not be loaded: {exc}") from exc
            self.models["punc"] = punc_dir.name
            self.models["punc_path"] = str(punc_dir)
        else:
            self.models["punc"] = ""

        # Live partials: a paraformer-online export shared by every session (calls serialised).
        self.streaming = None
        self.streaming_lock = threading.Lock()
        if streaming_model:
            sdir = Path(streaming_model).expanduser()
            try:
                if model_kind(sdir) != "streaming":
                    raise EngineError(f"{sdir} is not a streaming paraformer export.")
                from funasr_onnx.paraformer_online_bin import Paraformer as ParaformerOnline
                from funasr_onnx.utils.frontend import WavFrontendOnline
                from funasr_onnx.utils.utils import read_yaml

                self.streaming = ParaformerOnline(
                    str(sdir),
                    quantize=quantized_files(sdir, "streaming", quantize),
                    intra_op_num_threads=min(threads, 2),
                    chunk_size=[5, 10, 5],
                )
                # A fresh frontend per session (its state lives on the object); no dither, as above.
                self._streaming_frontend = functools.partial(
                    WavFrontendOnline,
                    cmvn_file=str(sdir / "am.mvn"),
                    **{**read_yaml(str(sdir / "config.yaml"))["frontend_conf"], "dither": 0.0},
                )
                self.models["streaming"] = sdir.name
                self.models["streaming_path"] = str(sdir)
            except Exception as exc:  # files still transcribe; live sessions get finals without partials
                self.streaming = None
                log.warning(
                    "!!! ONNX streaming model %s could not be loaded (%s): live sessions get no partial captions",
                    sdir,
                    exc,
                )

    def _has_timestamps(self) -> bool:
        """Whether the ASR graph outputs CIF peaks (token timestamps): BiCif and seaco paraformers do."""
        if self.kind == "sensevoice":
            return False
        session = getattr(self.asr, "ort_infer_bb", None) or getattr(self.asr, "ort_infer", None)
        try:
            return len(session.session.get_outputs()) >= 4
        except AttributeError:
            return False

    def new_streaming_partials(self) -> OnnxStreamingPartials:
        if self.streaming is None:
            raise EngineError("This ONNX engine has no streaming model.")
        return OnnxStreamingPartials(self.streaming, self._streaming_frontend, self.streaming_lock)

    # -- files --------------------------------------------------------------------------------

    def transcribe(
        self,
        samples: np.ndarray,
        *,
        language: str | None = None,
        hotwords: str = "",
        progress: ProgressCallback | None = None,
        should_abort: AbortCheck | None = None,
    ) -> Transcript:
        t0 = time.perf_counter()
        samples = np.ascontiguousarray(samples, dtype=np.float32)
        duration = len(samples) / SAMPLE_RATE
        if should_abort is not None and should_abort():
            raise Aborted()
        spans = self._speech(samples)
        speech_end = spans[-1].end if spans else 0.0
        pieces: list[Piece] = []
        detected: str | None = None
        for span in spans:
            if should_abort is not None and should_abort():
                raise Aborted()
            audio = samples[int(span.start * SAMPLE_RATE) : int(span.end * SAMPLE_RATE)]
            if len(audio) >= _MIN_SAMPLES:
                with self.lock:  # per stretch: live finals get their turn in between
                    piece, lang = self._decode(audio, span, language, hotwords)
                if piece.words:
                    pieces.append(piece)
                    detected = detected or lang
            if progress is not None and speech_end > 0:
                progress(min(1.0, span.end / speech_end))
        punc = self._punctuate([w for p in pieces for w in p.words])
        segments = build_sentences(pieces, punc, duration, timed=self.timestamps)
        text = join_texts([s.text for s in segments])
        if progress is not None:
            progress(1.0)
        lang = language or detected or ("zh" if has_cjk(text) else ("en" if text else None))
        return Transcript(
            text=text,
            segments=segments,
            language=lang,
            duration_s=duration,
            engine=self.name,
            model=self.model_name,
            engine_s=time.perf_counter() - t0,
        )

    def _speech(self, samples: np.ndarray) -> list[SpeechSpan]:
        if self.vad is not None:
            return self.vad(samples)
        duration = len(samples) / SAMPLE_RATE
        starts = np.arange(0.0, duration, _MAX_SEGMENT_S)
        return [SpeechSpan(float(s), float(min(duration, s + _MAX_SEGMENT_S))) for s in starts]

    def _decode(self, audio: np.ndarray, span: SpeechSpan, language: str | None, hotwords: str):
        """One stretch of speech → its words (with times when the model gives them) and a language tag."""
        from funasr_onnx.utils.utils import code_mix_split_words

        if self.kind == "sensevoice":
            lang = language if language in _SENSEVOICE_LANGS else "auto"
            out = self.asr(audio, language=lang, textnorm="withitn")
            raw = str(out[0]) if out else ""
            tags = _TAG.findall(raw)
            found = next((t for t in tags if t in _SENSEVOICE_LANGS), None)
            text = to_simplified(_TAG.sub("", raw).strip())
            return Piece(span, [text] if text else [], None), found
        text, stamps = self._paraformer(audio, " ".join(hotwords.split()))
        words = [to_simplified(w) for w in code_mix_split_words(text)]
        if stamps is not None and len(stamps) != len(words):
            log.debug("ONNX engine: %d timestamps for %d words; spread over the stretch", len(stamps), len(words))
            stamps = None
        if stamps is not None:
            base = int(round(span.start * 1000))
            stamps = [(base + int(a), base + int(b)) for a, b in stamps]
        return Piece(span, words, stamps), None

    def _paraformer(self, audio: np.ndarray, hotwords: str) -> tuple[str, list | None]:
        """funasr-onnx's Paraformer/SeacoParaformer ``__call__`` for one waveform, except that token
        timestamps that do not line up with the tokens (its assertion) drop the timestamps, not the text."""
        from funasr_onnx.utils.postprocess_utils import sentence_postprocess, sentence_postprocess_sentencepiece
        from funasr_onnx.utils.timestamp_utils import time_stamp_lfr6_onnx
        from funasr_onnx.utils.utils import ONNXRuntimeError

        m = self.asr
        feats, feats_len = m.extract_feat([audio])
        try:
            if self.kind == "seaco":
                hw, hw_len = m.proc_hotword(hotwords)
                [bias_embed] = m.eb_infer(hw, hw_len)
                bias_embed = bias_embed.transpose(1, 0, 2)[np.arange(len(hw)).tolist(), hw_len.tolist()]
                bias_embed = np.repeat(np.expand_dims(bias_embed, axis=0), feats.shape[0], axis=0)
                outputs = m.bb_infer(feats, feats_len, bias_embed)
            else:
                outputs = m.infer(feats, feats_len)
        except ONNXRuntimeError:  # as funasr-onnx: silence or noise
            return "", None
        tokens = m.decode(outputs[0], outputs[1])[0]
        if not tokens:
            return "", None
        if len(outputs) == 4:
            try:
                _, raw_stamps = time_stamp_lfr6_onnx(outputs[3][0], copy.copy(tokens))
                text, stamps, _ = sentence_postprocess(tokens, raw_stamps)
                return text, stamps
            except (AssertionError, IndexError, ValueError) as exc:
                log.debug("ONNX engine: token timestamps unusable (%r)", exc)
        if getattr(m, "language", None) == "en-bpe":
            text, _ = sentence_postprocess_sentencepiece(tokens)
        else:
            text, _ = sentence_postprocess(tokens)
        return text, None

    def _punctuate(self, words: list[str]) -> list[str] | None:
        """One punctuation mark ('' for none) after each word, from ct-punc over the whole text."""
        if self.punc is None or not words:
            return None
        with self.punc_lock:
            _, ids = self.punc(" ".join(words))
        if len(ids) != len(words):
            log.warning("ONNX engine: punctuation for %d words came for %d; left unpunctuated", len(words), len(ids))
            return None
        marks = []
        for i, w in zip(ids, words, strict=True):
            mark = self.punc.punc_list[int(i)] if 0 <= int(i) < len(self.punc.punc_list) else "_"
            mark = "" if mark in ("_", "<unk>") else mark
            if mark and w.isascii():
                mark = _ASCII_PUNC.get(mark, mark)
            marks.append(mark)
        return marks


class Piece:
    """The words of one VAD stretch, with per-word (start_ms, end_ms) when the model gives timestamps."""

    __slots__ = ("span", "words", "stamps")

    def __init__(self, span: SpeechSpan, words: list[str], stamps: list[tuple[int, int]] | None):
        self.span = span
        self.words = words
        self.stamps = stamps


def _join_words(words: list[str]) -> str:
    out = ""
    for w in words:
        if out and w[:1].isascii() and w[:1].isalnum() and (out[-1].isascii() and not out[-1].isspace()):
            out += " "
        out += w
    return out.strip()


def _spread(span: SpeechSpan, n: int) -> list[tuple[int, int]]:
    """Even word times over a stretch: the stand-in when a stretch's token timestamps are unusable."""
    edges = np.linspace(span.start * 1000, span.end * 1000, n + 1)
    return [(int(edges[i]), int(edges[i + 1])) for i in range(n)]


def build_sentences(
    pieces: list[Piece], punc: list[str] | None, duration: float, *, timed: bool = True
) -> list[Segment]:
    """Sentences like the FunASR engine's ``sentence_info``.

    ``timed`` (a model that predicts token timestamps) with punctuation: cut after every punctuation
    mark, times from the tokens. Otherwise: one sentence per VAD stretch, with the stretch's times.
    """
    marks = punc or []
    out: list[Segment] = []

    def add(words: list[str], start_s: float, end_s: float) -> None:
        text = _join_words(words)
        if not text:
            return
        start = min(max(0.0, start_s), duration)
        end = min(duration, max(start, end_s))
        out.append(Segment(round(start, 3), round(end, 3), text))

    k = 0
    if timed and punc is not None:
        cur: list[str] = []
        first: int | None = None
        last = 0
        for p in pieces:
            stamps = p.stamps if p.stamps is not None else _spread(p.span, len(p.words))
            for w, (a, b) in zip(p.words, stamps, strict=True):
                mark = marks[k]
                k += 1
                first = a if first is None else first
                last = b
                cur.append(w + mark)
                if mark:
                    add(cur, first / 1000, last / 1000)
                    cur, first = [], None
        if cur:
            add(cur, first / 1000, last / 1000)
        return out
    for p in pieces:
        words = []
        for w in p.words:
            words.append(w + (marks[k] if k < len(marks) else ""))
            k += 1
        if p.stamps:
            add(words, p.stamps[0][0] / 1000, p.stamps[-1][1] / 1000)
        else:
            add(words, p.span.start, p.span.end)
    return out


class OnnxStreamingPartials(FunasrStreamingPartials):
    """Partials of the ONNX engine: paraformer-online fed every chunk, with this session's cache.

    funasr-onnx keeps the online frontend's state on the model object, so each session gets a
    shallow copy of the shared model (same onnxruntime sessions) with a frontend of its own.
    """

    def __init__(self, model, new_frontend, lock: threading.Lock):
        self._shared = model
        self._new_frontend = new_frontend
        super().__init__(model, lock)
        self.reset()

    def reset(self) -> None:
        super().reset()
        self.model = copy.copy(self._shared)
        self.model.frontend = self._new_frontend()

    def _step(self, pcm: np.ndarray, is_final: bool) -> list[str]:
        res = self.model(pcm, param_dict={"cache": self.cache, "is_final": is_final})
        out = []
        for r in res or []:
            preds = r.get("preds", "")
            out.append(str(preds[0] if isinstance(preds, (tuple, list)) else preds))
        return out
