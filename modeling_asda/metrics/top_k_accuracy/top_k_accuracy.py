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
"""Top-k accuracy of class scores: the fraction of clips whose label is among their k highest-scoring classes
(k = 1: plain accuracy). Ties go to the lower class index, as `argmax` resolves them."""

import datasets
import evaluate
import numpy as np


_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (`list` of `list` of `float`): one row of class scores (logits or probabilities) per clip.
    references (`list` of `int`): the class index of each clip.
    k (`int`, defaults to 1): how many of the highest-scoring classes count as a hit.
Returns:
    accuracy (`float`): the fraction of clips whose label is among their `k` highest-scoring classes.
Examples:
    >>> top_k_accuracy = evaluate.load("modeling_asda/metrics/top_k_accuracy")
    >>> top_k_accuracy.compute(prediction_scores=[[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]], references=[1, 2], k=2)
    {'accuracy': 1.0}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class TopKAccuracy(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation="",
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {
                    "prediction_scores": datasets.Sequence(datasets.Value("float64")),
                    "references": datasets.Value("int64"),
                }
            ),
        )

    def _compute(self, prediction_scores, references, k=1):
        scores = np.asarray(prediction_scores, dtype=np.float64)
        labels = np.asarray(references)
        if scores.ndim != 2:
            raise ValueError(f"prediction_scores must hold one row of class scores per clip, got shape {scores.shape}")
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if labels.min() < 0 or labels.max() >= scores.shape[1]:
            raise ValueError(
                f"references must be class indices below {scores.shape[1]}, got {labels.min()}..{labels.max()}"
            )
        top_k = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return {"accuracy": float((top_k == labels[:, None]).any(axis=1).mean())}
