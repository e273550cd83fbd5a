"""The whole evaluation run behind ``phi3industry eval --config eval.yaml``: :func:`run_eval`.

Index, questions, adapters (plain and RAFT, each trained once and stamped), answers under
every strategy, report: each step reuses what an earlier run left in ``output_dir``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.evaluation.config import EvalConfig
from phi3industry.evaluation.evaluate import RUNS_DIR, evaluate, fingerprint, say
from phi3industry.evaluation.judge import Judge
from phi3industry.evaluation.questions import generate_qa
from phi3industry.evaluation.report import Report
from phi3industry.generation.base import Generator
from phi3industry.generation.endpoint import OpenAIGenerator
from phi3industry.generation.local import LocalGenerator
from phi3industry.models import load_tokenizer
from phi3industry.pipeline.pipeline import Pipeline
from phi3industry.qa import QAItem, load_qa, save_qa, split_qa
from phi3industry.retrieval.index import INDEX_FILE, Retriever
from phi3industry.strategies import STRATEGIES
from phi3industry.tuning.raft import make_raft_examples, qa_triples, write_raft_jsonl
from phi3industry.tuning.tuner import Tuner

# The tuner settings an adapter's stamp records: a change retrains it.
_TUNING_STAMP = (
    "model",
    "method",
    "max_steps",
    "num_epochs",
    "learning_rate",
    "lora_r",
    "lora_alpha",
    "batch_size",
    "max_length",
    "seed",
)


def _open_index(cfg: EvalConfig) -> Retriever:
    """The evaluation's index: synced from ``docs``, or opened as it is."""
    index_dir = cfg.index_dir
    rcfg = cfg.retriever
    if rcfg.host is not None:  # a Chroma server
        retriever = Retriever(dataclasses.replace(rcfg, progress=cfg.progress))
    elif (index_dir / INDEX_FILE).is_file():
        retriever = Retriever.open(index_dir, progress=cfg.progress)
        if rcfg.include != retriever.config.include or rcfg.exclude != retriever.config.exclude:
            retriever = Retriever(
                dataclasses.replace(retriever.config, include=rcfg.include, exclude=rcfg.exclude)
            )
    elif cfg.docs:
        retriever = Retriever(dataclasses.replace(rcfg, path=str(index_dir), progress=cfg.progress))
    else:
        raise ConfigError(
            f"No index at {index_dir} and no 'docs' to build one; set 'docs' (documents to "
            "index) or retriever.path (an existing index directory)."
        )
    if cfg.docs:
        report = retriever.sync(cfg.docs)
        say(cfg.progress, f"Index {index_dir}: {report.summary().splitlines()[0]}")
    return retriever


def _qa_generator(cfg: EvalConfig) -> Generator:
    model = cfg.qa_model or cfg.model
    if cfg.qa_base_url:
        return OpenAIGenerator(cfg.qa_base_url, model)
    return LocalGenerator.from_pretrained(
        model, dtype=cfg.pipeline.dtype, device=cfg.pipeline.device
    )


def _questions(cfg: EvalConfig, retriever: Retriever) -> tuple[list[QAItem], list[QAItem]]:
    """(train, held-out) questions: loaded, or generated once and kept in OUTPUT_DIR."""
    out = Path(cfg.output_dir)
    train: list[QAItem] = []
    if cfg.qa:
        heldout = load_qa(cfg.qa)
    else:
        held_file, train_file = out / "qa_heldout.jsonl", out / "qa_train.jsonl"
        if held_file.is_file():
            heldout = load_qa(held_file)
            train = load_qa(train_file) if train_file.is_file() else []
            say(cfg.progress, f"Reusing generated questions in {held_file}")
        else:
            say(cfg.progress, f"Generating {cfg.generate_questions} questions from the index...")
            generated = generate_qa(
                retriever,
                _qa_generator(cfg),
                cfg.generate_questions,
                seed=cfg.seed,
                progress=cfg.progress,
            )
            if len(generated) < 2:
                raise DataFormatError(
                    f"Only {len(generated)} usable question(s) could be generated from the "
                    "index; give a QA file ('qa') or a stronger question writer ('qa_model', "
                    "'qa_base_url')."
                )
            train, heldout = split_qa(generated, cfg.heldout_fraction, cfg.seed)
            save_qa(train, train_file)
            save_qa(heldout, held_file)
    if cfg.max_questions is not None:
        heldout = heldout[: cfg.max_questions]
    return train, heldout


def _training_items(cfg: EvalConfig, generated: list[QAItem]) -> tuple[list[QAItem], list[str]]:
    """QA items (for both adapters) and other training files (plain adapter only)."""
    items = list(generated)
    files: list[str] = []
    for path in cfg.train or []:
        p = Path(path)
        if p.is_file() and p.suffix.lower() in (".jsonl", ".json", ".csv", ".tsv"):
            try:
                items += load_qa(p)
                continue
            except DataFormatError:
                pass
            try:  # chat records: their question/answer pairs also feed RAFT
                items += [QAItem(q, [a]) for q, a, _ in qa_triples(p)]
                continue
            except (DataFormatError, AttributeError, TypeError):
                pass
        files.append(path)
    return items, files


def _tune(
    cfg: EvalConfig, role: str, data: list[Any], out_dir: Path, stamp: dict[str, Any]
) -> Path:
    """Train one adapter unless the same one is already in ``out_dir``."""
    stamp_file = out_dir / "phi3industry-eval-stamp.json"
    fp = fingerprint(stamp)
    if (
        (out_dir / "adapter_model.safetensors").is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()).get("fingerprint") == fp
    ):
        say(cfg.progress, f"Adapter {role!r}: reusing {out_dir}")
        return out_dir
    say(cfg.progress, f"Adapter {role!r}: tuning into {out_dir}...")
    tuner_cfg = dataclasses.replace(
        cfg.tuner, output_dir=str(out_dir), overwrite_output_dir=True, progress=cfg.progress
    )
    result = Tuner(tuner_cfg).train(data)
    stamp_file.write_text(json.dumps({"fingerprint": fp, "stamp": stamp}, default=str))
    say(cfg.progress, result.summary())
    return out_dir


def build_pipeline(
    cfg: EvalConfig, retriever: Retriever | None, adapters: dict[str, str]
) -> Pipeline:
    """The pipeline that answers an evaluation's questions, with its adapters loaded by role."""
    pcfg = dataclasses.replace(
        cfg.pipeline,
        strategy="rag" if retriever is not None else "base",
        adapter=None,
        adapters=[f"{role}={path}" for role, path in adapters.items()] or None,
    )
    return Pipeline(retriever=retriever, config=pcfg)


def run_eval(config: EvalConfig | str | os.PathLike[str]) -> Report:
    """Run a whole evaluation and write its report (``phi3industry eval``).

    Steps: sync or open the index; load the held-out questions (or generate a QA set from
    the index and split it: the held-out part is never trained on); tune the adapters the
    strategies need (plain: the training questions, plus the index's chunks with
    ``train_on_docs``; RAFT: the training questions with oracle + distractor chunks from the
    index); evaluate; write ``report.json``, ``report.md``, ``metrics.png`` and
    ``latency.png`` to ``output_dir``. Answers, adapters and generated questions stay in
    ``output_dir``: running again redoes only what changed or did not finish.

    Args:
        config: An :class:`~phi3industry.evaluation.EvalConfig` or the path of its YAML file.

    Returns:
        The :class:`~phi3industry.evaluation.Report`.
    """
    cfg = config if isinstance(config, EvalConfig) else EvalConfig.from_yaml(os.fspath(config))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    retriever = _open_index(cfg)
    generated_train, heldout = _questions(cfg, retriever)
    say(cfg.progress, f"{len(heldout)} held-out questions")
    train_items, train_files = _training_items(cfg, generated_train)
    held_keys = {i.question.strip().lower() for i in heldout}
    leaked = [i for i in train_items if i.question.strip().lower() in held_keys]
    if leaked:
        say(cfg.progress, f"Dropping {len(leaked)} training question(s) that are held out.")
        train_items = [i for i in train_items if i.question.strip().lower() not in held_keys]

    adapters: dict[str, str] = {}
    roles = cfg.adapter_roles
    if roles and not train_items and not (cfg.adapter and set(roles) <= {"finetuned"}):
        raise ConfigError(
            f"Strategies {', '.join(s for s in cfg.strategies if STRATEGIES[s].adapter)} need "
            "training questions: set 'train' (QA or chat JSONL), or leave 'qa' unset so that "
            "questions are generated and split."
        )
    tuner_settings = cfg.tuner.to_dict()
    tune_stamp = {key: tuner_settings[key] for key in _TUNING_STAMP}
    train_questions = [i.to_dict() for i in train_items]
    if "finetuned" in roles:
        if cfg.adapter:
            adapters["finetuned"] = cfg.adapter
        else:
            data: list[Any] = [
                {
                    "messages": [
                        {"role": "user", "content": i.question},
                        {"role": "assistant", "content": i.answer},
                    ]
                }
                for i in train_items
            ]
            data += train_files
            if cfg.train_on_docs:
                data.append(retriever)
            stamp = {
                **tune_stamp,
                "role": "finetuned",
                "questions": train_questions,
                "files": train_files,
                "docs": retriever.stats()["chunks"] if cfg.train_on_docs else None,
            }
            adapters["finetuned"] = str(
                _tune(cfg, "finetuned", data, out / "adapters" / "finetuned", stamp)
            )
    for role in ("raft", "raft-random"):
        if role not in roles:
            continue
        if role == "raft" and cfg.raft_adapter:
            adapters[role] = cfg.raft_adapter
            continue
        kind = cfg.raft_distractor_type if role == "raft" else "random"
        examples = make_raft_examples(
            retriever,
            train_items,
            n_distractors=cfg.raft_distractors,
            p_oracle=cfg.raft_p_oracle,
            distractors=kind,
            seed=cfg.seed,
            system_prompt=cfg.pipeline.system_prompt,
            tokenizer=load_tokenizer(cfg.model),
            context_tokens=cfg.pipeline.context_tokens,
            max_length=cfg.tuner.max_length,
        )
        raft_file = write_raft_jsonl(examples, out / f"{role}_train.jsonl")
        kept = sum(e.oracle_kept for e in examples)
        say(
            cfg.progress,
            f"RAFT ({kind} distractors): {len(examples)} examples, oracle shown in {kept}, "
            f"written to {raft_file}",
        )
        records = [e.to_record() for e in examples]
        stamp = {**tune_stamp, "role": role, "records": records}
        adapters[role] = str(_tune(cfg, role, records, out / "adapters" / role, stamp))

    pipe = build_pipeline(cfg, retriever, adapters)
    judge = None
    if cfg.judge_base_url and cfg.judge_model:
        judge = Judge(cfg.judge_base_url, cfg.judge_model, cache_dir=out / RUNS_DIR)
    report = evaluate(
        pipe,
        heldout,
        cfg.strategies,
        adapters={role: role for role in adapters},
        cache_dir=out / RUNS_DIR,
        n_bootstrap=cfg.n_bootstrap,
        seed=cfg.seed,
        progress=cfg.progress,
        batch_size=cfg.pipeline.batch_size,
        judge=judge,
    )
    if judge is not None and judge.failures:
        say(cfg.progress, f"The judge gave no readable verdict for {judge.failures} answer(s).")
    report.settings["eval_config"] = cfg.to_dict()
    report.settings["train_questions"] = len(train_items)
    report.settings["wall_seconds"] = round(time.perf_counter() - started, 1)
    paths = report.save(out)
    say(cfg.progress, f"\n{report.table()}\n\nReport: {paths['markdown']}")
    return report


__all__ = ["build_pipeline", "run_eval"]
