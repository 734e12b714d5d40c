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
"""Mean ROC AUC of multi-label class scores and the d-prime it implies: scikit-learn's ROC AUC of every class with
both positive and negative clips, averaged over those classes; d' = sqrt(2) * Phi^-1(mAUC), the separation of two
unit-variance normal score distributions with that AUC (the AudioSet mAUC and d' of the official evaluation)."""

import math
from statistics import NormalDist

import datasets
import evaluate
import numpy as np
from sklearn.metrics import roc_auc_score


_DESCRIPTION = __doc__

_KWARGS_DESCRIPTION = """
Args:
    prediction_scores (`list` of `list` of `float`): one row of class scores (logits or probabilities) per clip.
    references (`list` of `list` of `int`): one row of 0/1 targets per clip.
Returns:
    mAUC (`float`): the mean of the per-class ROC AUCs over classes with both outcomes (NaN if none).
    d_prime (`float`): sqrt(2) * Phi^-1(mAUC), NaN unless 0 < mAUC < 1.
    auc (`list` of `float`): every class's ROC AUC, NaN for classes without both outcomes.
Examples:
    >>> mean_roc_auc = evaluate.load("modeling_asda/metrics/mean_roc_auc")
    >>> mean_roc_auc.compute(prediction_scores=[[0.9], [0.4], [0.6]], references=[[1], [0], [0]])
    {'mAUC': 1.0, 'd_prime': nan, 'auc': [1.0]}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class MeanRocAuc(evaluate.Metric):
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
        both_outcomes = targets.any(axis=0) & ~targets.all(axis=0)
        auc = [
            roc_auc_score(targets[:, k], scores[:, k]) if both_outcomes[k] else math.nan
            for k in range(targets.shape[1])
        ]
        mean = float(np.mean(np.asarray(auc)[both_outcomes])) if both_outcomes.any() else math.nan
        d_prime = math.sqrt(2.0) * NormalDist().inv_cdf(mean) if 0 < mean < 1 else math.nan
        return {"mAUC": mean, "d_prime": d_prime, "auc": [float(value) for value in auc]}
