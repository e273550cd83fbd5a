"""RSS, phase by phase, of one ``bench_tuner.py`` arm of our Tuner (for QLoRA vs LoRA memory).

Runs ``bench_tuner.run_ours`` (the benchmark's own child code) in this process, with a thread
sampling ``/proc/self/statm`` every ~1 ms and hooks marking the phases: model load, held-out
metrics before/after, each step's forward, backward and optimizer step, and the end of each
decoder layer's forward. Writes one JSON object (per-phase peaks, the marks, ``ru_maxrss``)
to ``--out``; marks are also appended to ``--out`` + ``.events`` as they come. Run each arm in
its own process (``bench/results/tuner-qlora-memory.md``)::

    python bench/bench_tuner.py --build-phi3-1b /tmp/phi3-1b
    OMP_NUM_THREADS=2 python bench/profile_tuner_memory.py ours-qlora-ckpt /tmp/phi3-1b \
        --steps 3 --threads 2 --data qa --out /tmp/qlora.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_tuner as bt

PAGE = os.sysconf("SC_PAGE_SIZE")
STEP_PHASES = (
    "forward",
    "backward",
    "after-backward",
    "optimizer",
    "after-optimizer",
    "after-step",
)


class Recorder:
    """Per-phase RSS peaks (sampled) and RSS at each mark."""

    def __init__(self, events_file: Path) -> None:
        self.phase = "import"
        self.step = 0
        self.peaks: dict[str, float] = {}
        self.events: list[tuple[str, int]] = []
        self.log = events_file.open("w")
        threading.Thread(target=self._sample, daemon=True).start()

    @staticmethod
    def rss() -> float:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * PAGE / 2**20

    def _sample(self) -> None:
        while True:
            r, p = self.rss(), self.phase
            if r > self.peaks.get(p, 0):
                self.peaks[p] = r
            time.sleep(0.001)

    def mark(self, label: str, phase: str | None = None) -> None:
        r = round(self.rss())
        self.events.append((label, r))
        if phase:
            self.phase = f"s{self.step}-{phase}" if phase in STEP_PHASES else phase
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
        self.log.write(f"{time.time():.1f} {label} {r} peak-so-far {peak}\n")
        self.log.flush()


def instrument(rec: Recorder) -> None:
    """Wrap the Tuner, accelerate's backward and the Trainer so that they mark phases."""
    import accelerate
    import transformers

    from phi3industry.tuning import tuner as tmod

    build, measure = tmod.Tuner._build_model, tmod.Tuner._measure
    backward, trainer_init = accelerate.Accelerator.backward, transformers.Trainer.__init__

    def build_marked(self: Any) -> Any:
        rec.mark("load-start", "load")
        model = build(self)
        rec.mark("load-end", "after-load")
        for i, layer in enumerate(model.base_model.model.model.layers):
            layer.register_forward_hook(
                lambda mod, _a, _o, i=i: rec.mark(f"fwd-L{i}") if mod.training else None
            )
        return model

    def measure_marked(self: Any, *args: Any, **kwargs: Any) -> Any:
        when = args[-1]
        rec.mark(f"eval-{when}-start", f"eval-{when}")
        out = measure(self, *args, **kwargs)
        rec.mark(f"eval-{when}-end", f"after-eval-{when}")
        return out

    def backward_marked(self: Any, loss: Any, **kwargs: Any) -> Any:
        rec.mark("backward-start", "backward")
        out = backward(self, loss, **kwargs)
        rec.mark("backward-end", "after-backward")
        return out

    class Phases(transformers.TrainerCallback):  # type: ignore[misc]
        def on_step_begin(self, *_a: Any, **_k: Any) -> None:
            rec.step += 1
            rec.mark("step-begin", "forward")

        def on_pre_optimizer_step(self, *_a: Any, **_k: Any) -> None:
            rec.mark("opt-start", "optimizer")

        def on_optimizer_step(self, *_a: Any, **_k: Any) -> None:
            rec.mark("opt-end", "after-optimizer")

        def on_step_end(self, *_a: Any, **_k: Any) -> None:
            rec.mark("step-end", "after-step")

    def trainer_init_marked(self: Any, *args: Any, **kwargs: Any) -> None:
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), Phases()]
        trainer_init(self, *args, **kwargs)

    tmod.Tuner._build_model, tmod.Tuner._measure = build_marked, measure_marked
    accelerate.Accelerator.backward = backward_marked
    transformers.Trainer.__init__ = trainer_init_marked


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("arm", choices=sorted(bt.OURS_ARMS))
    ap.add_argument("model", help="model path (e.g. the phi3-1b built by bench_tuner.py)")
    ap.add_argument("--steps", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", choices=sorted(bt.DATA_SOURCES), default="qa")
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    rec = Recorder(Path(f"{args.out}.events"))
    import torch

    torch.set_num_threads(args.threads)
    instrument(rec)
    bt.COMMON.update({"batch_size": args.batch_size, "max_length": args.max_length})
    bt.CURRENT["data"] = args.data
    with tempfile.TemporaryDirectory() as tmp:
        res = bt.run_ours(args.model, args.steps, args.arm, Path(tmp))
    rec.mark("done", "done")
    out = {
        "arm": args.arm,
        "data": args.data,
        "threads": args.threads,
        "steps": args.steps,
        "ru_maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "phase_peaks_mib": {k: round(v) for k, v in rec.peaks.items()},
        "events": rec.events,
        "result": res,
    }
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
