#!/usr/bin/env python
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
"""Write a sound event detection set with exact ground truth: tones, chirps and noise bursts at random onsets in
background noise, as 16 kHz wav clips with one `<split>.tsv` event manifest per split (`filename, onset, offset,
event_label`, the DESED form; a clip without events has one row with empty event fields).

Event instances never repeat across splits: every event draws its frequencies from log-spaced bands, and the bands
of the training split (even bands) and of the other splits (odd bands) are disjoint, so a test tone, chirp or noise
band is never heard in training. Events of one class never overlap or touch; events of different classes may.

    python examples/make_sound_events.py --output_dir /tmp/sound_events --train 400 --test 100
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile


SAMPLING_RATE = 16000
CLASSES = ("tone", "chirp", "noise_burst")
LOW_HZ, HIGH_HZ, NUM_BANDS = 250.0, 5000.0, 48
MIN_EVENT_SECONDS, MAX_EVENT_SECONDS = 0.3, 1.5


def band_frequency(rng: np.random.Generator, split: str, hz_range: tuple[float, float] = (LOW_HZ, HIGH_HZ)) -> float:
    """A log-uniform frequency inside one of the split's `NUM_BANDS` bands of `hz_range` (even bands: train; odd:
    the other splits)."""
    parity = 0 if split == "train" else 1
    band = 2 * rng.integers(NUM_BANDS // 2) + parity
    position = (band + rng.uniform(0.1, 0.9)) / NUM_BANDS
    return float(hz_range[0] * (hz_range[1] / hz_range[0]) ** position)


def event_signal(
    label: str,
    num_samples: int,
    rng: np.random.Generator,
    split: str,
    hz_range: tuple[float, float] = (LOW_HZ, HIGH_HZ),
) -> np.ndarray:
    """One event instance with 10 ms raised-cosine fades, unit peak."""
    time = np.arange(num_samples) / SAMPLING_RATE
    if label == "tone":
        signal = np.sin(2 * np.pi * band_frequency(rng, split, hz_range) * time + rng.uniform(0, 2 * np.pi))
    elif label == "chirp":
        start, end = band_frequency(rng, split, hz_range), band_frequency(rng, split, hz_range)
        phase = 2 * np.pi * (start * time + (end - start) * time**2 / (2 * time[-1]))
        signal = np.sin(phase)
    else:
        centre = band_frequency(rng, split, hz_range)
        spectrum = np.fft.rfft(rng.standard_normal(num_samples))
        frequencies = np.fft.rfftfreq(num_samples, 1 / SAMPLING_RATE)
        spectrum[np.abs(np.log2(np.maximum(frequencies, 1.0) / centre)) > 0.5] = 0  # one-octave band
        signal = np.fft.irfft(spectrum, num_samples)
    fade = min(num_samples // 2, SAMPLING_RATE // 100)
    ramp = 0.5 - 0.5 * np.cos(np.pi * np.arange(fade) / fade)
    signal[:fade] *= ramp
    signal[num_samples - fade :] *= ramp[::-1]
    return signal / max(np.abs(signal).max(), 1e-9)


def draw_events(
    rng: np.random.Generator, clip_seconds: float, max_events: int, classes: tuple[str, ...] = CLASSES
) -> list[tuple[float, float, str]]:
    """Up to `max_events` events (onset, offset, label), on a 10 ms grid, none touching another of its class."""
    events = []
    for _ in range(rng.integers(0, max_events + 1)):
        label = classes[rng.integers(len(classes))]
        length = rng.uniform(MIN_EVENT_SECONDS, min(MAX_EVENT_SECONDS, clip_seconds / 2))
        onset = round(rng.uniform(0, clip_seconds - length), 2)
        offset = round(onset + length, 2)
        if all(label != other or offset + 0.1 < start or end + 0.1 < onset for start, end, other in events):
            events.append((onset, offset, label))
    return sorted(events)


def synthesize(
    events: list[tuple[float, float, str]], clip_seconds: float, rng: np.random.Generator, split: str,
    snr_db: tuple[float, float] = (0.0, 20.0), hz_range: tuple[float, float] = (LOW_HZ, HIGH_HZ),
) -> np.ndarray:
    """Background noise (white plus a low rumble) with the events added at SNRs drawn from `snr_db`."""
    num_samples = round(clip_seconds * SAMPLING_RATE)
    background = rng.standard_normal(num_samples) + 3 * np.cumsum(rng.standard_normal(num_samples)) / 100
    background -= np.convolve(background, np.ones(801) / 801, mode="same")  # remove the random walk's drift
    background *= 0.01 * 10 ** rng.uniform(-0.5, 0.5) / background.std()
    waveform = background.copy()
    for onset, offset, label in events:
        start, end = round(onset * SAMPLING_RATE), round(offset * SAMPLING_RATE)
        signal = event_signal(label, end - start, rng, split, hz_range)
        gain = background.std() * 10 ** (rng.uniform(*snr_db) / 20) / signal.std()
        waveform[start:end] += gain * signal
    return (waveform / max(1.0, np.abs(waveform).max() / 0.9)).astype(np.float32)


def write_sound_event_dataset(
    root: Path, clips: dict[str, int], clip_seconds: float = 5.12, max_events: int = 3, seed: int = 0,
    snr_db: tuple[float, float] = (0.0, 20.0), classes: tuple[str, ...] = CLASSES,
    hz_range: tuple[float, float] = (LOW_HZ, HIGH_HZ),
) -> Path:
    """`clips` maps a split name ("train", "test", ...) to its number of clips; writes `root/<split>.tsv` and the
    audio under `root/audio/<split>/`."""
    rng = np.random.default_rng(seed)
    for split, count in clips.items():
        rows = []
        for index in range(count):
            events = draw_events(rng, clip_seconds, max_events, classes)
            relative = f"audio/{split}/{index:05d}.wav"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            waveform = synthesize(events, clip_seconds, rng, split, snr_db, hz_range)
            soundfile.write(root / relative, waveform, SAMPLING_RATE)
            rows += [(relative, f"{onset:.2f}", f"{offset:.2f}", label) for onset, offset, label in events]
            rows += [] if events else [(relative, "", "", "")]
        with open(root / f"{split}.tsv", "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle, delimiter="\t").writerows([("filename", "onset", "offset", "event_label"), *rows])
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--train", type=int, default=400, help="Training clips.")
    parser.add_argument("--test", type=int, default=100, help="Test clips.")
    parser.add_argument("--clip_seconds", type=float, default=5.12)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    write_sound_event_dataset(args.output_dir, {"train": args.train, "test": args.test}, args.clip_seconds,
                              seed=args.seed)
    print(f"Wrote {args.train} training and {args.test} test clips with their events to {args.output_dir}")


if __name__ == "__main__":
    main()
