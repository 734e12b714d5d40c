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
"""Evaluation metrics of the official recipes: mAP / mAUC / d' (multi-label), accuracy / top-5 accuracy
(single-label). The package's only importer of scikit-learn."""

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, top_k_accuracy_score
from transformers import EvalPrediction



def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scikit-learn average precision of every class; NaN for classes without a positive clip."""
    targets = targets >= 0.5
    return np.array(
        [
            average_precision_score(targets[:, k], scores[:, k]) if targets[:, k].any() else np.nan
            for k in range(targets.shape[1])
        ]
    )


def multi_label_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """mAP (NaN-mean of per-class AP, as the official eval), mAUC (classes with both outcomes) and d' = sqrt(2) *
    Phi^-1(mAUC). Scores may be logits or sigmoid outputs: all three are rank statistics."""
    targets = targets >= 0.5
    average_precision = per_class_average_precision(scores, targets)
    both_outcomes = targets.any(axis=0) & ~targets.all(axis=0)
    aucs = [roc_auc_score(targets[:, k], scores[:, k]) for k in np.flatnonzero(both_outcomes)]
    metrics = {"mAP": float(np.nanmean(average_precision)) if targets.any() else math.nan}
    metrics["mAUC"] = float(np.mean(aucs)) if aucs else math.nan
    metrics["d_prime"] = (
        math.sqrt(2.0) * NormalDist().inv_cdf(metrics["mAUC"]) if 0 < metrics["mAUC"] < 1 else math.nan
    )
    return metrics


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, top_k: int = 5) -> dict[str, float]:
    """Accuracy, and top-k accuracy when there are more than `top_k` classes. `labels` are class indices or
    `(clips, classes)` one-hot targets."""
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    metrics = {"accuracy": float((scores.argmax(axis=1) == labels).mean())}
    num_labels = scores.shape[1]
    if num_labels > top_k:
        metrics[f"top{top_k}_accuracy"] = float(
            top_k_accuracy_score(labels, scores, k=top_k, labels=np.arange(num_labels))
        )
    return metrics


@dataclass
class AudioClassificationMetrics:
    """`compute_metrics` for Trainer: multi-label or single-label metrics of the logits."""

    multi_label: bool

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(prediction.label_ids)
        return multi_label_metrics(logits, labels) if self.multi_label else single_label_metrics(logits, labels)


__all__ = ["AudioClassificationMetrics", "multi_label_metrics", "per_class_average_precision", "single_label_metrics"]
