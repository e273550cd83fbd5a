"""CLI flags come from the config dataclasses: nested configs are ``--parent.field``, and one
YAML file (or one command line) feeds several configs, each key to the config that has it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from phi3industry.cli.options import build_config, build_configs, config_flags, config_options
from phi3industry.errors import ConfigError
from phi3industry.evaluation import EvalConfig
from phi3industry.pipeline import EndpointConfig, PipelineConfig
from phi3industry.serving import ServerConfig


def test_nested_fields_are_dotted_flags() -> None:
    flags = {f.flag: f.path for f in config_flags(EvalConfig)}
    assert flags["--pipeline.k"] == ("pipeline", "k")
    assert flags["--tuner.max-steps"] == ("tuner", "max_steps")
    assert flags["--retriever.chunk-size"] == ("retriever", "chunk_size")
    assert flags["--pipeline.endpoint.base-url"] == ("pipeline", "endpoint", "base_url")
    assert flags["--max-questions"] == ("max_questions",)
    pipeline = {f.flag for f in config_flags(PipelineConfig)}
    assert {"--model", "--endpoint.base-url", "--endpoint.model"} <= pipeline


def _run(decorated_with: tuple[type, ...], args: list[str]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    app = typer.Typer()

    @app.command()
    @config_options(*decorated_with)
    def cmd(overrides: dict[str, Any] | None = None) -> None:
        seen.update(overrides or {})

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return seen


def test_given_flags_become_nested_overrides() -> None:
    seen = _run((EvalConfig,), ["--pipeline.k", "2", "--tuner.max-steps", "6", "--no-progress"])
    assert seen == {"pipeline": {"k": 2}, "tuner": {"max_steps": 6}, "progress": False}
    cfg = build_config(EvalConfig, None, seen)
    assert (cfg.pipeline.k, cfg.tuner.max_steps, cfg.progress) == (2, 6, False)


def test_one_command_line_for_two_configs() -> None:
    args = ["--model", "tiny-phi3", "--endpoint.base-url", "http://127.0.0.1:9/v1", "--port", "0"]
    seen = _run((PipelineConfig, ServerConfig), args)
    pipeline, server = build_configs((PipelineConfig, ServerConfig), None, seen)
    assert pipeline.model == "tiny-phi3" and server.port == 0
    assert pipeline.endpoint == EndpointConfig(base_url="http://127.0.0.1:9/v1")


def test_two_configs_that_share_a_flag_are_refused() -> None:
    with pytest.raises(ValueError, match="Two configs define the flag --strategy"):
        config_options(PipelineConfig, PipelineConfig)


def test_one_yaml_file_for_two_configs(tmp_path: Path) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(
        "model: tiny-phi3\nk: 2\nendpoint:\n  model: kb\nport: 9000\nmax_queue: 4\n",
        encoding="utf-8",
    )
    pipeline, server = build_configs((PipelineConfig, ServerConfig), path, {"k": 3})
    assert (pipeline.model, pipeline.k, pipeline.endpoint.model) == ("tiny-phi3", 3, "kb")
    assert (server.port, server.max_queue) == (9000, 4)
    # flags merge into nested sections instead of replacing them
    pipeline, _ = build_configs(
        (PipelineConfig, ServerConfig), path, {"endpoint": {"base_url": "http://x:1/v1"}}
    )
    assert pipeline.endpoint == EndpointConfig(base_url="http://x:1/v1", model="kb")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("modle: x\n", r"Unknown setting 'modle': it is not a PipelineConfig or ServerConfig"),
        ("endpoint_model: kb\n", r"'endpoint_model' has moved: set endpoint\.model"),
        ("- a\n- b\n", "must hold a mapping of settings, got list"),
        ("endpoint: 3\n", "'endpoint' must be a mapping of EndpointConfig settings"),
    ],
)
def test_bad_composed_files(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "serve.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        build_configs((PipelineConfig, ServerConfig), path, {})
