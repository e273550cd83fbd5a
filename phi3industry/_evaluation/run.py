"""The end-to-end evaluation run behind :func:`phi3industry.evaluation.run_eval`.

Index, questions, adapters (plain and RAFT, each trained once and stamped), answers under
every strategy, report: each step reuses what an earlier run left in ``output_dir``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from phi3industry._evaluation.qa import QAItem, generate_qa, load_qa, save_qa, split_qa
from phi3industry._evaluation.report import Report
from phi3industry.errors import ConfigError, DataFormatError
from phi3industry.evaluation import (
    _RUNS,
    EVAL_STRATEGIES,
    EvalConfig,
    _fingerprint,
    _say,
    evaluate,
)

if TYPE_CHECKING:
    from phi3industry.pipeline import Pipeline
    from phi3industry.retriever import Retriever


def _open_index(cfg: EvalConfig) -> Retriever:
    from phi3industry.config import RetrieverConfig
    from phi3industry.retriever import INDEX_FILE, Retriever

    index_dir = cfg.index_dir
    if cfg.docs:
        if (index_dir / INDEX_FILE).is_file():
            retriever = Retriever.open(index_dir, progress=cfg.progress)
            if cfg.include != retriever.config.include or cfg.exclude != retriever.config.exclude:
                retriever = Retriever(
                    RetrieverConfig.from_dict(
                        {
                            **retriever.config.to_dict(),
                            "include": cfg.include,
                            "exclude": cfg.exclude,
                        }
                    )
                )
        else:
            retriever = Retriever(
                RetrieverConfig(
                    path=str(index_dir),
                    chunk_size=cfg.chunk_size,
                    include=cfg.include,
                    exclude=cfg.exclude,
                    progress=cfg.progress,
                )
            )
        report = retriever.sync(cfg.docs)
        _say(cfg.progress, f"Index {index_dir}: {report.summary().splitlines()[0]}")
        return retriever
    if not (index_dir / INDEX_FILE).is_file():
        raise ConfigError(
            f"No index at {index_dir} and no 'docs' to build one; set 'docs' (documents to "
            "index) or 'index' (an existing index directory)."
        )
    return Retriever.open(index_dir)


def _qa_generator(cfg: EvalConfig) -> Any:
    from phi3industry.generation import LocalGenerator, OpenAIGenerator

    model = cfg.qa_model or cfg.model
    if cfg.qa_base_url:
        return OpenAIGenerator(cfg.qa_base_url, model)
    return LocalGenerator.from_pretrained(model, dtype=cfg.dtype, device=cfg.device)


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
            _say(cfg.progress, f"Reusing generated questions in {held_file}")
        else:
            _say(cfg.progress, f"Generating {cfg.generate_questions} questions from the index...")
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
            from phi3industry.raft import _items

            try:  # chat records: their question/answer pairs also feed RAFT
                pairs = _items(p)
                items += [QAItem(q, [a]) for q, a, _ in pairs]
                continue
            except (DataFormatError, AttributeError, TypeError):
                pass
        files.append(path)
    return items, files


def _tune(
    cfg: EvalConfig, role: str, data: list[Any], out_dir: Path, stamp: dict[str, Any]
) -> Path:
    """Train one adapter unless the same one is already in ``out_dir``."""
    from phi3industry.config import TunerConfig
    from phi3industry.tuner import Tuner

    stamp_file = out_dir / "phi3industry-eval-stamp.json"
    fp = _fingerprint(stamp)
    if (
        (out_dir / "adapter_model.safetensors").is_file()
        and stamp_file.is_file()
        and json.loads(stamp_file.read_text()).get("fingerprint") == fp
    ):
        _say(cfg.progress, f"Adapter {role!r}: reusing {out_dir}")
        return out_dir
    _say(cfg.progress, f"Adapter {role!r}: tuning {cfg.max_steps} steps into {out_dir}...")
    tuner = Tuner(
        TunerConfig(
            model=cfg.model,
            output_dir=str(out_dir),
            overwrite_output_dir=True,
            max_steps=cfg.max_steps,
            learning_rate=cfg.learning_rate,
            lora_r=cfg.lora_r,
            lora_alpha=2 * cfg.lora_r,
            batch_size=cfg.train_batch_size,
            max_length=cfg.train_max_length,
            save_steps=cfg.max_steps,
            logging_steps=max(1, min(5, cfg.max_steps)),
            eval_fraction=0.1,
            seed=cfg.seed,
            progress=cfg.progress,
        )
    )
    result = tuner.train(data)
    stamp_file.write_text(json.dumps({"fingerprint": fp, "stamp": stamp}, default=str))
    _say(cfg.progress, result.summary())
    return out_dir


def _build_pipeline(
    cfg: EvalConfig, retriever: Retriever | None, adapters: dict[str, str]
) -> Pipeline:
    from phi3industry.config import PipelineConfig
    from phi3industry.pipeline import Pipeline

    pcfg = PipelineConfig(
        strategy="rag" if retriever is not None or cfg.index else "base",
        model=cfg.model,
        adapters=[f"{role}={path}" for role, path in adapters.items()] or None,
        index=None if retriever is not None else (str(cfg.index_dir) if cfg.index else None),
        k=cfg.k,
        hybrid=cfg.hybrid,
        min_score=cfg.min_score,
        max_new_tokens=cfg.max_new_tokens,
        context_tokens=cfg.context_tokens,
        system_prompt=cfg.system_prompt,
        temperature=0.0,
        batch_size=cfg.answer_batch_size,
        dtype=cfg.dtype,
        device=cfg.device,
    )
    return Pipeline(retriever=retriever, config=pcfg)


def run(config: EvalConfig | str | os.PathLike[str]) -> Report:
    """See :func:`phi3industry.evaluation.run_eval`."""
    cfg = config if isinstance(config, EvalConfig) else EvalConfig.from_yaml(os.fspath(config))
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    retriever = _open_index(cfg)
    generated_train, heldout = _questions(cfg, retriever)
    _say(cfg.progress, f"{len(heldout)} held-out questions")
    train_items, train_files = _training_items(cfg, generated_train)
    held_keys = {i.question.strip().lower() for i in heldout}
    leaked = [i for i in train_items if i.question.strip().lower() in held_keys]
    if leaked:
        _say(cfg.progress, f"Dropping {len(leaked)} training question(s) that are held out.")
        train_items = [i for i in train_items if i.question.strip().lower() not in held_keys]

    adapters: dict[str, str] = {}
    roles = cfg.adapter_roles
    if roles and not train_items and not (cfg.adapter and set(roles) <= {"finetuned"}):
        raise ConfigError(
            f"Strategies {', '.join(s for s in cfg.strategies if EVAL_STRATEGIES[s][1])} need "
            "training questions: set 'train' (QA or chat JSONL), or leave 'qa' unset so that "
            "questions are generated and split."
        )
    tune_stamp = {
        k: v
        for k, v in cfg.to_dict().items()
        if k in ("model", "max_steps", "learning_rate", "lora_r", "train_batch_size", "seed")
        or k == "train_max_length"
    }
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
        from phi3industry.models import load_tokenizer
        from phi3industry.raft import make_raft_examples, write_raft_jsonl

        kind = cfg.raft_distractor_type if role == "raft" else "random"
        examples = make_raft_examples(
            retriever,
            train_items,
            n_distractors=cfg.raft_distractors,
            p_oracle=cfg.raft_p_oracle,
            distractors=kind,
            seed=cfg.seed,
            system_prompt=cfg.system_prompt,
            tokenizer=load_tokenizer(cfg.model),
            context_tokens=cfg.context_tokens,
            max_length=cfg.train_max_length,
        )
        raft_file = write_raft_jsonl(examples, out / f"{role}_train.jsonl")
        kept = sum(e.oracle_kept for e in examples)
        _say(
            cfg.progress,
            f"RAFT ({kind} distractors): {len(examples)} examples, oracle shown in {kept}, "
            f"written to {raft_file}",
        )
        stamp = {
            **tune_stamp,
            "role": role,
            "records": [e.to_record() for e in examples],
        }
        records = [e.to_record() for e in examples]
        adapters[role] = str(_tune(cfg, role, records, out / "adapters" / role, stamp))

    pipe = _build_pipeline(cfg, retriever, adapters)
    report = evaluate(
        pipe,
        heldout,
        cfg.strategies,
        adapters={role: role for role in adapters},
        cache_dir=out / _RUNS,
        n_bootstrap=cfg.n_bootstrap,
        seed=cfg.seed,
        progress=cfg.progress,
        batch_size=cfg.answer_batch_size,
    )
    report.settings["eval_config"] = cfg.to_dict()
    report.settings["train_questions"] = len(train_items)
    report.settings["wall_seconds"] = round(time.perf_counter() - started, 1)
    paths = report.save(out)
    _say(cfg.progress, f"\n{report.table()}\n\nReport: {paths['markdown']}")
    return report
