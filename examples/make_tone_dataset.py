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
"""Write a tiny labelled audio dataset for smoke runs: noisy 1-second tones, one frequency per class, as 16 kHz wav
files with `train.csv` and `eval.csv` manifests (paths relative to the manifests).

    python examples/make_tone_dataset.py --output_dir /tmp/tones                     # 2 classes, single-label
    python examples/make_tone_dataset.py --output_dir /tmp/tones3 --multi_label     # 3 classes, some clips with 2
"""

import argparse
import csv
from pathlib import Path

import numpy as np
import soundfile


TONES = {"low": 300.0, "mid": 1500.0, "high": 4000.0}
SAMPLING_RATE = 16000


def write_tone_dataset(
    root: Path, classes: list[str], clips: dict[str, int], multi_label: bool = False, seed: int = 0
) -> Path:
    """`clips` maps a split name to its number of clips; every third clip of a multi-label set has two tones."""
    rng = np.random.default_rng(seed)
    time = np.arange(SAMPLING_RATE) / SAMPLING_RATE
    for split, count in clips.items():
        rows = []
        for index in range(count):
            labels = [classes[index % len(classes)]]
            if multi_label and index % 3 == 0:
                labels.append(classes[(index + 1) % len(classes)])
            waveform = 0.01 * rng.standard_normal(SAMPLING_RATE)
            for label in labels:
                waveform += 0.3 * np.sin(2 * np.pi * TONES[label] * rng.uniform(0.9, 1.1) * time)
            relative = f"audio/{split}/{index}.wav"
            (root / relative).parent.mkdir(parents=True, exist_ok=True)
            soundfile.write(root / relative, waveform.astype(np.float32), SAMPLING_RATE)
            rows.append((relative, ",".join(labels)))
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerows([("audio", "label"), *rows])
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--multi_label", action="store_true", help="three classes, some clips holding two tones")
    parser.add_argument("--train_clips", type=int, default=16)
    parser.add_argument("--eval_clips", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    classes = ["low", "mid", "high"] if args.multi_label else ["low", "high"]
    clips = {"train": args.train_clips, "eval": args.eval_clips}
    print(write_tone_dataset(args.output_dir, classes, clips, args.multi_label, args.seed))


if __name__ == "__main__":
    main()
