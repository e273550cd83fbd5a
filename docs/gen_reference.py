"""Generate the reference pages from the code itself (run by mkdocs-gen-files at build time).

* ``reference/cli.md``: the ``--help`` of every ``phi3industry`` command, rendered by the CLI.
* ``reference/config.md``: every field of the config dataclasses, with its ``metadata["help"]``.
* ``reference/errors.md``: every error class, its docstring, and the causes/fixes table below.
* ``reference/api.md``: mkdocstrings directives for the public API (rendered from docstrings).

Nothing here is copied from the code by hand: a new flag, field or error shows up on the next
build, and an error class without a row in ``ERROR_GUIDE`` fails the build.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
from typing import Any

import mkdocs_gen_files

# -- errors: what causes each one, and the fix (the one hand-written part; checked below) ---

ERROR_GUIDE: dict[str, tuple[str, str]] = {
    "Phi3IndustryError": (
        "Base class; never raised on its own.",
        "`except Phi3IndustryError` catches every error the library raises on purpose.",
    ),
    "ConfigError": (
        "A setting is out of range or inconsistent (`chunk_overlap >= chunk_size`, "
        "`method='lora'` with `load_in_8bit`, an unknown YAML key, a missing config file, "
        "a `rag` strategy without an index, a non-empty `output_dir` without "
        "`overwrite_output_dir`).",
        "Read the message: it names the field, the bad value and what is allowed. Unknown "
        "keys come with a *did you mean*. See the [configuration reference](config.md).",
    ),
    "DependencyMissingError": (
        "An optional feature needs a package that is not installed or too old: bitsandbytes "
        "for QLoRA, openai/langchain-openai for `text-embedding-3-*` and endpoints, "
        "FastAPI/uvicorn for `serve`, onnxruntime for the ONNX embedders.",
        "Run the install command in the message, e.g. `pip install 'phi3industry[qlora]'`, "
        "`[serve]`, `[openai]` or `[onnx]`.",
    ),
    "DocumentError": (
        "A document given explicitly cannot be loaded: missing, unreadable, binary, empty, "
        "over `max_file_bytes`, or a broken PDF. (During `sync` such files are *skipped* with "
        "the reason in `SyncReport.skipped` instead.)",
        "Fix or remove the file, raise `max_file_bytes`, or narrow `include`/`exclude`.",
    ),
    "ModelNotFoundError": (
        "A model name, directory, hub id or `.gguf` file cannot be resolved: a typo, a path "
        "that does not exist, or a hub id while offline (`HF_HUB_OFFLINE=1`) and not cached.",
        "Use a bundled name (`smollm2-135m-instruct`, `tiny-phi3`), a local directory or "
        "GGUF file, or go online once so the hub model lands in the cache. See "
        "[Use a real Phi-3 checkpoint](../howto/real-phi3.md).",
    ),
    "EmbedderMismatchError": (
        "The index was built with another embedder (name or dimension) than the one asked "
        "for; mixing them would make every search silently wrong.",
        "Open it with `Retriever.open(path)` (reuses the stored embedder), or rebuild the "
        "index into a new `path` with the new embedder.",
    ),
    "IndexLockedError": (
        "Another process (or another `Retriever` in this one) is writing to the same "
        "embedded index directory.",
        "Wait for the other writer to finish, or run your jobs one after another. Reading "
        "(`search`) is fine meanwhile; the lock is released if the writer dies.",
    ),
    "QueryError": (
        "A search request is invalid: an empty query, `k < 1`, or a malformed `where` filter.",
        "Pass a non-empty query, a positive `k` and a Chroma filter such as "
        '`{"source": "/abs/path.md"}` or `{"page": {"$gte": 3}}`.',
    ),
    "QueryTruncatedWarning": (
        "A warning, not an error: a search query was longer than the embedder reads, even "
        "in `max_query_windows` windows (or with `long_query='truncate'`), so dense search "
        "used its start only; the hits carry `metadata['query_cut']`.",
        "Raise `max_query_windows`, use `long_query='pool'`, or shorten the query; hybrid "
        "search reads all of it with BM25.",
    ),
    "DataFormatError": (
        "Training or evaluation data is malformed: a missing file, an empty dataset, a row "
        "in no known format or with a wrong field type (the message names the row).",
        "Give rows as `messages`, `prompt`/`completion`, `instruction`/`output`, "
        "`conversations` or `text`; see [Tune on text and on Q&A](../howto/tune.md).",
    ),
    "TargetModulesError": (
        "LoRA `target_modules` name modules the model does not have, e.g. `q_proj`/`v_proj` "
        "on Phi-3, whose attention is one fused `qkv_proj`.",
        "Leave `target_modules` unset (the architecture's default), use `all-linear`, or "
        "pick from the module names listed in the message.",
    ),
    "EngineError": (
        "An inference engine started by phi3industry (`serve --engine vllm`, "
        "`phi3industry engine vllm`) is not installed, exited, or was not healthy in time.",
        "Install vLLM in its own venv (the message gives the command) or pass "
        "`--vllm.python`; read the end of its log in the message (memory: "
        "`--vllm.gpu-memory-utilization`); raise `--vllm.startup-timeout` on a slow machine.",
    ),
    "GenerationError": (
        "Generation failed: the model ran out of memory or raised, or an OpenAI-compatible "
        "endpoint stayed unreachable or returned errors after `endpoint.retries` retries.",
        "Check the URL and key named in the message, that the server is up and serves the "
        "model name; lower `max_new_tokens`/`batch_size` for memory errors.",
    ),
    "GenerationTimeoutError": (
        "A generation ran past its deadline (the server's `request_timeout`, or the "
        "endpoint's `endpoint.timeout`).",
        "Raise the timeout, lower `max_new_tokens`, or use a faster model or device.",
    ),
    "IndexConnectionError": (
        "The Chroma server named by `host`/`port` cannot be reached (not started, wrong port, "
        "a firewall).",
        "Start it with `chroma run --path DIR --port PORT`, check `host` and `port`, or use "
        "`path=...` for an embedded index.",
    ),
    "RequestError": (
        "The HTTP server refused a request: a bad body or field, an unknown model, a key "
        "missing, a full queue, a timeout. Clients see its status and OpenAI error type.",
        "Read the `error.message` of the response; it names the field or limit "
        "(`max_tokens_cap`, `max_messages`, `max_body_bytes`, `max_queue`).",
    ),
}

CONFIG_CLASSES = (
    ("phi3industry.retrieval", "RetrieverConfig"),
    ("phi3industry.tuning", "TunerConfig"),
    ("phi3industry.pipeline", "PipelineConfig"),
    ("phi3industry.pipeline", "EndpointConfig"),
    ("phi3industry.serving", "ServerConfig"),
    ("phi3industry.serving", "VLLMConfig"),
    ("phi3industry.evaluation", "EvalConfig"),
    ("phi3industry.evaluation", "Profile"),
)

# (section title, module, public names); an empty tuple renders the whole module.
API_SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Retrieval", "phi3industry.retrieval", ("Retriever", "Hit", "SyncReport")),
    ("Pipeline", "phi3industry.pipeline", ("Pipeline", "Answer", "AnswerChunk", "ChainState")),
    (
        "Tuning",
        "phi3industry.tuning",
        ("Tuner", "TrainResult", "merge_adapter", "load_adapted_model", "export_gguf"),
    ),
    (
        "Configuration",
        "phi3industry",
        (
            "RetrieverConfig",
            "TunerConfig",
            "PipelineConfig",
            "EndpointConfig",
            "ServerConfig",
            "EvalConfig",
        ),
    ),
    ("Serving", "phi3industry.serving", ("BackgroundServer", "VLLMEngine", "VLLMConfig")),
    ("Strategies", "phi3industry.strategies", ()),
    ("Training data", "phi3industry.tuning.data", ("load_examples", "detect_format", "Example")),
    (
        "Generation",
        "phi3industry.generation",
        ("Generator", "LocalGenerator", "OpenAIGenerator", "ChatPhi3Industry", "Generation"),
    ),
    ("Server", "phi3industry.serving", ("create_app", "serve", "BackgroundServer")),
    (
        "Models",
        "phi3industry.models",
        ("resolve_model", "load_model", "load_tokenizer", "cache_dir"),
    ),
    ("Embeddings", "phi3industry.retrieval.embeddings", ("load_embedder", "Embedder")),
    ("QA sets", "phi3industry.qa", ()),
    ("RAFT", "phi3industry.tuning.raft", ("make_raft_examples", "RaftExample")),
    ("Evaluation", "phi3industry.evaluation.evaluate", ()),
    ("Advisor", "phi3industry.evaluation.advisor", ()),
    ("Errors", "phi3industry.errors", ()),
)


def _module(name: str) -> Any | None:
    """Import ``name`` if the module exists (evaluation/advisor may not yet)."""
    if importlib.util.find_spec(name) is None:
        return None
    return importlib.import_module(name)


def _md_cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# -- CLI ---------------------------------------------------------------------------------


def _cli_page() -> str:
    import typer.core
    from typer.testing import CliRunner

    from phi3industry.cli import app

    saved = typer.core.HAS_RICH
    typer.core.HAS_RICH = False  # plain click-style help: stable, no box drawing
    try:
        runner = CliRunner()

        def help_of(args: list[str]) -> str:
            result = runner.invoke(
                app, [*args, "--help"], terminal_width=100, prog_name="phi3industry"
            )
            if result.exit_code != 0:
                raise RuntimeError(f"phi3industry {' '.join(args)} --help failed: {result.output}")
            return result.output.rstrip()

        import typer.main

        commands = list(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
        lines = [
            "# CLI reference",
            "",
            "Generated at build time from `phi3industry COMMAND --help`. Every settings flag is "
            "also a YAML key of `--config FILE` (flags override the file); see the "
            "[configuration reference](config.md).",
            "",
            "```text",
            help_of([]),
            "```",
        ]
        for name in commands:
            lines += ["", f"## `phi3industry {name}`", "", "```text", help_of([name]), "```"]
    finally:
        typer.core.HAS_RICH = saved
    return "\n".join(lines) + "\n"


def _cli_flags() -> dict[str, list[str]]:
    """Map each ``--flag`` to the commands that accept it."""
    import typer.main

    from phi3industry.cli import app

    flags: dict[str, list[str]] = {}
    for name, command in typer.main.get_command(app).commands.items():  # type: ignore[attr-defined]
        for param in command.params:
            for opt in getattr(param, "opts", []):
                if opt.startswith("--"):
                    flags.setdefault(opt, []).append(name)
    return flags


# -- configuration -----------------------------------------------------------------------


def _default(fld: dataclasses.Field[Any]) -> str:
    if fld.default is not dataclasses.MISSING:
        return f"`{fld.default!r}`"
    if fld.default_factory is not dataclasses.MISSING:
        return f"`{fld.default_factory()!r}`"
    return "required"


def _flags_by_field(flags: dict[str, list[str]]) -> dict[tuple[type, str], list[str]]:
    """(config class, field) -> "`--flag` (commands)" for every flag some command has."""
    from phi3industry.cli.options import config_flags

    out: dict[tuple[type, str], list[str]] = {}
    for module_name, class_name in CONFIG_CLASSES:
        top = getattr(importlib.import_module(module_name), class_name)
        for flag in config_flags(top):
            owner = top
            for part in flag.path[:-1]:
                owner = owner.nested_configs()[part]
            commands = flags.get(flag.flag, [])
            cell = f"`{flag.flag}` ({', '.join(commands)})"
            if commands and cell not in out.get((owner, flag.path[-1]), []):
                out.setdefault((owner, flag.path[-1]), []).append(cell)
    return out


def _config_page() -> str:
    by_field = _flags_by_field(_cli_flags())
    lines = [
        "# Configuration reference",
        "",
        "Generated at build time from the config dataclasses: each field is a YAML key "
        "(`XConfig.from_yaml(path)`, `--config FILE`), a keyword argument, and, where a command "
        "exposes it, a `--flag` (underscores become dashes; a nested config's field is "
        "`--parent.field`, and its YAML key sits under `parent:`). Cross-field checks run when "
        "the config is built and raise [`ConfigError`](errors.md#configerror); a key that moved "
        "gets an error naming its new place.",
    ]
    for module_name, class_name in CONFIG_CLASSES:
        cls = getattr(importlib.import_module(module_name), class_name)
        doc = inspect.getdoc(cls) or ""
        summary = doc.split("\n\n")[0]
        nested = cls.nested_configs()
        lines += [
            "",
            f"## `{class_name}`",
            "",
            f"`{module_name}.{class_name}`: {_md_cell(summary)}",
            "",
            "| key | type | default | CLI | what |",
            "|---|---|---|---|---|",
        ]
        for fld in dataclasses.fields(cls):
            if fld.name in nested:
                sub = nested[fld.name].__name__
                lines.append(
                    f"| `{fld.name}` | [`{sub}`](#{sub.lower()}) | `{sub}()` | `--{fld.name}.*` "
                    f"| {_md_cell(fld.metadata.get('help', ''))} |"
                )
                continue
            cli = ", ".join(by_field.get((cls, fld.name), []))
            lines.append(
                f"| `{fld.name}` | `{_md_cell(fld.type)}` | {_md_cell(_default(fld))} | {cli} "
                f"| {_md_cell(fld.metadata.get('help', ''))} |"
            )
        if cls.moved_settings:
            moved = ", ".join(f"`{k}` -> {v}" for k, v in cls.moved_settings.items())
            lines += ["", f"Moved settings: {_md_cell(moved)}."]
    return "\n".join(lines) + "\n"


# -- errors ------------------------------------------------------------------------------


def _error_classes() -> list[tuple[str, type]]:
    from phi3industry import errors

    found: list[tuple[str, type]] = [("Phi3IndustryError", errors.Phi3IndustryError)]
    found += [(n, getattr(errors, n)) for n in sorted(errors.__all__) if n != "Phi3IndustryError"]
    return found


def _errors_page() -> str:
    classes = _error_classes()
    missing = [n for n, _ in classes if n not in ERROR_GUIDE]
    if missing:
        raise RuntimeError(
            f"docs/gen_reference.py: add a row to ERROR_GUIDE for {', '.join(missing)}."
        )
    lines = [
        "# Errors reference",
        "",
        "Every error phi3industry raises on purpose derives from `Phi3IndustryError`; the "
        "specific ones also subclass the builtin they refine (`ConfigError` is a `ValueError`, "
        "`ModelNotFoundError` a `FileNotFoundError`, ...), so `except ValueError` keeps "
        "working. Messages name the field or file, the bad value and the fix. The CLI prints "
        "them as one line (`Error: ...`) and exits with status 1.",
        "",
        "| error | is a | typical causes | fix |",
        "|---|---|---|---|",
    ]
    for name, cls in classes:
        bases = ", ".join(f"`{b.__name__}`" for b in cls.__bases__ if b is not object)
        cause, fix = ERROR_GUIDE[name]
        lines.append(f"| [`{name}`](#{name.lower()}) | {bases} | {cause} | {fix} |")
    for name, cls in classes:
        cause, fix = ERROR_GUIDE[name]
        lines += [
            "",
            f"## {name}",
            "",
            f"`{cls.__module__}.{name}`: {inspect.getdoc(cls) or ''}",
            "",
            f"**Causes.** {cause}",
            "",
            f"**Fix.** {fix}",
        ]
    return "\n".join(lines) + "\n"


# -- API ---------------------------------------------------------------------------------


def _api_page() -> str:
    lines = [
        "# API reference",
        "",
        "Rendered from the docstrings. The main classes are also importable from the package: "
        "`from phi3industry import Retriever, Tuner, Pipeline, RetrieverConfig, TunerConfig, "
        "PipelineConfig`.",
    ]
    for title, module_name, names in API_SECTIONS:
        module = _module(module_name)
        if module is None:
            continue
        lines += ["", f"## {title}"]
        if not names:
            lines += ["", f"::: {module_name}", "    options:", "      show_root_heading: false"]
            lines += ["      heading_level: 3"]
            continue
        for name in names:
            if not hasattr(module, name):
                continue
            lines += ["", f"::: {module_name}.{name}", "    options:", "      heading_level: 3"]
    return "\n".join(lines) + "\n"


PAGES = {
    "reference/cli.md": _cli_page,
    "reference/config.md": _config_page,
    "reference/errors.md": _errors_page,
    "reference/api.md": _api_page,
}

for path, render in PAGES.items():
    with mkdocs_gen_files.open(path, "w") as fh:
        fh.write(render())
