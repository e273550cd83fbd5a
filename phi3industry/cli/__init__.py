"""The ``phi3industry`` command line: one verb, one library function.

Library errors become one clear line on stderr and exit code 1. Each command imports the
sub-package it drives when it runs, so that ``phi3industry --help`` stays fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from phi3industry._version import __version__
from phi3industry.cli.options import build_config, build_configs, config_options
from phi3industry.errors import Phi3IndustryError
from phi3industry.evaluation.advisor import DATA_CHANGES, Profile
from phi3industry.evaluation.config import EvalConfig
from phi3industry.models import DEFAULT_MODEL
from phi3industry.pipeline.config import PipelineConfig
from phi3industry.retrieval.config import RetrieverConfig
from phi3industry.serving.config import ServerConfig, VLLMConfig, check_bind, resolve_api_key
from phi3industry.tuning.config import TunerConfig

app = typer.Typer(
    name="phi3industry",
    help="Make Phi-3 an expert in your company's field: RAG, fine-tuning, or both.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOption = Annotated[
    Path | None, typer.Option("--index", help="Index directory (embedded Chroma).")
]
ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="YAML file of settings; flags override it.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")]


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"phi3industry {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version_callback, is_eager=True, help="Show version."),
    ] = False,
) -> None:
    """Make Phi-3 an expert in your company's field: RAG, fine-tuning, or both."""


def _retriever_config(
    index: Path | None, config: Path | None, overrides: dict[str, Any]
) -> RetrieverConfig:
    if index is not None:
        overrides = {**overrides, "path": str(index)}
    return build_config(RetrieverConfig, config, overrides)


def _open_retriever(index: Path | None, config: Path | None, overrides: dict[str, Any]) -> Any:
    from phi3industry.retrieval.index import Retriever

    if config is None and index is not None and not overrides:
        return Retriever.open(index)
    return Retriever(_retriever_config(index, config, overrides))


@app.command()
@config_options(RetrieverConfig, skip=("path", "k", "hybrid", "mmr", "min_score", "mmr_lambda"))
def ingest(
    paths: Annotated[list[Path], typer.Argument(help="Files, directories or globs to ingest.")],
    index: IndexOption = None,
    config: ConfigOption = None,
    keep_missing: Annotated[
        bool,
        typer.Option("--keep-missing", help="Keep indexed documents no longer under PATHS."),
    ] = False,
    as_json: JsonOption = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Ingest documents into an index and keep it in sync (unchanged files are skipped)."""
    from phi3industry.retrieval.index import Retriever

    retriever = Retriever(_retriever_config(index, config, overrides or {}))
    report = retriever.sync([str(p) for p in paths], delete_missing=not keep_missing)
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        typer.echo(report.summary())


@app.command()
def search(
    query: Annotated[str, typer.Argument(help="What to look for.")],
    index: IndexOption = None,
    config: ConfigOption = None,
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits.")] = 5,
    hybrid: Annotated[
        bool | None,
        typer.Option(
            "--hybrid/--dense",
            help="Fuse BM25 with dense (RRF), or dense only; default: the index's setting.",
        ),
    ] = None,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify hits (MMR).")] = False,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Drop hits scoring below this.")
    ] = None,
    reranker: Annotated[
        str | None,
        typer.Option(
            "--reranker",
            help="Re-score the top candidates with this cross-encoder (directory or cached "
            "hub id); default: the index's own setting.",
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search an index and print the hits with their sources."""
    retriever = _open_retriever(index, config, {})
    hits = retriever.search(
        query, k=k, hybrid=hybrid, mmr=mmr, min_score=min_score, reranker=reranker
    )
    if as_json:
        typer.echo(json.dumps([hit.to_dict() for hit in hits], indent=2))
        return
    if not hits:
        typer.echo("No hits.")
    for rank, hit in enumerate(hits, 1):
        typer.echo(hit.format(rank))


@app.command()
def stats(
    index: IndexOption = None, config: ConfigOption = None, as_json: JsonOption = False
) -> None:
    """Show what an index holds: documents, chunks, embedder, size on disk."""
    info = _open_retriever(index, config, {}).stats()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
    else:
        for key, value in info.items():
            typer.echo(f"{key}: {value}")


@app.command()
def demo(
    output: Annotated[
        Path, typer.Option("--output", help="Where the demo writes its index and outputs.")
    ] = Path("demo-output"),
    questions: Annotated[int, typer.Option(help="Sample questions to search and answer.")] = 2,
    tune_steps: Annotated[int, typer.Option(help="Optimizer steps for the demo adapter.")] = 20,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer generated.")] = 64,
    retune: Annotated[bool, typer.Option("--retune", help="Train the adapter again.")] = False,
    search_only: Annotated[
        bool, typer.Option("--search-only", help="Stop after ingest and search.")
    ] = False,
) -> None:
    """Run the offline demo: ingest, search, tune and answer with citations."""
    from phi3industry.demo import run_demo

    run_demo(
        output,
        questions=questions,
        tune_steps=tune_steps,
        max_new_tokens=max_new_tokens,
        retune=retune,
        search_only=search_only,
    )


def _serve_configs(
    index: Path | None, config: Path | None, overrides: dict[str, Any]
) -> tuple[PipelineConfig, ServerConfig]:
    if index is not None:
        overrides = {**overrides, "index": str(index)}
    pipeline, server = build_configs((PipelineConfig, ServerConfig), config, overrides)
    return pipeline, server


@app.command()
@config_options(PipelineConfig, panel="Pipeline settings")
def ask(
    question: Annotated[str, typer.Argument(help="The question to answer.")],
    index: IndexOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Answer a question with retrieval and/or the fine-tuned adapter, citing sources.

    --config takes a pipeline YAML file, or the one `serve` reads (its server keys are
    ignored here).
    """
    from phi3industry.pipeline.pipeline import Pipeline

    cfg, _server = _serve_configs(index, config, overrides or {})
    answer = Pipeline(config=cfg).invoke(question)
    if as_json:
        typer.echo(json.dumps(answer.to_dict(), indent=2))
    else:
        typer.echo(answer.format())


@app.command()
@config_options(PipelineConfig, ServerConfig, panel="Pipeline and server settings")
def serve(
    index: IndexOption = None,
    config: ConfigOption = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Serve the pipeline over an OpenAI-compatible HTTP API (127.0.0.1 by default)."""
    pipeline, server = _serve_configs(index, config, overrides or {})
    check_bind(server.host, resolve_api_key(server))  # refuse before loading the model
    from phi3industry.serving.app import serve as run_server

    run_server(pipeline, server)


@app.command()
@config_options(VLLMConfig, panel="vLLM settings")
def engine(
    kind: Annotated[str, typer.Argument(help="The engine: vllm.")],
    model: Annotated[
        str, typer.Option("--model", help="Base model: short name, directory, hub id or .gguf.")
    ] = DEFAULT_MODEL,
    adapter: Annotated[
        list[str] | None,
        typer.Option("--adapter", help="A LoRA adapter to serve, 'name=DIR' (repeatable)."),
    ] = None,
    print_command: Annotated[
        bool, typer.Option("--print-command", help="Print vLLM's command line; start nothing.")
    ] = False,
    config: ConfigOption = None,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Start an inference engine (vLLM) for a model and its LoRA adapters; stop it on Ctrl-C.

    vLLM serves the model under its name here and each adapter as a LoRA module under its
    name, with --max-lora-rank read from the adapters; then point `serve --endpoint.base-url`
    at the URL it prints (or run `serve --engine vllm`, which does both).
    """
    import time

    from phi3industry.serving.engine import VLLMEngine

    if kind != "vllm":
        raise typer.BadParameter(f"unknown engine {kind!r}; choose: vllm.")
    eng = VLLMEngine(model, adapter or [], build_config(VLLMConfig, config, overrides or {}))
    if print_command:
        import shlex

        typer.echo(shlex.join(eng.command()))
        return
    typer.echo(f"starting vLLM (log: {eng.log_path or 'a temporary file'}) ...", err=True)
    with eng:
        adapters = [f"--adapter {n}={p}" for n, p in eng.adapters.items()]
        typer.echo(f"vLLM serving {eng.served_name} at {eng.url} (log: {eng.log_path})")
        typer.echo(
            " ".join(
                ["phi3industry serve --model", model, *adapters, "--endpoint.base-url", eng.url]
            )
        )
        try:
            while eng.running:
                time.sleep(1.0)
        except KeyboardInterrupt:
            pass
    if not eng.running:
        typer.echo("vLLM stopped.", err=True)


@app.command()
@config_options(TunerConfig, panel="Tuning settings")
def tune(
    data: Annotated[
        list[Path] | None,
        typer.Argument(help="Training files or directories (JSONL/CSV/JSON rows, or text)."),
    ] = None,
    index: IndexOption = None,
    config: ConfigOption = None,
    as_json: JsonOption = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Fine-tune a LoRA/QLoRA/DoRA adapter on DATA and/or an index's own chunks."""
    from phi3industry.tuning.tuner import Tuner

    tuner = Tuner(build_config(TunerConfig, config, overrides or {}))
    sources: list[Any] = [str(p) for p in data or []]
    if index is not None:
        sources.append(_open_retriever(index, None, {}))
    if not sources:
        raise typer.BadParameter("give DATA files/directories, --index DIR, or both.")
    result = tuner.train(sources)
    if as_json:
        typer.echo(
            json.dumps({k: v for k, v in result.to_dict().items() if k != "log_history"}, indent=2)
        )
    else:
        typer.echo(result.summary())


@app.command()
def merge(
    adapter: Annotated[Path, typer.Argument(help="Adapter directory written by `tune`.")],
    out: Annotated[Path, typer.Argument(help="Directory for the merged model.")],
    dtype: Annotated[
        str, typer.Option("--dtype", help="bfloat16, float16 or float32.")
    ] = "bfloat16",
    gguf: Annotated[
        str | None,
        typer.Option(
            "--gguf",
            help="Also write OUT/model-<Q>.gguf: f32, f16, q8_0, or q4_k_m/q5_k_m (llama.cpp).",
        ),
    ] = None,
) -> None:
    """Merge an adapter into its (unquantized) base model; optionally export GGUF."""
    from phi3industry.tuning.adapters import merge_adapter
    from phi3industry.tuning.gguf import export_gguf

    path = merge_adapter(adapter, out, dtype=dtype)
    typer.echo(f"Merged model written to {path}")
    if gguf is not None:
        gguf_path = export_gguf(adapter, Path(out) / f"model-{gguf}.gguf", quantization=gguf)
        typer.echo(f"GGUF written to {gguf_path}")


@app.command("eval")
@config_options(EvalConfig, panel="Evaluation settings")
def eval_(
    config: ConfigOption = None,
    as_json: JsonOption = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Measure base vs RAG vs fine-tuned vs both (and RAFT) on your questions; write a report."""
    from phi3industry.evaluation.run import run_eval

    report = run_eval(build_config(EvalConfig, config, overrides or {}))
    if as_json:
        data = report.to_dict()
        for body in data["strategies"].values():
            body.pop("records", None)
        typer.echo(json.dumps(data, indent=2))
    else:
        typer.echo(report.table())


def _ask_profile() -> dict[str, Any]:
    changes = typer.prompt(
        f"How often does the knowledge change? ({', '.join(DATA_CHANGES)})", default="rarely"
    )
    return {
        "data_changes": changes.strip().lower(),
        "training_examples": typer.prompt(
            "How many quality Q&A / instruction examples could you train on?", default=0, type=int
        ),
        "needs_external_data": typer.confirm("Do answers need external or fresh data?"),
        "specialized_language": typer.confirm("Do specialized vocabulary and phrasing matter?"),
        "traceable_sources": typer.confirm("Must answers show their sources?"),
        "synthesizes_sources": typer.confirm("Do answers combine knowledge from several sources?"),
        "automated_workflow": typer.confirm("Does it drive an automated business workflow?"),
    }


@app.command()
@config_options(Profile, panel="Use case")
def advise(
    config: ConfigOption = None,
    report: Annotated[
        Path | None,
        typer.Option("--report", help="report.json (or its directory) from `phi3industry eval`."),
    ] = None,
    as_json: JsonOption = False,
    overrides: dict[str, Any] | None = None,
) -> None:
    """Recommend RAG, fine-tuning or both: rules of thumb, decided by an eval report if given."""
    from phi3industry.evaluation.advisor import advise as run_advise

    answers = overrides or {}
    if config is None and not answers and sys.stdin.isatty():
        answers = _ask_profile()
    advice = run_advise(build_config(Profile, config, answers), report=report)
    if as_json:
        typer.echo(json.dumps(advice.to_dict(), indent=2))
    else:
        typer.echo(advice.format())


def main() -> None:
    """Run the CLI, turning library errors into one line and exit code 1.

    Usage errors (unknown flag, missing argument) are reported by typer with exit code 2.
    """
    try:
        app()
    except Phi3IndustryError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
