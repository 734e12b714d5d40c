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
"""Frame scores -> sound events: stitching the windows of a long recording onto one timeline, median filtering and
thresholding. `asda-classify --events` and the SED metrics post-process with these functions (numpy only)."""

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """A detected event: its span in seconds, class and score (the highest frame score inside it)."""

    onset: float
    offset: float
    label: str
    score: float


def median_filter(scores: np.ndarray, width: int) -> np.ndarray:
    """Per-class running median over `width` steps (odd), centred, with the edge values repeated; width 1 is a no-op."""
    if width < 1 or width % 2 == 0:
        raise ValueError(f"The median filter needs an odd positive width in steps, got {width}.")
    if width == 1:
        return scores
    half = width // 2
    padded = np.pad(scores, ((half, half), (0, 0)), mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width, axis=0), axis=-1)


def median_filter_steps(seconds: float, step_seconds: float) -> int:
    """A median filter length in seconds as the nearest odd number of steps (at least 1)."""
    if seconds < 0:
        raise ValueError(f"The median filter length must be >= 0 seconds, got {seconds}.")
    return max(1, 2 * round((seconds / step_seconds - 1) / 2) + 1)


def detect_events(
    scores: np.ndarray,
    step_seconds: float,
    class_names: list[str],
    threshold: float = 0.5,
    duration: float | None = None,
) -> list[Detection]:
    """Runs of steps whose score reaches `threshold`, per class, as events sorted by onset; step `t` spans
    `[t, t + 1) * step_seconds`, and offsets are cut at `duration` when given."""
    if scores.ndim != 2 or scores.shape[1] != len(class_names):
        raise ValueError(f"scores must have shape (num_steps, {len(class_names)}), got {scores.shape}.")
    detections = []
    for index, name in enumerate(class_names):
        active = np.concatenate([[False], scores[:, index] >= threshold, [False]])
        changes = np.flatnonzero(active[1:] != active[:-1])
        for start, end in zip(changes[::2], changes[1::2]):
            offset = end * step_seconds if duration is None else min(end * step_seconds, duration)
            score = float(scores[start:end, index].max())
            detections.append(Detection(start * step_seconds, offset, name, score))
    return sorted(detections, key=lambda detection: (detection.onset, detection.label))


def stitch_windows(
    window_scores: list[np.ndarray],
    window_spans: list[tuple[float, float]],
    step_seconds: float,
    resolution_seconds: float,
) -> np.ndarray:
    """Frame scores of overlapping or adjacent windows on one timeline of `resolution_seconds` steps from 0 to the
    end of the last window: each window's step `t` covers `[start + t * step_seconds, ...)` up to the window's end
    (its padding is dropped), and where windows overlap their scores are averaged. `resolution_seconds` must divide
    the window starts and `step_seconds` (e.g. the 10 ms frame shift)."""
    num_steps = math.ceil(round(max(end for _, end in window_spans) / resolution_seconds, 6))
    total = np.zeros((num_steps, window_scores[0].shape[-1]))
    count = np.zeros((num_steps, 1))
    repeat = round(step_seconds / resolution_seconds)
    for scores, (start, end) in zip(window_scores, window_spans):
        first = round(start / resolution_seconds)
        last = min(math.ceil(round(end / resolution_seconds, 6)), num_steps)
        fine = np.repeat(scores, repeat, axis=0)[: last - first]
        total[first : first + len(fine)] += fine
        count[first : first + len(fine)] += 1
    if (count == 0).any():
        raise ValueError("The windows leave part of the recording without scores.")
    return total / count


def recording_events(
    window_scores: list[np.ndarray],
    window_spans: list[tuple[float, float]],
    step_seconds: float,
    frame_seconds: float,
    class_names: list[str],
    threshold: float = 0.5,
    median_filter_seconds: float = 0.0,
) -> list[Detection]:
    """The events of a recording from its windows' frame scores: stitched onto one timeline of `frame_seconds`
    steps, median-filtered, thresholded; an event that crosses a window boundary is one event."""
    scores = stitch_windows(window_scores, window_spans, step_seconds, frame_seconds)
    scores = median_filter(scores, median_filter_steps(median_filter_seconds, frame_seconds))
    duration = max(end for _, end in window_spans)
    return detect_events(scores, frame_seconds, class_names, threshold, duration)


__all__ = [
    "Detection",
    "detect_events",
    "median_filter",
    "median_filter_steps",
    "recording_events",
    "stitch_windows",
]
