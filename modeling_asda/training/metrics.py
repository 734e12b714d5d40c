# Copyright 2026 The ASDA for Hugging Face authors.
#
# Licensed under the Apache License, Version 2.0 (the "License");
# you may not use this file except in compliance with the License.
# You may obtain a copy of the License at
#
#     http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS,
# WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
# See the License for the specific language governing permissions and
# limitations under the License.
"""Evaluation metrics of the official recipes, computed by the `evaluate` modules shipped in `modeling_asda/metrics/`
(loaded by local path, so they work offline): mAP / mAUC / d' (multi-label), accuracy / top-5 accuracy
(single-label), and the macro F1 of the frame metrics (`sed_metrics.frame_metrics`)."""

import functools
from dataclasses import dataclass
from pathlib import Path

import evaluate
import numpy as np
from transformers import EvalPrediction


METRICS_DIR = Path(__file__).resolve().parent.parent / "metrics"


@functools.cache
def load_metric(name: str) -> evaluate.EvaluationModule:
    """The `evaluate` module `modeling_asda/metrics/<name>`, loaded once per process. It keeps its inputs in memory,
    so that processes of a distributed evaluation never share a cache file."""
    path = METRICS_DIR / name
    if not (path / f"{name}.py").is_file():
        available = sorted(folder.name for folder in METRICS_DIR.iterdir() if (folder / f"{folder.name}.py").is_file())
        raise ValueError(f"No metric {name!r} in {METRICS_DIR}; available: {', '.join(available)}")
    return evaluate.load(str(path), keep_in_memory=True)


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Average precision of every class (targets >= 0.5 are positives); NaN for classes without a positive clip."""
    return np.array(_multi_label_metric("mean_average_precision", scores, targets)["average_precision"])


def multi_label_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """mAP (mean AP of classes with a positive, as the official eval), mAUC (classes with both outcomes) and d' =
    sqrt(2) * Phi^-1(mAUC). Scores may be logits or sigmoid outputs: all three are rank statistics."""
    average_precision = _multi_label_metric("mean_average_precision", scores, targets)
    auc = _multi_label_metric("mean_roc_auc", scores, targets)
    return {"mAP": average_precision["mAP"], "mAUC": auc["mAUC"], "d_prime": auc["d_prime"]}


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, top_k: int = 5) -> dict[str, float]:
    """Accuracy, and top-k accuracy when there are more than `top_k` classes. `labels` are class indices or
    `(clips, classes)` one-hot targets."""
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    accuracy = load_metric("top_k_accuracy")
    metrics = {"accuracy": accuracy.compute(prediction_scores=scores, references=labels)["accuracy"]}
    if scores.shape[1] > top_k:
        top_k_accuracy = accuracy.compute(prediction_scores=scores, references=labels, k=top_k)
        metrics[f"top{top_k}_accuracy"] = top_k_accuracy["accuracy"]
    return metrics


def _multi_label_metric(name: str, scores: np.ndarray, targets: np.ndarray) -> dict:
    """The multi-label module `name` on (clips, classes) scores and targets, targets >= 0.5 counting as positives."""
    return load_metric(name).compute(prediction_scores=scores, references=(np.asarray(targets) >= 0.5).astype(np.int8))


@dataclass
class AudioClassificationMetrics:
    """`compute_metrics` for Trainer: multi-label or single-label metrics of the logits."""

    multi_label: bool

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(prediction.label_ids)
        return multi_label_metrics(logits, labels) if self.multi_label else single_label_metrics(logits, labels)


__all__ = [
    "AudioClassificationMetrics",
    "load_metric",
    "multi_label_metrics",
    "per_class_average_precision",
    "single_label_metrics",
]
