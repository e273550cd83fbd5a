"""Retrieval quality: the plain LangChain recipe vs ours, side by side, same embedder.

Sets (all offline, from Debian packages; ``apt-get install python-django-doc sqlite3-doc
debian-faq debian-reference-en``):

* ``django``: the Django docs (faq/, intro/, topics/, howto/, ref/) and the questions of its
  FAQ (each ``<h2>`` of faq/*.html). Gold: a hit from the question's FAQ page whose span
  overlaps the question's section (from the question to the next one).
* ``sqlite``: the SQLite docs (every page under 120 kB, faq.html included) and the ``(N)``
  questions of faq.html; gold as above. faq.html lists its questions at the top before
  answering them: the gold section is the answer's (from the question's second occurrence,
  after the list, to the next question's), not the list entry. (Until 2026-12-07 it was the
  list entry, which every FAQ question hit through the one chunk holding the list: the
  SQLite and Debian figures before that date are void.)
* ``debian``: the Debian Reference (debian-reference-en) and the Debian FAQ (debian-faq,
  HTML); the questions are the FAQ's section headings that end in "?"; gold as above (each
  chapter lists its questions at the top too).
* ``scenarios``: 60 situation-style queries over the Django docs (``bench/data/
  scenarios-django.jsonl``), 3 to 8 sentences each, written for this benchmark by the author
  of the change: each describes what a developer or an ops person is facing (an error they
  see, what they tried, what they want) without asking the question outright, and lists the
  1 to 3 pages of the Django docs that someone answering would need (gold, document level:
  recall@k is the share of a query's gold pages among the sources of the top k hits). They
  were written from the pages' topics before any system was run on them, and not changed
  afterwards.

FAQ questions are headings, so contextual headers (which put the heading path in what is
matched) help on them more than they would on queries worded unlike the docs: the scenario
set is the check for that.

Systems (one embedder, the bundled all-MiniLM-L6-v2):

* ``langchain``: RecursiveCharacterTextSplitter(1000, 100) + HuggingFaceEmbeddings (torch) +
  ``Chroma.from_documents``; ``similarity_search(query, k)``. Text from our loader (same
  text, so spans compare).
* ``ours``: ``Retriever`` with the default int8 ONNX embedder. ``ours default``: the
  defaults (contextual headers, hybrid search, BM25 weighted by query length, two hits per
  document before the others' (``max_per_source=2``)); beside it dense alone, both without
  the per-document spread (``max_per_source=None``), hybrid with equal weights, both without
  contextual headers, and for long queries ``long_query`` truncate instead of pool; every
  arm keeps the defaults it does not name. With ``--reranker DIR`` a cross-encoder
  over the hybrid top 30; with ``--fp32`` the same index embedded in fp32 by torch and by
  plain ONNX (point 5 of #14); the RRF constant sweep (``--rrf``).

Recall does not depend on machine load. Indexes are kept in ``--work`` (default
``bench-out/quality``) and reused by a later run.

Usage::

    python bench/bench_retrieval_quality.py --sets django,sqlite,debian,scenarios
    python bench/bench_retrieval_quality.py --sets sqlite --limit 40   # a quick subset
"""

from __future__ import annotations

import argparse
import dataclasses
import html
import json
import re
import shutil
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DJANGO_HTML = Path("/usr/share/doc/python-django-doc/html")
DJANGO_DIRS = ("faq", "intro", "topics", "howto", "ref")
SQLITE_HTML = Path("/usr/share/doc/sqlite3")
SQLITE_PAGE_LIMIT = 120_000
DEBIAN_REFERENCE = Path("/usr/share/doc/debian-reference-en/docs")
DEBIAN_FAQ = Path("/usr/share/doc/debian/FAQ")
DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "results"
KS = (5, 10)

# --------------------------------------------------------------------------- sets


def _strip(raw: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", raw)).replace("¶", " ").split())


def _span_questions(page: Path, questions: list[str]) -> list[dict[str, Any]]:
    """Each question's gold: its page, from where the question is to where the next one is."""
    from phi3industry.retrieval.documents import load_document

    text = load_document(page).text
    flat = text.lower()
    keys = [question.lower()[:60] for question in questions]
    # A page that lists its questions at the top (SQLite's and Debian's FAQs) holds each one
    # twice: the answer's section starts at the second, found in order after the list
    # (a question worded otherwise in the list has one occurrence and is left out).
    twice = [key for key in keys if flat.count(key) >= 2]
    listed = len(twice) * 2 > len(keys)
    body = max(flat.find(key) + len(key) for key in twice) if listed else 0
    found = []
    for question, key in zip(questions, keys, strict=True):
        start = flat.find(key, body)
        if start >= 0:
            found.append((start, question))
            if listed:
                body = start + len(key)
    found.sort()
    items = []
    for i, (start, question) in enumerate(found):
        end = found[i + 1][0] if i + 1 < len(found) else len(text)
        items.append({"query": question, "gold": [[page.as_posix(), start, end]]})
    return items


def django_set(limit: int | None) -> tuple[list[Path], list[dict[str, Any]]]:
    files = sorted(p for d in DJANGO_DIRS for p in (DJANGO_HTML / d).rglob("*.html"))
    items: list[dict[str, Any]] = []
    for page in sorted((DJANGO_HTML / "faq").glob("*.html")):
        raw = re.findall(r"<h2>(.*?)<a class=\"headerlink\"", page.read_text("utf-8"), re.S)
        questions = [q for q in (_strip(r) for r in raw) if "?" in q]
        items += _span_questions(page, questions)
    # One index serves both Django sets: a subset keeps the gold pages of both.
    return _limit(files, items + _scenarios(), limit), items


def _scenarios() -> list[dict[str, Any]]:
    items = []
    for line in (DATA / "scenarios-django.jsonl").read_text("utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            gold = [[(DJANGO_HTML / g).as_posix(), None, None] for g in row["gold"]]
            items.append({"query": row["query"], "gold": gold})
    return items


def sqlite_set(limit: int | None) -> tuple[list[Path], list[dict[str, Any]]]:
    files = [p for p in sorted(SQLITE_HTML.glob("*.html")) if p.stat().st_size < SQLITE_PAGE_LIMIT]
    faq = SQLITE_HTML / "faq.html"
    if faq not in files:
        files.append(faq)
    raw = re.findall(r"<b>\s*\(\d+\)\s*(.*?)</b>", faq.read_text("utf-8"), re.S)
    items = _span_questions(faq, [_strip(r) for r in raw])
    return _limit(files, items, limit), items


def debian_set(limit: int | None) -> tuple[list[Path], list[dict[str, Any]]]:
    faq = sorted(DEBIAN_FAQ.glob("*.en.html"))
    files = sorted(DEBIAN_REFERENCE.glob("*.en.html")) + faq
    items: list[dict[str, Any]] = []
    for page in faq:
        raw = re.findall(r'<h2 class="title"[^>]*>(?:<a [^>]*></a>)?(.*?)</h2>', page.read_text())
        questions = [re.sub(r"^[\d.]+\s*", "", _strip(r)) for r in raw]
        items += _span_questions(page, [q for q in questions if q.endswith("?")])
    return _limit(files, items, limit), items


def scenario_set(limit: int | None) -> tuple[list[Path], list[dict[str, Any]]]:
    files, _ = django_set(limit)
    return files, _scenarios()


SETS: dict[str, Callable[[int | None], tuple[list[Path], list[dict[str, Any]]]]] = {
    "django": django_set,
    "sqlite": sqlite_set,
    "debian": debian_set,
    "scenarios": scenario_set,
}
#: Sets that share an index (the scenarios are over the Django docs).
CORPUS_OF = {"django": "django", "sqlite": "sqlite", "debian": "debian", "scenarios": "django"}


def _limit(files: list[Path], items: list[dict[str, Any]], limit: int | None) -> list[Path]:
    """A subset of ``limit`` files for quick runs, the gold pages always kept."""
    if limit is None or limit >= len(files):
        return files
    gold = {g[0] for item in items for g in item["gold"]}
    keep = [f for f in files if f.as_posix() in gold]
    rest = [f for f in files if f.as_posix() not in gold]
    step = max(1, len(rest) // max(1, limit - len(keep)))
    return sorted(keep + rest[::step][: max(0, limit - len(keep))])


# --------------------------------------------------------------------------- scoring

Ranked = list[tuple[str, int, int]]  # (source, start, end), best first


def _is_gold(hit: tuple[str, int, int], gold: list[Any]) -> int | None:
    source, start, end = hit
    for i, (page, g_start, g_end) in enumerate(gold):
        if source == page and (g_start is None or (start < g_end and end > g_start)):
            return i
    return None


def score(ranked: list[Ranked], items: list[dict[str, Any]]) -> dict[str, float]:
    """recall@5, recall@10 (share of gold items found in the top k) and MRR."""
    out: dict[str, list[float]] = {f"recall@{k}": [] for k in KS}
    out["mrr"] = []
    for hits, item in zip(ranked, items, strict=True):
        gold = item["gold"]
        matches = [_is_gold(h, gold) for h in hits]
        for k in KS:
            found = {m for m in matches[:k] if m is not None}
            out[f"recall@{k}"].append(len(found) / len(gold))
        first = next((i for i, m in enumerate(matches) if m is not None), None)
        out["mrr"].append(0.0 if first is None else 1.0 / (first + 1))
    return {name: round(statistics.fmean(values), 4) for name, values in out.items()}


# --------------------------------------------------------------------------- systems


def langchain_index(files: list[Path], work: Path) -> Any:
    """The plain LangChain recipe (built once into ``work``, reused afterwards)."""
    from langchain_chroma import Chroma
    from langchain_core.documents import Document
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    from phi3industry.retrieval.documents import load_document
    from phi3industry.retrieval.embeddings import bundled_model_dir

    embeddings = HuggingFaceEmbeddings(model_name=str(bundled_model_dir()))
    done = work / "DONE"
    if done.exists():
        return Chroma(persist_directory=str(work), embedding_function=embeddings)
    shutil.rmtree(work, ignore_errors=True)
    started = time.perf_counter()
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=1000, chunk_overlap=100, add_start_index=True
    )
    docs = splitter.split_documents(
        [
            Document(page_content=load_document(p).text, metadata={"source": p.as_posix()})
            for p in files
        ]
    )
    store = Chroma.from_documents(docs, embeddings, persist_directory=str(work))
    done.write_text(json.dumps({"chunks": len(docs), "seconds": time.perf_counter() - started}))
    return store


def langchain_search(store: Any, query: str, k: int) -> Ranked:
    out = []
    for doc in store.similarity_search(query, k=k):
        start = int(doc.metadata.get("start_index", 0))
        out.append((doc.metadata["source"], start, start + len(doc.page_content)))
    return out


def our_index(files: list[Path], work: Path, **settings: Any) -> Any:
    """Our Retriever over ``files`` (synced: a second run re-embeds nothing)."""
    from phi3industry import Retriever, RetrieverConfig

    staged = work.parent / (work.name + "-files.txt")
    retriever = Retriever(RetrieverConfig(path=str(work), progress=False, **settings))
    wanted = sorted(p.as_posix() for p in files)
    if not staged.exists() or staged.read_text().splitlines() != wanted:
        started = time.perf_counter()
        report = retriever.sync(files, delete_missing=False)
        print(f"  {work.name}: {report.summary().splitlines()[0]}", flush=True)
        staged.write_text("\n".join(wanted))
        (work / "ingest.json").write_text(
            json.dumps({"seconds": time.perf_counter() - started, **report.to_dict()})
        )
    return retriever


def our_search(retriever: Any, query: str, k: int, **kwargs: Any) -> Ranked:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hits = retriever.search(query, k=k, **kwargs)
    return [(h.source, h.span[0], h.span[1]) for h in hits]


# --------------------------------------------------------------------------- run


def run_set(
    name: str, args: argparse.Namespace, indexes: dict[str, Any]
) -> dict[str, dict[str, float]]:
    files, items = SETS[name](args.limit)
    if args.questions:
        items = items[: args.questions]
    corpus = CORPUS_OF[name]
    print(f"{name}: {len(files)} files, {len(items)} queries", flush=True)
    work = Path(args.work)
    k = max(KS)

    def index(key: str, build: Callable[[], Any]) -> Any:
        if key not in indexes:
            indexes[key] = build()
        return indexes[key]

    systems: dict[str, Callable[[str], Ranked]] = {}
    tag = f"-{args.limit}" if args.limit else ""
    lc = index(f"{corpus}/lc", lambda: langchain_index(files, work / f"{corpus}{tag}-langchain"))
    systems["langchain"] = lambda q: langchain_search(lc, q, k)
    plain = index(
        f"{corpus}/plain",
        lambda: our_index(files, work / f"{corpus}{tag}-plain", contextual_headers=False),
    )
    ctx = index(
        f"{corpus}/ctx",
        lambda: our_index(files, work / f"{corpus}{tag}-ctx", contextual_headers=True),
    )
    # Our defaults: contextual headers, hybrid search with BM25 weighted by query length.
    systems["ours default (hybrid)"] = lambda q: our_search(ctx, q, k, hybrid=True)
    systems["ours dense"] = lambda q: our_search(ctx, q, k, hybrid=False)

    def variant(base: Any, **settings: Any) -> Any:
        # The same index, other search settings (the defaults it does not name kept).
        return type(base)(dataclasses.replace(base.config, **settings))

    equal = variant(ctx, bm25_weight=1.0)
    systems["ours hybrid, equal weights"] = lambda q: our_search(equal, q, k, hybrid=True)
    unspread = variant(ctx, max_per_source=None)
    systems["ours default, max_per_source=None"] = lambda q: our_search(unspread, q, k)
    systems["ours dense, max_per_source=None"] = lambda q: our_search(unspread, q, k, hybrid=False)
    systems["ours dense, no headers"] = lambda q: our_search(plain, q, k, hybrid=False)
    systems["ours hybrid, no headers"] = lambda q: our_search(plain, q, k, hybrid=True)
    truncating = variant(ctx, long_query="truncate")
    systems["ours dense, truncated query"] = lambda q: our_search(truncating, q, k, hybrid=False)
    systems["ours default, truncated query"] = lambda q: our_search(truncating, q, k, hybrid=True)
    for rrf in args.rrf:
        tuned = variant(ctx, rrf_k=rrf)
        systems[f"ours default, rrf_k={rrf}"] = lambda q, r=tuned: our_search(r, q, k, hybrid=True)
    if args.fp32:
        for backend, label in (("torch", "fp32"), ("onnx", "onnx-fp32")):
            full = index(
                f"{corpus}/{label}",
                lambda b=backend, lab=label: our_index(
                    files,
                    work / f"{corpus}{tag}-{lab}",
                    contextual_headers=True,
                    embedding_backend=b,
                ),
            )
            systems[f"ours dense, {backend} fp32"] = lambda q, r=full: our_search(
                r, q, k, hybrid=False
            )
            systems[f"ours default, {backend} fp32"] = lambda q, r=full: our_search(
                r, q, k, hybrid=True
            )
    if args.reranker:
        reranking = variant(ctx, reranker=args.reranker)
        systems["ours default +reranker"] = lambda q: our_search(reranking, q, k, hybrid=True)
    results: dict[str, dict[str, float]] = {}
    for system, search in systems.items():
        started = time.perf_counter()
        ranked = [search(item["query"]) for item in items]
        results[system] = {
            **score(ranked, items),
            "ms_per_query": round(1000 * (time.perf_counter() - started) / len(items), 1),
        }
        print(f"  {system:38s} {results[system]}", flush=True)
    return results


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Retrieval quality: the LangChain recipe vs ours",
        "",
        f"Embedder: bundled all-MiniLM-L6-v2 (ours: {report['backend']}, LangChain: torch). "
        "recall@k: share of a query's gold items among the top k hits; MRR of the first gold "
        "hit. ms/query: wall time on a shared 2-core machine, for orientation only.",
        "",
        "Corpora: "
        + (
            "whole (every page of each set's docs)."
            if report.get("limit") is None
            else f"subsets of {report['limit']} files (every gold page kept)."
        )
        + " Under each set's heading: the most any system can reach against LangChain there "
        "(recall@10 cannot pass 1).",
        "",
    ]
    for name, result in report["sets"].items():
        base = result["systems"]["langchain"]
        ceiling = 1 / base["recall@10"] if base["recall@10"] else float("nan")
        lines += [
            f"## {name} ({result['queries']} queries, {result['files']} files)",
            "",
            f"Ceiling: recall@10 1.000 = {ceiling:.2f}x LangChain.",
            "",
            "| system | recall@5 | recall@10 | MRR | recall@10 vs LangChain | ms/query |",
            "|---|---|---|---|---|---|",
        ]
        for system, m in result["systems"].items():
            ratio = m["recall@10"] / base["recall@10"] if base["recall@10"] else float("nan")
            lines.append(
                f"| {system} | {m['recall@5']:.3f} | {m['recall@10']:.3f} | {m['mrr']:.3f} | "
                f"{ratio:.2f}x | {m['ms_per_query']} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="django,sqlite,debian,scenarios")
    parser.add_argument("--limit", type=int, default=None, help="files per corpus (subset)")
    parser.add_argument("--questions", type=int, default=None, help="queries per set")
    parser.add_argument("--work", default="bench-out/quality")
    parser.add_argument("--fp32", action="store_true", help="also a torch fp32 index")
    parser.add_argument("--reranker", default=None, help="cross-encoder dir or hub id")
    parser.add_argument("--rrf", type=int, nargs="*", default=[], help="RRF constants to try")
    parser.add_argument("--results", action="store_true", help="write bench/results/")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    indexes: dict[str, Any] = {}
    report: dict[str, Any] = {"backend": "onnx-int8", "sets": {}}
    for name in args.sets.split(","):
        files, items = SETS[name](args.limit)
        systems = run_set(name, args, indexes)
        n = min(len(items), args.questions or len(items))
        report["sets"][name] = {"files": len(files), "queries": n, "systems": systems}
        report["limit"] = args.limit
        text = markdown(report)
        stem = "report-" + args.sets.replace(",", "-")
        (Path(args.work) / f"{stem}.json").write_text(json.dumps(report, indent=2))
        (Path(args.work) / f"{stem}.md").write_text(text)
        if args.results:  # after each set: a long run leaves what it finished
            RESULTS.mkdir(exist_ok=True)
            (RESULTS / "retrieval-quality.json").write_text(json.dumps(report, indent=2))
            (RESULTS / "retrieval-quality.md").write_text(text)
    print(markdown(report))


if __name__ == "__main__":
    main()
