"""The ``phi3industry`` command line: one verb, one library function.

Library errors become one clear line on stderr and exit code 1.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from phi3industry import __version__
from phi3industry._cli_options import build_config, config_options
from phi3industry.config import RetrieverConfig
from phi3industry.errors import Phi3IndustryError

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
    from phi3industry.retriever import Retriever

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
    from phi3industry.retriever import Retriever

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
    hybrid: Annotated[bool, typer.Option("--hybrid", help="Fuse BM25 with dense (RRF).")] = False,
    mmr: Annotated[bool, typer.Option("--mmr", help="Diversify hits (MMR).")] = False,
    min_score: Annotated[
        float | None, typer.Option("--min-score", help="Drop hits scoring below this.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Search an index and print the hits with their sources."""
    retriever = _open_retriever(index, config, {})
    hits = retriever.search(query, k=k, hybrid=hybrid, mmr=mmr, min_score=min_score)
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
) -> None:
    """Run the offline demo on the bundled sample knowledge base."""
    from phi3industry.demo import run_demo

    run_demo(output)


def main() -> None:
    """Run the CLI, turning library errors into one line and exit code 1."""
    try:
        app(standalone_mode=False)
    except Phi3IndustryError as exc:
        typer.secho(f"Error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(1)
    except typer.Abort:
        typer.echo("Aborted.", err=True)
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors in standalone_mode=False
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
