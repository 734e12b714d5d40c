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
"""Macro F1 of multi-label class scores at a decision threshold: every class's F1 = 2 TP / (2 TP + FP + FN), with
scores above the threshold predicted positive, averaged over all classes. A class without predicted or true
positives scores 1.0 (nothing to find, nothing wrongly found), as scikit-learn's `f1_score(zero_division=1.0)`."""

import math

import datasets
import evaluate
import numpy as np


_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (`list` of `list` of `float`): one row of class scores (logits or probabilities) per example.
    references (`list` of `list` of `int`): one row of 0/1 targets per example.
    threshold (`float`, defaults to 0.5): scores above it are positive predictions (0 for logits).
Returns:
    macro_f1 (`float`): the mean of the per-class F1 scores.
    f1 (`list` of `float`): every class's F1, 1.0 for classes without predicted or true positives.
Examples:
    >>> multi_label_f1 = evaluate.load("modeling_asda/metrics/multi_label_f1")
    >>> scores, targets = [[0.9, 0.2], [0.4, 0.3], [0.7, 0.1]], [[1, 0], [1, 0], [0, 0]]
    >>> multi_label_f1.compute(prediction_scores=scores, references=targets)
    {'macro_f1': 0.75, 'f1': [0.5, 1.0]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MultiLabelF1(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "prediction_scores": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Sequence(datasets.Value("int8")),
                }
            ),
        )

    def _compute(self, prediction_scores, references, threshold=0.5):
        row_lengths = {len(row) for row in (*prediction_scores, *references)}
        if len(row_lengths) != 1:
            found = f"rows of {sorted(row_lengths)} classes" if row_lengths else "no examples"
            raise ValueError(f"Expected one score and one target per class for every example, got {found}")
        if not math.isfinite(threshold):
            raise ValueError(f"threshold must be a finite number, got {threshold}")
        scores = np.asarray(prediction_scores, dtype=np.float64)
        targets = np.asarray(references) > 0
        predicted = scores > threshold
        true_positives = (predicted & targets).sum(axis=0)
        predicted_and_true = predicted.sum(axis=0) + targets.sum(axis=0)  # 2 TP + FP + FN
        f1 = np.where(predicted_and_true > 0, 2 * true_positives / np.maximum(predicted_and_true, 1), 1.0)
        return {"macro_f1": float(f1.mean()), "f1": [float(value) for value in f1]}
