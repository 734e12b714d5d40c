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
"""Strong labels: event manifests (one row per event: `filename, onset, offset, event_label`, in seconds, the DESED
and AudioSet-strong tsv form) and the frame targets they give at the model's time resolution.

A clip without events is a row whose onset, offset and label are empty. Audio paths relative to the manifest's folder
are made absolute, as for clip manifests.
"""

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np


EVENTS = "events"
EVENT_COLUMNS = ("onset", "offset", "event_label")


@dataclass(frozen=True)
class Event:
    onset: float
    offset: float
    label: str


def read_event_manifest(path: str | os.PathLike, audio_column: str = "filename") -> dict[str, list[Event]]:
    """`{audio path: events sorted by onset}`, files in the manifest's order; files listed without events map to []."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [column for column in (audio_column, *EVENT_COLUMNS) if column not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path} has no {missing} column(s) (columns: {reader.fieldnames}).")
        rows = list(reader)
    if not rows:
        raise ValueError(f"{path} has no rows under its header.")
    root = path.resolve().parent
    clips: dict[str, list[Event]] = {}
    for line, row in enumerate(rows, start=2):
        events = clips.setdefault(str(root / row[audio_column]), [])
        fields = [(row[column] or "").strip() for column in EVENT_COLUMNS]
        if not any(fields):
            continue
        try:
            onset, offset = float(fields[0]), float(fields[1])
        except ValueError:
            raise ValueError(f"{path}, line {line}: onset and offset must be numbers (seconds), got {fields[:2]}.")
        if not (0.0 <= onset < offset and fields[2]):
            raise ValueError(f"{path}, line {line}: need 0 <= onset < offset and a label, got {fields}.")
        events.append(Event(onset, offset, fields[2]))
    return {audio: sorted(events, key=lambda event: event.onset) for audio, events in clips.items()}


def event_dataset(path: str | os.PathLike, audio_column: str = "filename") -> datasets.Dataset:
    """An event manifest as a dataset of clips: `audio_column` (absolute paths) and `events` (lists of
    `{"onset", "offset", "label"}`)."""
    clips = read_event_manifest(path, audio_column)
    events = [[vars(event) for event in clip_events] for clip_events in clips.values()]
    return datasets.Dataset.from_dict({audio_column: list(clips), EVENTS: events})


def event_labels(dataset: datasets.Dataset) -> list[str]:
    """The sorted event classes of an `event_dataset`."""
    return sorted({event["label"] for events in dataset[EVENTS] for event in events})


def as_events(values: list[dict]) -> list[Event]:
    return [Event(float(value["onset"]), float(value["offset"]), value["label"]) for value in values]


def roll_events(events: list[Event], shift_seconds: float, duration: float) -> list[Event]:
    """The events of a clip of `duration` seconds circularly shifted by `shift_seconds` (as `np.roll` shifts its
    waveform); an event that wraps past the end is split in two."""
    rolled = []
    for event in events:
        onset = (min(event.onset, duration) + shift_seconds) % duration
        length = min(event.offset, duration) - min(event.onset, duration)
        if length <= 0:
            continue
        if onset + length <= duration:
            rolled.append(Event(onset, onset + length, event.label))
        else:
            rolled.append(Event(onset, duration, event.label))
            rolled.append(Event(0.0, onset + length - duration, event.label))
    return sorted(rolled, key=lambda event: event.onset)


def frame_targets(
    events: list[Event], label2id: dict[str, int], num_steps: int, step_seconds: float
) -> np.ndarray:
    """Multi-hot targets `(num_steps, num_labels)`: step `t` spans `[t, t + 1) * step_seconds` and is active for a
    class when an event of it covers at least half the step, or half the event when the event is shorter than a step
    (so that no event is lost)."""
    targets = np.zeros((num_steps, len(label2id)), dtype=np.float32)
    starts = np.arange(num_steps) * step_seconds
    for event in events:
        if event.label not in label2id:
            raise ValueError(f"Event label {event.label!r} is not one of the model's classes {sorted(label2id)}.")
        overlap = np.minimum(starts + step_seconds, event.offset) - np.maximum(starts, event.onset)
        needed = 0.5 * min(step_seconds, event.offset - event.onset)
        targets[overlap >= needed - 1e-9, label2id[event.label]] = 1.0
    return targets


__all__ = [
    "EVENTS",
    "Event",
    "as_events",
    "event_dataset",
    "event_labels",
    "frame_targets",
    "read_event_manifest",
    "roll_events",
]
