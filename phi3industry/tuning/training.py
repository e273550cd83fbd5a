"""Pieces of a training run: the loss log, the loss curve and the token counter."""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def training_callbacks(log_path: Path, *, early_stopping_patience: int = 0) -> list[Any]:
    """Trainer callbacks: the loss log and, if asked for, early stopping.

    The log goes to ``log_path`` as JSON lines as it comes; early stopping watches the
    held-out loss when ``early_stopping_patience`` > 0.
    """
    from transformers import EarlyStoppingCallback, TrainerCallback

    class JsonLogCallback(TrainerCallback):  # type: ignore[misc]
        """Append every log entry (loss, learning rate, ...) to a JSON-lines file."""

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if state.is_world_process_zero and logs:
                with log_path.open("a", encoding="utf-8") as fh:
                    fh.write(json.dumps({"step": state.global_step, **logs}) + "\n")

    callbacks: list[Any] = [JsonLogCallback()]
    if early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=early_stopping_patience))
    return callbacks


def loss_curve_figure(log_history: list[dict[str, Any]]) -> Figure | None:
    """The loss curves as a matplotlib ``Figure``: training loss, held-out loss, learning rate.

    Args:
        log_history: The Trainer's log entries (``loss``, ``eval_loss``, ``learning_rate``,
            each with its ``step``).

    Returns:
        The figure (lines labelled "train loss", "held-out loss" and "lr"), or None if no
        loss was logged.
    """
    points = [(e["step"], e["loss"]) for e in log_history if "loss" in e and "step" in e]
    held = [(e["step"], e["eval_loss"]) for e in log_history if "eval_loss" in e and "step" in e]
    if not points and not held:
        return None
    # A Figure of its own: never switches the global backend (keeps notebooks inline).
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 3.5))
    ax = fig.subplots()
    if points:
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", label="train loss")
    if held:
        ax.plot(
            [p[0] for p in held],
            [p[1] for p in held],
            marker="s",
            color="tab:orange",
            label="held-out loss",
        )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("loss")
    ax.legend(loc="upper right")
    lrs = [(e["step"], e["learning_rate"]) for e in log_history if "learning_rate" in e]
    if lrs:
        ax2 = ax.twinx()
        ax2.plot([p[0] for p in lrs], [p[1] for p in lrs], color="tab:gray", ls="--", label="lr")
        ax2.set_ylabel("learning rate")
    ax.set_title("phi3industry fine-tuning")
    fig.tight_layout()
    return fig


def plot_loss_curve(log_history: list[dict[str, Any]], out_file: Path) -> Path | None:
    """Save :func:`loss_curve_figure` as a PNG; None if nothing was logged."""
    fig = loss_curve_figure(log_history)
    if fig is None:
        return None
    fig.savefig(out_file, dpi=100)
    return out_file


HELD_OUT = "held_out"


def held_out_rows(rows: list[dict[str, list[int]]]) -> list[dict[str, Any]]:
    """Rows for the evaluation during training, marked so that no token count takes them."""
    return [{**row, HELD_OUT: True} for row in rows]


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

    def __call__(self, rows: list[dict[str, Any]]) -> Any:
        """Collate ``rows``, remembering their token count for the batch's forward pass.

        Held-out rows (marked ``held_out``, see :func:`held_out_rows`) are not training
        tokens: their batches are collated without being counted.
        """
        if not (rows and rows[0].get(HELD_OUT)):
            self._pending.append(sum(len(r["input_ids"]) for r in rows))
        return self.collator(rows)

    def attach(self, model: Any) -> Any:
        """Count a pending batch at each training forward of ``model``; returns the hook."""

        def count(module: Any, _args: Any) -> None:
            if module.training and self._pending:
                self.tokens += self._pending.popleft()

        return model.register_forward_pre_hook(count)
