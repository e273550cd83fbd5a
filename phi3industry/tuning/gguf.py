"""Export a merged model as GGUF with the ``gguf`` package (llama.cpp / Ollama on CPU).

Tensor names come from gguf-py's own HF -> GGUF name map (the one llama.cpp's converter and
transformers' GGUF loader use). Llama-family q/k weights are permuted the way llama.cpp's
converter does (transformers un-permutes them on load); Phi-3 keeps its fused ``attn_qkv``
and ``ffn_up`` (gate and up). The tokenizer metadata is copied from a reference GGUF: the
bundled Phi-3 vocabulary for Phi-3, or the GGUF a model was converted from (SmolLM2).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError, DependencyMissingError
from phi3industry.models import engines_dir, model_family, phi3_vocab_gguf, resolve_model
from phi3industry.tuning.adapters import adapter_base_model, adapter_tokenizer, load_adapted_model

#: Written by gguf-py here.
GGUF_PY_QUANTIZATIONS = ("f32", "f16", "q8_0")
#: k-quants, written by llama.cpp's own quantizer (llama-cpp-python) from an f16 export.
LLAMA_CPP_QUANTIZATIONS = {
    "q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M",
    "q5_k_m": "LLAMA_FTYPE_MOSTLY_Q5_K_M",
}
QUANTIZATIONS = (*GGUF_PY_QUANTIZATIONS, *LLAMA_CPP_QUANTIZATIONS)
LLAMA_CPP_PYTHON_ENV = "PHI3INDUSTRY_LLAMACPP_PYTHON"
_QUANTIZE = """
import ctypes, sys
import llama_cpp
params = llama_cpp.llama_model_quantize_default_params()
params.ftype = getattr(llama_cpp, sys.argv[3])
src, out = sys.argv[1].encode(), sys.argv[2].encode()
sys.exit(llama_cpp.llama_model_quantize(src, out, ctypes.byref(params)))
"""
_ARCHES = ("phi3", "llama")


def _tokenizer_reference(model_dir: Path, family: str) -> Path:
    if family == "phi3":
        return phi3_vocab_gguf()
    marker = model_dir / "phi3industry-complete.json"
    if marker.is_file():
        source = json.loads(marker.read_text()).get("source")
        if source and str(source).endswith(".gguf") and Path(source).is_file():
            return Path(source)
    raise ConfigError(
        f"GGUF export of a {family} model needs the tokenizer metadata of a reference GGUF "
        f"file, and none is known for {model_dir}. Export works for Phi-3 models and for "
        "models loaded from a .gguf file (e.g. smollm2-135m-instruct)."
    )


def _permute(weights: Any, n_head: int, n_head_kv: int | None) -> Any:
    """llama.cpp's q/k permutation (convert_hf_to_gguf.py, LlamaModel.permute)."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (
        weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:])
        .swapaxes(1, 2)
        .reshape(weights.shape)
    )


def write_gguf(
    model: Any, tokenizer: Any, out_file: Path, *, quantization: str, tokenizer_gguf: Path
) -> Path:
    """Write a plain (merged) transformers model as GGUF.

    Args:
        model: A Phi-3 or Llama-family ``PreTrainedModel`` (no adapter).
        tokenizer: Its tokenizer (pad token and chat template are taken from it).
        out_file: The file to write.
        quantization: ``"f32"``, ``"f16"`` or ``"q8_0"``.
        tokenizer_gguf: GGUF file whose ``tokenizer.*`` metadata is copied.

    Returns:
        ``out_file``.
    """
    import gguf
    import numpy as np
    from gguf import GGMLQuantizationType as Q

    cfg = model.config
    family = cfg.model_type
    arch_key = next(k for k, v in gguf.MODEL_ARCH_NAMES.items() if v == family)
    name_map = gguf.get_tensor_name_map(arch_key, cfg.num_hidden_layers)
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads

    out_file.parent.mkdir(parents=True, exist_ok=True)
    writer = gguf.GGUFWriter(str(out_file), family)
    writer.add_name(str(getattr(cfg, "_name_or_path", "") or family).rsplit("/", 1)[-1] or family)
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    rope_theta = getattr(cfg, "rope_theta", None)
    if rope_theta is None:
        rope_theta = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta", 10000.0)
    writer.add_rope_freq_base(float(rope_theta))
    writer.add_rope_dimension_count(int(head_dim * getattr(cfg, "partial_rotary_factor", 1.0)))
    writer.add_vocab_size(cfg.vocab_size)
    writer.add_file_type(
        {"f32": gguf.LlamaFileType.ALL_F32, "f16": gguf.LlamaFileType.MOSTLY_F16}.get(
            quantization, gguf.LlamaFileType.MOSTLY_Q8_0
        )
    )
    if family == "phi3":
        writer.add_uint32(
            "phi3.rope.scaling.original_context_length",
            int(
                getattr(cfg, "original_max_position_embeddings", None)
                or cfg.max_position_embeddings
            ),
        )

    reader = gguf.GGUFReader(str(tokenizer_gguf))
    for key, fld in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        if key in ("tokenizer.ggml.padding_token_id", "tokenizer.chat_template"):
            continue
        vtype = fld.types[0]
        sub = fld.types[1] if len(fld.types) > 1 else None
        writer.add_key_value(key, fld.contents(), vtype, sub_type=sub)
    if tokenizer.pad_token_id is not None:
        writer.add_pad_token_id(int(tokenizer.pad_token_id))
    if getattr(tokenizer, "chat_template", None):
        writer.add_chat_template(str(tokenizer.chat_template))

    state = model.state_dict()
    tied = bool(getattr(cfg, "tie_word_embeddings", False))
    for hf_name, tensor in state.items():
        if tied and hf_name == "lm_head.weight":
            continue  # llama.cpp reuses token_embd when 'output' is absent
        base, _, suffix = hf_name.rpartition(".")
        gguf_name = name_map.get_name(base)
        if gguf_name is None:
            raise ConfigError(f"GGUF export: no GGUF name for tensor {hf_name!r} ({family}).")
        data = tensor.detach().float().cpu().numpy()
        if family == "llama" and base.endswith("self_attn.q_proj"):
            data = _permute(data, cfg.num_attention_heads, cfg.num_attention_heads)
        elif family == "llama" and base.endswith("self_attn.k_proj"):
            data = _permute(data, cfg.num_attention_heads, cfg.num_key_value_heads)
        name = f"{gguf_name}.{suffix}"
        if data.ndim == 1 or quantization == "f32":
            writer.add_tensor(name, data.astype(np.float32))
        elif quantization == "f16":
            writer.add_tensor(name, data.astype(np.float16))
        elif data.shape[-1] % 32 == 0:
            packed = gguf.quants.quantize(data.astype(np.float32), Q.Q8_0)
            writer.add_tensor(name, packed, raw_shape=packed.shape, raw_dtype=Q.Q8_0)
        else:
            writer.add_tensor(name, data.astype(np.float16))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file


def llama_cpp_python(configured: str | None = None) -> str:
    """The Python with llama-cpp-python.

    The configured one, else ``$PHI3INDUSTRY_LLAMACPP_PYTHON``, else the engines' venv
    (``~/.cache/phi3industry-engines/llamacpp``) if it exists, else this one.
    """
    if configured:
        return configured
    if os.environ.get(LLAMA_CPP_PYTHON_ENV):
        return os.environ[LLAMA_CPP_PYTHON_ENV]
    cached = engines_dir() / "llamacpp" / "bin" / "python"
    return str(cached) if cached.exists() else sys.executable


def quantize_gguf(
    src: str | Path, out_file: str | Path, quantization: str, *, python: str | None = None
) -> Path:
    """Quantize a GGUF file with llama.cpp's own quantizer (k-quants such as ``q4_k_m``).

    llama-cpp-python compiles llama.cpp and usually lives in its own venv: the quantizer
    runs in ``python`` (see :func:`llama_cpp_python`). Tensors whose rows a k-quant cannot
    hold (not a multiple of 256) get llama.cpp's fallback type.

    Raises:
        ConfigError: For a quantization llama.cpp is not asked for here.
        DependencyMissingError: If that Python has no llama-cpp-python, or quantizing fails.
    """
    if quantization not in LLAMA_CPP_QUANTIZATIONS:
        raise ConfigError(
            f"llama.cpp quantization must be one of {', '.join(LLAMA_CPP_QUANTIZATIONS)}, got "
            f"{quantization!r}."
        )
    py = llama_cpp_python(python)
    cmd = [py, "-c", _QUANTIZE, str(src), str(out_file), LLAMA_CPP_QUANTIZATIONS[quantization]]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        missing = "No module named 'llama_cpp'" in done.stderr
        hint = (
            f"{py} has no llama-cpp-python: python3 -m venv ~/.cache/phi3industry-engines/"
            "llamacpp && ~/.cache/phi3industry-engines/llamacpp/bin/pip install "
            f"llama-cpp-python (or set {LLAMA_CPP_PYTHON_ENV})"
            if missing
            else f"llama.cpp's quantizer failed (exit {done.returncode}): {done.stderr[-800:]}"
        )
        raise DependencyMissingError(f"Cannot write a {quantization} GGUF: {hint}.")
    return Path(out_file)


def export_gguf(
    adapter_dir: str | Path, out_file: str | Path, *, quantization: str = "f16"
) -> Path:
    """Merge an adapter into its base (in fp32) and write the result as GGUF.

    Args:
        adapter_dir: Output directory of a tuning run.
        out_file: The ``.gguf`` file to write.
        quantization: ``"f32"``, ``"f16"`` or ``"q8_0"`` (written here), or ``"q4_k_m"`` /
            ``"q5_k_m"`` (an f16 export quantized by llama.cpp: see :func:`quantize_gguf`).

    Returns:
        ``out_file``.

    Raises:
        ConfigError: For an unknown quantization, an unsupported architecture, or a model
            whose tokenizer metadata is not available.
    """
    import torch

    if quantization not in QUANTIZATIONS:
        raise ConfigError(
            f"quantization must be one of {', '.join(QUANTIZATIONS)}, got {quantization!r}."
        )
    adapter_dir = Path(adapter_dir)
    model = load_adapted_model(adapter_dir, merge=True, dtype=torch.float32)
    family = model_family(model)
    if family not in _ARCHES:
        raise ConfigError(
            f"GGUF export supports {', '.join(_ARCHES)} models, not {family!r}. Merge with "
            "Tuner.merge() and convert with llama.cpp's convert_hf_to_gguf.py."
        )
    base_name = adapter_base_model(adapter_dir)
    tokenizer = adapter_tokenizer(adapter_dir, base_name)
    reference = _tokenizer_reference(Path(resolve_model(base_name)), family)
    out_file = Path(out_file)
    if quantization in LLAMA_CPP_QUANTIZATIONS:
        f16 = out_file.with_name(f"{out_file.stem}.f16-tmp.gguf")
        write_gguf(model, tokenizer, f16, quantization="f16", tokenizer_gguf=reference)
        try:
            return quantize_gguf(f16, out_file, quantization)
        finally:
            f16.unlink(missing_ok=True)
    return write_gguf(
        model, tokenizer, out_file, quantization=quantization, tokenizer_gguf=reference
    )


__all__ = [
    "LLAMA_CPP_QUANTIZATIONS",
    "QUANTIZATIONS",
    "export_gguf",
    "llama_cpp_python",
    "quantize_gguf",
    "write_gguf",
]
