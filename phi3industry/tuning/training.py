"""Pieces of a training run: the loss log, the loss curve and the token counter."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any


def training_callbacks(log_path: Path) -> list[Any]:
    """Trainer callbacks: the loss log written as JSON lines to ``log_path`` as it comes."""
    from transformers import TrainerCallback

    class JsonLogCallback(TrainerCallback):  # type: ignore[misc]
        """Append every log entry (loss, learning rate, ...) to a JSON-lines file."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    return [JsonLogCallback()]


def plot_loss_curve(log_history: list[dict[str, Any]], out_file: Path) -> Path | None:
    """Save the training-loss curve (and learning rate) as a PNG; None if nothing logged."""
    points = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    if not points:
        return None
    # A Figure of its own: never switches the global backend (keeps notebooks inline).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="train loss")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    lrs = [(e["step"], e["learning_rate"]) for e in log_history if "learning_rate" in e]
    if lrs:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in lrs], [p[1] for p in lrs], color="tab:gray", ls="--", label="lr")
        ax2.set_ylabel("learning rate")
    ax.set_title("phi3industry fine-tuning")
    fig.tight_layout()
    fig.savefig(out_file, dpi=100)
    return out_file


class CountingCollator:
    """Wrap a collator and count the non-padding tokens of the batches the model trains on.

    The dataloader collates one batch ahead (accelerate looks ahead to spot the last
    batch), so counting at collation would include a batch that is never trained on when
    ``max_steps`` stops mid-epoch; counts wait in a queue until the model's forward takes
    them (:meth:`attach`).
    """

    def __init__(self, collator: Any) -> None:
        self.collator = collator
        self.tokens = 0
        self._pending: deque[int] = deque()

    def __call__(self, rows: list[dict[str, list[int]]]) -> Any:
        """Collate ``rows``, remembering their token count for the batch's forward pass."""
        self._pending.append(sum(len(r["input_ids"]) for r in rows))
        return self.collator(rows)

    def attach(self, model: Any) -> Any:
        """Count a pending batch at each forward of ``model``; returns the hook handle."""

        def count(_module: Any, _args: Any) -> None:
            if self._pending:
                self.tokens += self._pending.popleft()

        return model.register_forward_pre_hook(count)
