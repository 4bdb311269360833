"""Export FunASR models to the ONNX directories the ``onnx`` engine loads (run where torch is installed).

A laptop's worker runs FunASR's ONNX exports through funasr-onnx + onnxruntime, with no torch. The
directories come from a machine with the ``funasr`` and ``torch`` extras (the GPU master), by FunASR's
own export (``AutoModel.export``), int8-quantised too by default::

    python -m asr_worker.engines.onnx_export paraformer-zh ~/.cache/lanasr/models/onnx/paraformer-zh
    python -m asr_worker.engines.onnx_export ct-punc ~/.cache/lanasr/models/onnx/ct-punc
    python -m asr_worker.engines.onnx_export paraformer-zh-streaming ~/.cache/lanasr/models/onnx/paraformer-zh-streaming

then copy the directories to the laptop (``ASR_ONNX_MODEL`` and friends name them).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import shutil
import sys
from pathlib import Path

from .base import EngineError

__all__ = ["export_onnx", "AUX_FILES"]

# Files besides the .onnx graphs that funasr-onnx reads from a model directory.
AUX_FILES = ("config.yaml", "am.mvn", "tokens.json", "configuration.json", "seg_dict", "jieba_usr_dict")


@contextlib.contextmanager
def _torchscript_exporter():
    """FunASR's export code is written for torch's TorchScript ONNX exporter; torch ≥ 2.9 defaults to dynamo."""
    import torch

    original = torch.onnx.export
    torch.onnx.export = functools.partial(original, dynamo=False)
    try:
        yield
    finally:
        torch.onnx.export = original


def export_onnx(model: str, target: str | Path, *, quantize: bool = True) -> Path:
    """Export ``model`` (a ModelScope id/alias or a local FunASR directory) into ``target``; return it.

    ``target`` gets ``model.onnx`` (and ``model_quant.onnx`` when ``quantize``; more graphs for
    streaming and seaco models) plus the configuration, tokens and CMVN files funasr-onnx reads.
    """
    try:
        from funasr import AutoModel
    except ImportError as exc:
        raise EngineError("Exporting to ONNX needs the worker's `funasr` and `torch` extras.") from exc
    try:
        import onnx  # noqa: F401  (torch's exporter and the int8 quantiser need it)
    except ImportError as exc:
        raise EngineError("Exporting to ONNX needs the `onnx` package (the worker's `funasr` extra).") from exc
    target = Path(target).expanduser()
    target.mkdir(parents=True, exist_ok=True)
    try:
        auto = AutoModel(model=model, device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    except Exception as exc:
        raise EngineError(f"FunASR could not load {model} for export: {exc}") from exc
    source = Path(auto.kwargs.get("model_path") or model).expanduser()
    try:
        with _torchscript_exporter():
            auto.export(type="onnx", quantize=quantize, output_dir=str(target))
    except Exception as exc:
        raise EngineError(f"ONNX export of {model} failed: {exc}") from exc
    if source.resolve() != target.resolve():
        for f in [*(source / n for n in AUX_FILES), *source.glob("*.bpe.model")]:
            if f.is_file():
                shutil.copyfile(f, target / f.name)
    if not (target / "model.onnx").is_file():
        raise EngineError(f"ONNX export of {model} wrote no model.onnx into {target}.")
    return target


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m asr_worker.engines.onnx_export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="ModelScope id/alias (paraformer-zh, ct-punc, …) or a FunASR model directory")
    p.add_argument("target", help="directory to write the ONNX model into")
    p.add_argument("--no-quantize", action="store_true", help="skip the int8 model_quant.onnx")
    args = p.parse_args(argv)
    try:
        out = export_onnx(args.model, args.target, quantize=not args.no_quantize)
    except EngineError as exc:
        print(f"onnx_export: {exc}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
