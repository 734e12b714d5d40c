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
"""Sound event detection metrics, computed by sed_scores_eval (the `sed` extra) from frame scores:

    event-based F1    collar-based, DCASE collars: onset within 200 ms, offset within max(200 ms, 20 % of the event)
    segment-based F1  on 1 s segments
    PSDS              threshold-independent, DCASE scenario 1 (DTC = GTC = 0.7, alpha_ST = 1, max eFPR 100/h)

F1 values are macro averages over the classes. Post-processing (median filter, then threshold) is that of
`asda-classify --events` (`modeling_asda.tools.events`). `frame_metrics` is the recipe's `compute_metrics` for frame
targets during training (frame-level mAP and F1, without event times).
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from transformers import EvalPrediction

from ..data.events import Event
from ..tools.events import median_filter, median_filter_steps
from .augment import IGNORED_TARGET
from .metrics import load_metric, per_class_average_precision


def import_sed_scores_eval():
    """sed_scores_eval, or an ImportError saying which extra installs it."""
    try:
        import sed_scores_eval
    except ImportError as error:
        raise ImportError(
            f"SED metrics need sed_scores_eval ({error}): pip install 'modeling_asda[sed]' (it pins setuptools<81, "
            "whose pkg_resources dcase_util still imports)."
        ) from error
    return sed_scores_eval


@dataclass
class SedScoringArguments:
    """Post-processing and scoring settings, DCASE defaults (fields double as command-line flags)."""

    threshold: float = field(default=0.5, metadata={"help": "Decision threshold of the F1 scores (probability)."})
    median_filter_seconds: float = field(
        default=0.0, metadata={"help": "Median filter over time before thresholding, in seconds (0: none)."}
    )
    onset_collar: float = field(default=0.2, metadata={"help": "Event-based F1: onset tolerance in seconds."})
    offset_collar: float = field(default=0.2, metadata={"help": "Event-based F1: offset tolerance in seconds..."})
    offset_collar_rate: float = field(
        default=0.2, metadata={"help": "... or this fraction of the event's length, if longer."}
    )
    segment_length: float = field(default=1.0, metadata={"help": "Segment-based F1: segment length in seconds."})
    psds_dtc_threshold: float = field(default=0.7, metadata={"help": "PSDS detection tolerance criterion."})
    psds_gtc_threshold: float = field(default=0.7, metadata={"help": "PSDS ground-truth intersection criterion."})
    psds_alpha_st: float = field(default=1.0, metadata={"help": "PSDS penalty on the spread across classes."})
    psds_max_efpr: float = field(default=100.0, metadata={"help": "PSDS: largest false positive rate, per hour."})


def score_dataframes(
    frame_scores: Mapping[str, np.ndarray],
    step_seconds: float,
    class_names: list[str],
    durations: Mapping[str, float],
    median_filter_seconds: float = 0.0,
) -> dict:
    """sed_scores_eval score tables of `{clip id: (num_steps, num_classes) scores}`, median-filtered, with the steps
    past each clip's duration (padding) dropped and the last step cut at the duration."""
    scores_module = import_sed_scores_eval().base_modules.scores
    width = median_filter_steps(median_filter_seconds, step_seconds)
    tables = {}
    for clip, scores in frame_scores.items():
        num_steps = min(len(scores), int(np.ceil(round(durations[clip] / step_seconds, 6))))
        timestamps = np.minimum(np.arange(num_steps + 1) * step_seconds, durations[clip])
        filtered = median_filter(np.asarray(scores[:num_steps], dtype=np.float64), width)
        tables[clip] = scores_module.create_score_dataframe(filtered, timestamps, class_names)
    return tables


def sed_metrics(
    frame_scores: Mapping[str, np.ndarray],
    ground_truth: Mapping[str, list[Event]],
    durations: Mapping[str, float],
    step_seconds: float,
    class_names: list[str],
    settings: SedScoringArguments | None = None,
) -> dict[str, float]:
    """Event-based and segment-based macro F1 (with precision and recall) at `settings.threshold`, and PSDS, of the
    frame scores (probabilities) of every clip in `ground_truth` (clips without events included)."""
    settings = settings or SedScoringArguments()
    sed_scores_eval = import_sed_scores_eval()
    missing = ground_truth.keys() - frame_scores.keys()
    if missing:
        raise ValueError(f"No scores for {len(missing)} clip(s) of the ground truth, e.g. {sorted(missing)[:3]}.")
    scores = score_dataframes(
        {clip: frame_scores[clip] for clip in ground_truth}, step_seconds, class_names, durations,
        settings.median_filter_seconds,
    )
    reference = {
        clip: [(event.onset, min(event.offset, durations[clip]), event.label) for event in events]
        for clip, events in ground_truth.items()
    }
    clip_durations = {clip: durations[clip] for clip in ground_truth}
    event_f, event_p, event_r, _ = sed_scores_eval.collar_based.fscore(
        scores, reference, settings.threshold, onset_collar=settings.onset_collar,
        offset_collar=settings.offset_collar, offset_collar_rate=settings.offset_collar_rate,
    )
    segment_f, segment_p, segment_r, _ = sed_scores_eval.segment_based.fscore(
        scores, reference, clip_durations, settings.threshold, segment_length=settings.segment_length,
    )
    psds, *_ = sed_scores_eval.intersection_based.psds(
        scores, reference, clip_durations, dtc_threshold=settings.psds_dtc_threshold,
        gtc_threshold=settings.psds_gtc_threshold, alpha_st=settings.psds_alpha_st,
        max_efpr=settings.psds_max_efpr,
    )
    average = "macro_average"
    return {
        "event_f1": float(event_f[average]),
        "event_precision": float(event_p[average]),
        "event_recall": float(event_r[average]),
        "segment_f1": float(segment_f[average]),
        "segment_precision": float(segment_p[average]),
        "segment_recall": float(segment_r[average]),
        "psds": float(psds),
    }


def frame_metrics(prediction: EvalPrediction) -> dict[str, float]:
    """`compute_metrics` for frame targets `(clips, steps, classes)` (-100 marks padding): frame-level mAP (NaN-mean
    of the classes with a positive frame) and macro F1 at logit 0 (probability 0.5), a class without predicted or true
    positive frames scoring 1."""
    logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(prediction.label_ids)
    real = labels[..., 0] != IGNORED_TARGET
    logits, targets = logits[real], labels[real] >= 0.5
    f1 = load_metric("multi_label_f1").compute(
        prediction_scores=logits, references=targets.astype(np.int8), threshold=0.0
    )
    average_precision = per_class_average_precision(logits, targets)
    return {
        "frame_mAP": float(np.nanmean(average_precision)) if targets.any() else float("nan"),
        "frame_f1": f1["macro_f1"],
    }


__all__ = ["SedScoringArguments", "frame_metrics", "import_sed_scores_eval", "score_dataframes", "sed_metrics"]
