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
"""Mean average precision of multi-label class scores: scikit-learn's average precision of every class with at
least one positive clip, averaged over those classes (the AudioSet mAP of the official evaluation)."""

import datasets
import evaluate
import numpy as np
from sklearn.metrics import average_precision_score


_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (`list` of `list` of `float`): one row of class scores (logits or probabilities) per clip.
    references (`list` of `list` of `int`): one row of 0/1 targets per clip.
Returns:
    mAP (`float`): the mean of the per-class average precisions over classes with a positive clip (NaN if none).
    average_precision (`list` of `float`): every class's average precision, NaN for classes without a positive.
Examples:
    >>> mean_average_precision = evaluate.load("modeling_asda/metrics/mean_average_precision")
    >>> mean_average_precision.compute(prediction_scores=[[0.9, 0.2], [0.4, 0.3]], references=[[1, 0], [0, 0]])
    {'mAP': 1.0, 'average_precision': [1.0, nan]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanAveragePrecision(evaluate.Metric):
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

    def _compute(self, prediction_scores, references):
        scores = np.asarray(prediction_scores, dtype=np.float64)
        targets = np.asarray(references) > 0
        if scores.ndim != 2 or scores.shape != targets.shape:
            raise ValueError(f"Expected (clips, classes) scores and targets, got {scores.shape} and {targets.shape}")
        average_precision = [
            average_precision_score(targets[:, k], scores[:, k]) if targets[:, k].any() else np.nan
            for k in range(targets.shape[1])
        ]
        has_positive = targets.any(axis=0)
        mean = float(np.mean(np.asarray(average_precision)[has_positive])) if has_positive.any() else np.nan
        return {"mAP": mean, "average_precision": [float(ap) for ap in average_precision]}
