"""The documentation builds strictly, and every example YAML config loads with its class."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _config_classes(path: Path) -> tuple[type, ...]:
    """The config classes a YAML file in examples/ holds, from its name."""
    from phi3industry.evaluation.config import EvalConfig
    from phi3industry.pipeline.config import PipelineConfig
    from phi3industry.retrieval.config import RetrieverConfig
    from phi3industry.serving.config import ServerConfig
    from phi3industry.tuning.config import TunerConfig

    name = path.stem
    if name.startswith("ingest"):
        return (RetrieverConfig,)
    if name.startswith("tune"):
        return (TunerConfig,)
    if name.startswith("serve"):
        return (PipelineConfig, ServerConfig)  # `serve` composes both from one file
    if name.startswith("pipeline"):
        return (PipelineConfig,)
    if name.startswith("eval"):
        return (EvalConfig,)
    raise AssertionError(
        f"{path.relative_to(ROOT)}: name it ingest*/tune*/serve*/pipeline*/eval*.yaml "
        "so that tests/test_docs.py knows its config class."
    )


# Every YAML file in examples/ is a config, except the regression cases of the pytest example.
EXAMPLE_CONFIGS = [
    p
    for p in sorted([*EXAMPLES.rglob("*.yaml"), *EXAMPLES.rglob("*.yml")])
    if "pytest_assistant" not in p.parts
]


def test_example_configs_exist() -> None:
    names = {p.name for p in (EXAMPLES / "configs").iterdir()}
    for expected in ("ingest", "tune-lora", "tune-qlora", "tune-dora", "serve", "eval"):
        assert f"{expected}.yaml" in names


@pytest.mark.parametrize("path", EXAMPLE_CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_example_config_loads(path: Path) -> None:
    from phi3industry.cli.options import build_configs

    classes = _config_classes(path)
    configs = build_configs(classes, path, {})
    # Every key in the file is a field (unknown ones are refused) and survives a round trip.
    for cls, config in zip(classes, configs, strict=True):
        assert cls.from_dict(config.to_dict()) == config


def test_tune_configs_cover_the_three_methods() -> None:
    from phi3industry.tuning.config import TunerConfig

    methods = {TunerConfig.from_yaml(p).method for p in (EXAMPLES / "configs").glob("tune-*.yaml")}
    assert methods == {"lora", "qlora", "dora"}


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "DISABLE_MKDOCS_2_WARNING": "true"}
    site = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    # The generated reference pages exist and hold what the code defines.
    cli = (site / "reference" / "cli" / "index.html").read_text(encoding="utf-8")
    for command in ("ingest", "search", "ask", "serve", "tune"):
        assert f"phi3industry {command}" in cli
    config = (site / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    for field in ("chunk_overlap", "lora_r", "max_new_tokens"):
        assert field in config
    errors = (site / "reference" / "errors" / "index.html").read_text(encoding="utf-8")
    assert "TargetModulesError" in errors and "IndexLockedError" in errors
    assert (site / "reference" / "api" / "index.html").is_file()
