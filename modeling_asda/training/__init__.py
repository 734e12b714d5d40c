"""The training recipes (`pretraining`, `finetuning`) and their shared pieces: the optimiser rule (`optim`), the
augmentations (`augment`), class-balanced sampling (`sampling`), training from streamed shards (`streaming`) and the
metrics (`metrics`)."""

from dataclasses import dataclass
from pathlib import Path

from transformers import Trainer


@dataclass
class TrainingRunResult:
    """What a recipe's `run` returns: its final metrics (`train_*`, `eval_*`), the folder it wrote, and the Trainer
    (state and log history, model, datasets)."""

    metrics: dict[str, float]
    output_dir: Path
    trainer: Trainer


def train_and_save_state(trainer: Trainer) -> dict[str, float]:
    """`trainer.train()` (resuming from `--resume_from_checkpoint`), then log and save its metrics and the Trainer
    state into the output folder, as transformers' example scripts do; returns the training metrics."""
    result = trainer.train(resume_from_checkpoint=trainer.args.resume_from_checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    return dict(result.metrics)
