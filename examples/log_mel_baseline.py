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
"""The trivial baseline a model trained on a small labelled set must beat: a logistic regression on every log-mel
bin's mean and standard deviation over time (the `AsdaFeatureExtractor` features, 2 x 128 numbers per clip).

    python examples/log_mel_baseline.py --train_file train.csv --test_file test.csv --feature_preset speech_commands

Manifests are csv files with a header, an `audio` column (paths relative to the manifest) and a `label` column, as
`examples/run_finetune.py` reads them; single-label data. Prints the test accuracy; it takes seconds.
"""

import argparse
import csv
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modeling_asda import AsdaFeatureExtractor, load_audio


def read_manifest(manifest: Path, sampling_rate: int) -> tuple[list[np.ndarray], list[str]]:
    """The manifest's waveforms (mono, at `sampling_rate`) and labels."""
    with open(manifest, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return [load_audio(manifest.parent / row["audio"], sampling_rate) for row in rows], [row["label"] for row in rows]


def log_mel_statistics(manifest: Path, extractor: AsdaFeatureExtractor) -> tuple[np.ndarray, list[str]]:
    """Every clip's log-mel mean and standard deviation over its own frames, and its label."""
    waveforms, labels = read_manifest(manifest, extractor.sampling_rate)
    statistics = []
    for waveform in waveforms:
        log_mel = extractor(waveform, sampling_rate=extractor.sampling_rate, padding=False)["input_values"][0]
        statistics.append(np.concatenate([log_mel.mean(axis=0), log_mel.std(axis=0)]))
    return np.stack(statistics), labels


def logistic_regression_accuracy(
    train_features: np.ndarray, train_labels: list[str], test_features: np.ndarray, test_labels: list[str]
) -> float:
    """Test accuracy of a logistic regression on standardised features: the classifier of the baseline and probes."""
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train_features, train_labels)
    return float(classifier.score(test_features, test_labels))


def baseline_accuracy(train_file: Path, test_file: Path, extractor: AsdaFeatureExtractor) -> float:
    return logistic_regression_accuracy(*log_mel_statistics(train_file, extractor),
                                        *log_mel_statistics(test_file, extractor))  # fmt: skip


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train_file", type=Path, required=True)
    parser.add_argument("--test_file", type=Path, required=True)
    parser.add_argument("--feature_preset", default="audioset", help="audioset, esc50 or speech_commands")
    parser.add_argument("--target_length", type=int, help="frames per clip (longer clips are cut), as in training")
    args = parser.parse_args(argv)
    overrides = {} if args.target_length is None else {"max_length": args.target_length}
    extractor = AsdaFeatureExtractor.from_preset(args.feature_preset, **overrides)
    accuracy = baseline_accuracy(args.train_file, args.test_file, extractor)
    print(f"log-mel mean + std, logistic regression: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
