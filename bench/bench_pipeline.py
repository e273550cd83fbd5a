"""Pipeline and server benchmark, side by side in one run on one model.

1. Latency breakdown of ``Pipeline.stream`` (retrieve, prompt build, first token, total)
   and its decode speed, against bare ``model.generate`` on the very same prompt.
   Targets: first token <= 1.1 x (bare first token + retrieval); tokens/s >= 0.95 x bare.
2. The OpenAI-compatible server under 16 concurrent clients on loopback for a bounded time:
   errors (target 0) and p50/p99 latency.

Writes bench/results/pipeline.json and bench/results/pipeline.md.

    python bench/bench_pipeline.py [--model smollm2-135m-instruct] [--questions 5]
        [--max-new-tokens 48] [--server-seconds 60] [--clients 16] [--threads N]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import openai
import torch
from _stats import pct

from phi3industry import Pipeline, PipelineConfig, Retriever, RetrieverConfig
from phi3industry.generation.local import _first_token_timer
from phi3industry.serving import BackgroundServer, ServerConfig

ROOT = Path(__file__).resolve().parent
KB = ROOT.parent / "phi3industry" / "assets" / "sample_kb"
KEY = "bench-key-0123456789"


def bare_generate(pipe: Pipeline, messages: list[dict[str, str]], max_new: int) -> dict:
    """model.generate on the rendered prompt: first-token time and decode tokens/s."""
    gen = pipe.generator
    inputs = gen._encode([gen.render(messages)])
    first: dict[str, float] = {}
    start = time.perf_counter()
    with torch.inference_mode():
        out = gen.model.generate(
            **inputs,
            generation_config=gen._generation_config(max_new, 0.0, 1.0),
            streamer=_first_token_timer(start, first),
        )
    total = time.perf_counter() - start
    n = int(out.shape[1] - inputs["input_ids"].shape[1])
    ids = out[0, inputs["input_ids"].shape[1] :].tolist()
    n = next((i for i, t in enumerate(ids) if t in gen.stop_ids), n)
    return {
        "first_token": first.get("first", total),
        "total": total,
        "tokens": n,
        "tokens_per_s": (n - 1) / max(total - first.get("first", 0.0), 1e-9) if n > 1 else 0.0,
    }


def bench_pipeline(pipe: Pipeline, questions: list[str], max_new: int) -> dict:
    rows = []
    for q in questions:
        pipe.invoke(q)  # warm caches (tokenizer, embedder) for a fair first-token figure
        start = time.perf_counter()
        answer = None
        for chunk in pipe.stream(q):
            answer = chunk if answer is None else answer + chunk
        wall = time.perf_counter() - start
        assert answer is not None and answer.last
        t = answer.timings
        n = answer.usage["completion_tokens"]
        messages = pipe.prompt(q)  # what the model was given, for the bare baseline
        bare = bare_generate(pipe, messages, max_new)
        decode_s = max(t["total"] - t["first_token"], 1e-9)
        rows.append(
            {
                "question": q,
                "sources": len(answer.sources),
                "prompt_tokens": answer.usage["prompt_tokens"],
                "completion_tokens": n,
                "retrieve_s": t["retrieve"],
                "prompt_s": t["prompt"],
                "first_token_s": t["first_token"],
                "total_s": wall,
                "tokens_per_s": (n - 1) / decode_s if n > 1 else 0.0,
                "bare_first_token_s": bare["first_token"],
                "bare_total_s": bare["total"],
                "bare_tokens": bare["tokens"],
                "bare_tokens_per_s": bare["tokens_per_s"],
            }
        )
        print(
            f"  retrieve {t['retrieve'] * 1e3:6.1f} ms  prompt {t['prompt'] * 1e3:5.1f} ms  "
            f"first {t['first_token'] * 1e3:7.1f} ms (bare {bare['first_token'] * 1e3:7.1f})  "
            f"{rows[-1]['tokens_per_s']:5.1f} tok/s (bare {bare['tokens_per_s']:5.1f})",
            flush=True,
        )

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rows)

    first_ratio = med("first_token_s") / (med("bare_first_token_s") + med("retrieve_s"))
    speed_ratio = med("tokens_per_s") / max(med("bare_tokens_per_s"), 1e-9)
    return {
        "rows": rows,
        "median": {
            k: med(k)
            for k in (
                "retrieve_s",
                "prompt_s",
                "first_token_s",
                "total_s",
                "tokens_per_s",
                "bare_first_token_s",
                "bare_tokens_per_s",
            )
        },
        "first_token_ratio": first_ratio,
        "first_token_target_met": first_ratio <= 1.1,
        "tokens_per_s_ratio": speed_ratio,
        "tokens_per_s_target_met": speed_ratio >= 0.95,
    }


def bench_server(pipe: Pipeline, questions: list[str], clients: int, seconds: float) -> dict:
    cfg = ServerConfig(port=0, api_key=KEY)
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    with BackgroundServer(pipe, cfg) as server:
        stop_at = time.monotonic() + seconds

        def client(i: int) -> None:
            c = openai.OpenAI(base_url=server.url, api_key=KEY, max_retries=0, timeout=600)
            n = 0
            while time.monotonic() < stop_at:
                q = questions[(i + n) % len(questions)]
                n += 1
                t0 = time.perf_counter()
                try:
                    if n % 2:
                        stream = c.chat.completions.create(
                            model="phi3industry",
                            messages=[{"role": "user", "content": q}],
                            max_tokens=16,
                            stream=True,
                        )
                        for _ in stream:
                            pass
                    else:
                        c.chat.completions.create(
                            model="phi3industry",
                            messages=[{"role": "user", "content": q}],
                            max_tokens=16,
                        )
                    with lock:
                        latencies.append(time.perf_counter() - t0)
                except Exception as exc:
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")

        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(client, range(clients)))
        elapsed = time.perf_counter() - start
    return {
        "clients": clients,
        "seconds": elapsed,
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_s": pct(latencies, 50),
        "p99_s": pct(latencies, 99),
        "requests_per_s": len(latencies) / elapsed,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--questions", type=int, default=5)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--server-seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    work = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    retriever = Retriever(RetrieverConfig(path=str(work / "index"), progress=False))
    retriever.sync([str(KB / "docs")])
    questions = [
        json.loads(line)["question"]
        for line in (KB / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ][: args.questions]
    pipe = Pipeline(
        retriever=retriever,
        model=args.model,
        config=PipelineConfig(max_new_tokens=args.max_new_tokens, min_score=None),
    )
    print(f"pipeline vs bare generate on {args.model} ({len(questions)} questions)", flush=True)
    pipeline_result = bench_pipeline(pipe, questions, args.max_new_tokens)
    print(f"server: {args.clients} clients for {args.server_seconds:.0f} s", flush=True)
    server_result = bench_server(pipe, questions, args.clients, args.server_seconds)
    result = {
        "model": args.model,
        "max_new_tokens": args.max_new_tokens,
        "torch_threads": torch.get_num_threads(),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "device": str(next(pipe.generator.model.parameters()).device),
        "pipeline": pipeline_result,
        "server": server_result,
    }
    out = ROOT / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    m = pipeline_result["median"]
    s = server_result
    md = [
        f"# Pipeline benchmark ({args.model}, {result['device']}, "
        f"{result['torch_threads']} torch threads)",
        "",
        "Medians over the questions; the same prompt is given to bare `model.generate`.",
        "",
        "| | retrieve | prompt build | first token | total | tokens/s |",
        "|---|---|---|---|---|---|",
        f"| Pipeline.stream | {m['retrieve_s'] * 1e3:.1f} ms | {m['prompt_s'] * 1e3:.1f} ms | "
        f"{m['first_token_s'] * 1e3:.1f} ms | {m['total_s'] * 1e3:.0f} ms | "
        f"{m['tokens_per_s']:.1f} |",
        f"| bare model.generate | - | - | {m['bare_first_token_s'] * 1e3:.1f} ms | - | "
        f"{m['bare_tokens_per_s']:.1f} |",
        "",
        f"- first token / (bare first token + retrieval) = "
        f"{pipeline_result['first_token_ratio']:.2f} (target <= 1.1: "
        f"{'met' if pipeline_result['first_token_target_met'] else 'NOT met'})",
        f"- tokens/s ratio = {pipeline_result['tokens_per_s_ratio']:.2f} (target >= 0.95: "
        f"{'met' if pipeline_result['tokens_per_s_target_met'] else 'NOT met'})",
        "",
        f"## Server: {s['clients']} concurrent clients, {s['seconds']:.0f} s on loopback",
        "",
        f"- requests: {s['requests']}, errors: {s['errors']}",
        f"- latency p50 {s['p50_s']:.2f} s, p99 {s['p99_s']:.2f} s; "
        f"{s['requests_per_s']:.2f} requests/s (generation is serialized)",
        "",
    ]
    (out / "pipeline.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
