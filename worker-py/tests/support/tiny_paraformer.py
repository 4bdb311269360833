"""Build a tiny, randomly initialised paraformer directory that FunASR's AutoModel loads like a
downloaded ``paraformer-zh`` (config.yaml, model.pt, tokens.json, am.mvn, configuration.json).

Its output is gibberish; it exists to exercise the real loading and decoding code with no network.
"""

from __future__ import annotations

import json
from pathlib import Path

__all__ = [
    "build_tiny_paraformer",
    "build_tiny_ct_punc",
    "build_tiny_paraformer_streaming",
    "build_tiny_bicif_paraformer",
]

N_MELS, LFR_M, LFR_N = 80, 7, 6
D_MODEL = 32

CONFIG = f"""\
model: Paraformer
model_conf:
    ctc_weight: 0.0
    lsm_weight: 0.1
    length_normalized_loss: true
    predictor_weight: 1.0
    predictor_bias: 1
    sampling_ratio: 0.75

encoder: SANMEncoder
encoder_conf:
    output_size: {D_MODEL}
    attention_heads: 2
    linear_units: 64
    num_blocks: 2
    dropout_rate: 0.0
    positional_dropout_rate: 0.0
    attention_dropout_rate: 0.0
    input_layer: pe
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm

decoder: ParaformerSANMDecoder
decoder_conf:
    attention_heads: 2
    linear_units: 64
    num_blocks: 2
    dropout_rate: 0.0
    positional_dropout_rate: 0.0
    self_attention_dropout_rate: 0.0
    src_attention_dropout_rate: 0.0
    att_layer_num: 2
    kernel_size: 11
    sanm_shfit: 0

predictor: CifPredictorV2
predictor_conf:
    idim: {D_MODEL}
    threshold: 1.0
    l_order: 1
    r_order: 1
    tail_threshold: 0.45

frontend: WavFrontend
frontend_conf:
    fs: 16000
    window: hamming
    n_mels: {N_MELS}
    frame_length: 25
    frame_shift: 10
    lfr_m: {LFR_M}
    lfr_n: {LFR_N}

specaug: null

tokenizer: CharTokenizer
tokenizer_conf:
    unk_symbol: <unk>
    split_with_space: true
"""

CHARS = list("欢迎大家来体验达摩院推出的语音识别模型广州市房地产中介协会分析你好世界我们他是在有个了不人这")


def _am_mvn(dim: int) -> str:
    zeros = " ".join(["0"] * dim)
    ones = " ".join(["1"] * dim)
    return (
        "<Nnet>\n"
        f"<Splice> {dim} {dim}\n[ 0 ]\n"
        f"<AddShift> {dim} {dim}\n<LearnRateCoef> 0 [ {zeros} ]\n"
        f"<Rescale> {dim} {dim}\n<LearnRateCoef> 0 [ {ones} ]\n"
        "</Nnet>\n"
    )


def _build_asr_dir(target: Path, config: str, seed: int) -> Path:
    """Write an ASR model directory with ``config`` and random weights, as ModelScope lays one out."""
    import torch
    from funasr import AutoModel

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.yaml").write_text(config, encoding="utf-8")
    tokens = ["<blank>", "<s>", "</s>", *CHARS, "<unk>"]
    (target / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    (target / "am.mvn").write_text(_am_mvn(N_MELS * LFR_M), encoding="utf-8")
    (target / "configuration.json").write_text(
        json.dumps(
            {
                "framework": "pytorch",
                "task": "auto-speech-recognition",
                "model": {"type": "funasr"},
                "file_path_metas": {
                    "init_param": "model.pt",
                    "config": "config.yaml",
                    "tokenizer_conf": {"token_list": "tokens.json"},
                    "frontend_conf": {"cmvn_file": "am.mvn"},
                },
            },
            indent=2,
        ),
        encoding="utf-8",
    )
    # First load from an empty checkpoint (weights stay at their random init), then save them.
    torch.manual_seed(seed)
    torch.save({}, target / "model.pt")
    model = AutoModel(model=str(target), device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    torch.save(model.model.state_dict(), target / "model.pt")
    return target


def build_tiny_paraformer(target: Path, *, seed: int = 0) -> Path:
    """Write the model directory at ``target`` (created) and return it. Needs funasr and torch."""
    return _build_asr_dir(target, CONFIG, seed)


PUNC_CONFIG = f"""\
model: CTTransformer
model_conf:
    ignore_id: 0
    embed_unit: {D_MODEL}
    att_unit: {D_MODEL}
    dropout_rate: 0.0
    punc_list: ['<unk>', '_', '，', '。', '？', '、']
    punc_weight: [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    sentence_end_id: 3

encoder: SANMEncoder
encoder_conf:
    input_size: {D_MODEL}
    output_size: {D_MODEL}
    attention_heads: 2
    linear_units: 64
    num_blocks: 2  # FunASR's ONNX export of the SANM encoder needs a block after the first
    dropout_rate: 0.0
    positional_dropout_rate: 0.0
    attention_dropout_rate: 0.0
    input_layer: pe
    pos_enc_class: SinusoidalPositionEncoder
    normalize_before: true
    kernel_size: 11
    sanm_shfit: 0
    selfattention_layer_type: sanm
    padding_idx: 0

tokenizer: CharTokenizer
tokenizer_conf:
    unk_symbol: <unk>
"""


def build_tiny_ct_punc(target: Path, *, seed: int = 0) -> Path:
    """A tiny random CT-Transformer punctuation model directory, loadable like ``ct-punc``."""
    import torch
    from funasr import AutoModel

    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    (target / "config.yaml").write_text(PUNC_CONFIG, encoding="utf-8")
    tokens = ["<blank>", "<s>", "</s>", *CHARS, "<unk>"]
    (target / "tokens.json").write_text(json.dumps(tokens, ensure_ascii=False), encoding="utf-8")
    torch.manual_seed(seed)
    torch.save({}, target / "model.pt")
    model = AutoModel(model=str(target), device="cpu", disable_update=True, disable_pbar=True, disable_log=True)
    torch.save(model.model.state_dict(), target / "model.pt")
    return target


STREAMING_CONFIG = (
    CONFIG.replace("model: Paraformer\n", "model: ParaformerStreaming\n")
    .replace("encoder: SANMEncoder\n", "encoder: SANMEncoderChunkOpt\n")
    .replace(
        "    input_layer: pe\n",
        "    input_layer: pe_online\n",
        1,
    )
    .replace(
        "    selfattention_layer_type: sanm\n\ndecoder:",
        "    selfattention_layer_type: sanm\n"
        "    chunk_size: [12, 15]\n"
        "    stride: [8, 10]\n"
        "    pad_left: [0, 0]\n"
        "    encoder_att_look_back_factor: [4, 4]\n"
        "    decoder_att_look_back_factor: [1, 1]\n\ndecoder:",
    )
    .replace("    sanm_shfit: 0\n\npredictor:", "    sanm_shfit: 5\n\npredictor:")
    .replace("frontend: WavFrontend\n", "frontend: WavFrontendOnline\n")
)


def build_tiny_paraformer_streaming(target: Path, *, seed: int = 0) -> Path:
    """A tiny random ``paraformer-zh-streaming`` directory (ParaformerStreaming, SANMEncoderChunkOpt)."""
    return _build_asr_dir(target, STREAMING_CONFIG, seed)


BICIF_CONFIG = (
    CONFIG.replace("model: Paraformer\n", "model: BiCifParaformer\n")
    .replace("predictor: CifPredictorV2\n", "predictor: CifPredictorV3\n")
    .replace(
        "    tail_threshold: 0.45\n",
        "    tail_threshold: 0.45\n"
        "    smooth_factor2: 0.25\n"
        "    noise_threshold2: 0.01\n"
        "    upsample_times: 3\n"
        "    upsample_type: cnn_blstm\n"
        "    use_cif1_cnn: false\n",
    )
)


def build_tiny_bicif_paraformer(target: Path, *, seed: int = 0) -> Path:
    """A tiny random BiCifParaformer (the paraformer that also predicts token timestamps, as paraformer-zh)."""
    return _build_asr_dir(target, BICIF_CONFIG, seed)
