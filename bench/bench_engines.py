"""Our server with local generation, in front of vLLM, vLLM alone (and llama.cpp), side by side.

One run, same model, same questions, same token budget: for each target and each number of
concurrent clients (``--clients 1,8,32``), the clients stream chat completions on loopback for
``--seconds``; each records the time to its first token and to the end, and the completion
tokens the server reports. Per row: aggregate completion tokens/s, first-token and total
latency p50/p99, requests and errors. Targets:

- ``local``: ``phi3industry serve`` generating in-process (one model, requests queue);
- ``ours+vllm``: ``phi3industry serve --endpoint.base-url`` in front of vLLM;
- ``vllm``: vLLM alone, the adapter as the model, sent the very messages our pipeline sends
  it (``Pipeline.prompt``: system prompt, sources where the strategy retrieves, question),
  so that both do the same work and give the same greedy answers; ``--vllm-prompt question``
  sends the question as the only message instead (shorter prompts, longer answers: not the
  same work);
- ``ours+llamacpp`` / ``llamacpp``: the same with llama.cpp's server (``--gguf FILE``).

The issue's targets: at 16 and 32 clients, ``ours+vllm`` at least 0.9x ``vllm`` and 2.5x
``local`` in tokens/s, with 0 errors. Writes bench/results/engines.{json,md}
(``--out NAME`` for another name). vLLM runs from its own venv (``--vllm-python``, default as
``phi3industry engine vllm``), started by the launcher with the adapter as a LoRA module.

    python bench/bench_engines.py --adapter kb=out/adapter [--strategy finetuned]
        [--clients 1,8,32] [--seconds 60] [--max-tokens 64] [--targets local,ours+vllm,vllm]
        [--vllm-dtype float32] [--gguf model.gguf --llamacpp-python PY]
    python bench/bench_engines.py --smoke     # seconds, to check that it runs
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from _stats import pct

ROOT = Path(__file__).resolve().parent
KB = ROOT.parent / "phi3industry" / "assets" / "sample_kb"
TARGETS = ("local", "ours+vllm", "vllm", "ours+llamacpp", "llamacpp")


@dataclass
class Row:
    """One target at one concurrency."""

    target: str
    clients: int
    seconds: float = 0.0
    requests: int = 0
    errors: int = 0
    tokens: int = 0
    first: list[float] = field(default_factory=list)
    total: list[float] = field(default_factory=list)
    error_samples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "clients": self.clients,
            "seconds": round(self.seconds, 2),
            "requests": self.requests,
            "errors": self.errors,
            "completion_tokens": self.tokens,
            "tokens_per_s": self.tokens / self.seconds if self.seconds else 0.0,
            "first_token_p50_s": pct(self.first, 50),
            "first_token_p99_s": pct(self.first, 99),
            "total_p50_s": pct(self.total, 50),
            "total_p99_s": pct(self.total, 99),
            "error_samples": self.error_samples[:3],
        }


async def one_request(
    http: httpx.AsyncClient,
    url: str,
    model: str,
    question: str | list[dict[str, str]],
    max_tokens: int,
    row: Row,
) -> None:
    messages = [{"role": "user", "content": question}] if isinstance(question, str) else question
    body = {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first: float | None = None
    tokens = deltas = 0
    try:
        async with http.stream("POST", f"{url}/chat/completions", json=body) as r:
            if r.status_code != 200:
                raise RuntimeError(f"HTTP {r.status_code}: {(await r.aread())[:200]!r}")
            async for line in r.aiter_lines():
                if not line.startswith("data: ") or line == "data: [DONE]":
                    continue
                data = json.loads(line.removeprefix("data: "))
                if "error" in data:
                    raise RuntimeError(str(data["error"])[:200])
                for choice in data.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        deltas += 1
                        if first is None:
                            first = time.perf_counter() - start
                if data.get("usage"):
                    tokens = int(data["usage"].get("completion_tokens") or 0)
    except Exception as exc:
        row.errors += 1
        row.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])
        return
    row.requests += 1
    row.tokens += tokens or deltas  # a server that sends no usage: one delta ~ one token
    row.total.append(time.perf_counter() - start)
    if first is not None:
        row.first.append(first)


async def load(
    url: str,
    model: str,
    questions: list[str] | list[list[dict[str, str]]],
    clients: int,
    seconds: float,
    max_tokens: int,
) -> Row:
    """``clients`` concurrent streaming clients for ``seconds``; requests in flight finish."""
    row = Row(target="", clients=clients)
    stop_at = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=clients + 4, max_keepalive_connections=clients + 4)

    async def client(i: int, http: httpx.AsyncClient) -> None:
        n = i
        while time.monotonic() < stop_at:
            await one_request(http, url, model, questions[n % len(questions)], max_tokens, row)
            n += 1

    start = time.perf_counter()
    async with httpx.AsyncClient(timeout=900, limits=limits) as http:
        await asyncio.gather(*(client(i, http) for i in range(clients)))
    row.seconds = time.perf_counter() - start
    return row


def wait_healthy(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:  # /v1/models: every target serves it (llama.cpp's server has no /health)
            if httpx.get(f"{url}/models", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"{proc.args!r} did not become healthy; see {log}")
        time.sleep(1.0)


def start(cmd: list[str], log: Path, url: str, timeout: float = 900) -> subprocess.Popen[bytes]:
    print("starting:", " ".join(cmd), flush=True)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    wait_healthy(url, proc, log, timeout)
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def ours(args: argparse.Namespace, work: Path, name: str, endpoint: str | None) -> tuple[Any, str]:
    from phi3industry.serving.engine import free_port

    port = free_port()
    cmd = [sys.executable, "-m", "phi3industry", "serve", "--model", args.model]
    cmd += ["--index", str(work / "index"), "--strategy", args.strategy, "--port", str(port)]
    cmd += ["--max-new-tokens", str(args.max_tokens), "--answer-mode", "generate"]
    cmd += ["--max-queue", "1024", "--request-timeout", "3600"]
    if args.adapter:
        cmd += ["--adapter", args.adapter]
    if endpoint:
        cmd += ["--endpoint.base-url", endpoint, "--endpoint.timeout", "3600"]
    url = f"http://127.0.0.1:{port}/v1"
    return start(cmd, work / f"{name}.log", url), url


def pipeline_prompts(
    args: argparse.Namespace, work: Path, engine_url: str, questions: list[str]
) -> list[list[dict[str, str]]]:
    """The messages ``phi3industry serve --endpoint.base-url`` sends the engine per question."""
    from phi3industry.pipeline.config import EndpointConfig, PipelineConfig
    from phi3industry.pipeline.pipeline import Pipeline

    cfg = PipelineConfig(
        model=args.model,
        index=str(work / "index"),
        strategy=args.strategy,
        adapter=args.adapter,
        answer_mode="generate",
        max_new_tokens=args.max_tokens,
        endpoint=EndpointConfig(base_url=engine_url),
    )
    pipe = Pipeline(config=cfg)
    return [pipe.prompt(q) for q in questions]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m-instruct")
    ap.add_argument("--adapter", default=None, help="'name=DIR': served as a vLLM LoRA module")
    ap.add_argument("--strategy", default=None, help="default: finetuned with --adapter, else base")
    ap.add_argument("--clients", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--warmup", type=float, default=10.0)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--targets", default="local,ours+vllm,vllm")
    ap.add_argument("--vllm-python", default=None)
    ap.add_argument("--vllm-dtype", default="float32")
    ap.add_argument("--vllm-memory", type=float, default=0.1, help="--gpu-memory-utilization")
    ap.add_argument("--vllm-args", default="--enforce-eager", help="more vLLM flags, comma-sep.")
    ap.add_argument("--gguf", default=None, help="GGUF file for the llama.cpp targets")
    ap.add_argument("--llamacpp-python", default=None)
    ap.add_argument(
        "--vllm-prompt",
        choices=("pipeline", "question"),
        default="pipeline",
        help="what the vllm target sends: our pipeline's messages, or the bare question",
    )
    ap.add_argument("--out", default="engines")
    ap.add_argument("--smoke", action="store_true", help="1 and 2 clients, 3 s, 8 tokens")
    args = ap.parse_args()
    if args.smoke:
        args.clients, args.seconds, args.warmup, args.max_tokens = "1,2", 3.0, 0.0, 8
    args.strategy = args.strategy or ("finetuned" if args.adapter else "base")
    targets = [t.strip() for t in args.targets.split(",") if t.strip()]
    unknown = sorted(set(targets) - set(TARGETS))
    if unknown:
        ap.error(f"unknown target(s) {unknown}; choose from {', '.join(TARGETS)}")
    levels = [int(c) for c in args.clients.split(",")]

    from phi3industry.generation.adapters import parse_adapter_spec
    from phi3industry.serving.config import VLLMConfig
    from phi3industry.serving.engine import VLLMEngine, free_port, vllm_python
    from phi3industry.tuning.gguf import llama_cpp_python

    questions = [
        json.loads(line)["question"]
        for line in (KB / "questions.jsonl").read_text(encoding="utf-8").splitlines()
        if line.strip()
    ]
    work = Path(tempfile.mkdtemp(prefix="bench-engines-"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "phi3industry",
            "ingest",
            str(KB / "docs"),
            "--index",
            str(work / "index"),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    adapter_name = parse_adapter_spec(args.adapter)[0] if args.adapter else None
    engine_model = adapter_name if "finetuned" in args.strategy else args.model
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, tuple[str, str]] = {}  # target -> (base URL, model to ask for)
    prompts: dict[str, Any] = {}  # target -> what its clients send, if not the questions
    engine: VLLMEngine | None = None
    rows: list[Row] = []
    try:
        if {"vllm", "ours+vllm"} & set(targets):
            cfg = VLLMConfig(
                python=vllm_python(args.vllm_python),
                dtype=args.vllm_dtype,
                max_model_len=2048,
                gpu_memory_utilization=args.vllm_memory,
                extra_args=args.vllm_args,
            )
            adapters = [args.adapter] if args.adapter else []
            engine = VLLMEngine(args.model, adapters, cfg, log_path=work / "vllm.log")
            print("starting:", " ".join(engine.command()), flush=True)
            engine.start()
            urls["vllm"] = (engine.url, engine_model)
            if args.vllm_prompt == "pipeline":
                prompts["vllm"] = pipeline_prompts(args, work, engine.url, questions)
        if {"llamacpp", "ours+llamacpp"} & set(targets):
            if not args.gguf:
                ap.error("the llama.cpp targets need --gguf FILE")
            port = free_port()
            py = llama_cpp_python(args.llamacpp_python)
            cmd = [py, "-m", "llama_cpp.server", "--model", args.gguf, "--model_alias", args.model]
            cmd += ["--port", str(port), "--n_ctx", "2048"]
            url = f"http://127.0.0.1:{port}/v1"
            procs.append(start(cmd, work / "llamacpp.log", url))
            urls["llamacpp"] = (url, args.model)
        for target in targets:
            if target == "local":
                proc, url = ours(args, work, "local", None)
            elif target.startswith("ours+"):
                proc, url = ours(args, work, target, urls[target.removeprefix("ours+")][0])
            else:
                proc, url = None, ""
            if proc is not None:
                procs.append(proc)
                urls[target] = (url, "phi3industry")
            url, model = urls[target]
            asks = prompts.get(target, questions)
            if args.warmup:
                asyncio.run(load(url, model, asks, max(levels), args.warmup, args.max_tokens))
            for clients in levels:
                print(f"{target}: {clients} client(s) for {args.seconds:.0f} s", flush=True)
                row = asyncio.run(load(url, model, asks, clients, args.seconds, args.max_tokens))
                row.target = target
                rows.append(row)
                d = row.to_dict()
                print(
                    f"  {d['tokens_per_s']:.1f} tok/s, first token p50 "
                    f"{d['first_token_p50_s']:.2f} s, total p50 {d['total_p50_s']:.2f} s, "
                    f"{row.requests} ok, {row.errors} errors",
                    flush=True,
                )
            if proc is not None:  # one of our servers at a time: they share the cores
                stop(proc)
                procs.remove(proc)
    finally:
        for proc in procs:
            stop(proc)
        if engine is not None:
            engine.stop()

    table = [r.to_dict() for r in rows]
    by = {(r["target"], r["clients"]): r["tokens_per_s"] for r in table}
    for r in table:
        for ref in ("vllm", "local", "llamacpp"):
            base = by.get((ref, r["clients"]))
            if base and r["target"] != ref:
                r[f"x_{ref}"] = r["tokens_per_s"] / base
    result = {
        "model": args.model,
        "adapter": args.adapter,
        "strategy": args.strategy,
        "max_tokens": args.max_tokens,
        "seconds_per_row": args.seconds,
        "vllm_prompt": args.vllm_prompt,
        "smoke": args.smoke,
        "rows": table,
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
        "cpus": os.cpu_count(),
    }
    out = ROOT / "results" if not args.smoke else work
    out.mkdir(exist_ok=True)
    (out / f"{args.out}.json").write_text(json.dumps(result, indent=2), encoding="utf-8")
    lines = [
        f"# Engines: {args.model}, strategy {args.strategy}, {args.max_tokens} tokens, "
        f"{args.seconds:.0f} s per row",
        "",
        "vLLM alone was sent "
        + (
            "the messages our pipeline sends it (same work, same greedy answers)."
            if args.vllm_prompt == "pipeline"
            else "the bare question (shorter prompt, other answers: not the same work)."
        ),
        "",
        "| target | clients | tokens/s | x vLLM | x local | first token p50 / p99 (s) "
        "| total p50 / p99 (s) | requests | tokens/request | errors |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table:
        lines.append(
            f"| {r['target']} | {r['clients']} | {r['tokens_per_s']:.1f} "
            f"| {_ratio(r.get('x_vllm'))} | {_ratio(r.get('x_local'))} "
            f"| {r['first_token_p50_s']:.2f} / {r['first_token_p99_s']:.2f} "
            f"| {r['total_p50_s']:.2f} / {r['total_p99_s']:.2f} | {r['requests']} "
            f"| {r['completion_tokens'] / max(1, r['requests']):.1f} | {r['errors']} |"
        )
    (out / f"{args.out}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))
    print(f"written to {out / args.out}.{{json,md}}")


def _ratio(value: float | None) -> str:
    """A ratio for the table, or a dash where the row is its own reference."""
    return "–" if value is None else f"{value:.2f}"


if __name__ == "__main__":
    main()
