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
"""A linear probe of a frozen ASDA encoder on a small labelled set: the logistic regression of
`examples/log_mel_baseline.py`, on the encoder's output instead of the log-mel statistics.

    python examples/linear_probe.py --model my-asda-pretrained --train_file train.csv --test_file test.csv

`--pooling patch_statistics` (default) takes every frequency patch's token mean and standard deviation over time (the
encoder's counterpart of the baseline's per-bin statistics); `--pooling utterance` the CLS token. Clips are padded or
cut to the extractor's `max_length` frames, as in fine-tuning (the model's own extractor, or `--feature_preset`).
Manifests as for `log_mel_baseline.py`; prints the test accuracy.
"""

import argparse
from pathlib import Path

import numpy as np
import torch

from log_mel_baseline import logistic_regression_accuracy, read_manifest
from modeling_asda import AsdaFeatureExtractor, AsdaModel
from modeling_asda.tools.cli import load_feature_extractor
from modeling_asda.tools.embeddings import patch_statistics


POOLINGS = ("patch_statistics", "utterance")


def clip_features(manifest: Path, extractor: AsdaFeatureExtractor) -> tuple[torch.Tensor, list[str]]:
    """The manifest's log-mel features, padded or cut to the extractor's `max_length`, and its labels."""
    waveforms, labels = read_manifest(manifest, extractor.sampling_rate)
    features = extractor(waveforms, sampling_rate=extractor.sampling_rate, return_tensors="pt")["input_values"]
    return features, labels


@torch.no_grad()
def encoder_embeddings(model: AsdaModel, features: torch.Tensor) -> dict[str, np.ndarray]:
    """Every clip's embedding under each pooling of `POOLINGS`, from one pass of the frozen encoder."""
    model.eval()
    states = torch.cat([model(batch).last_hidden_state for batch in features.split(100)])
    return {
        "patch_statistics": patch_statistics(states[:, 1:], model.config.num_frequency_patches).numpy(),
        "utterance": states[:, 0].numpy(),
    }


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="an ASDA folder or Hub id (pre-trained, fine-tuned, encoder)")
    parser.add_argument("--train_file", type=Path, required=True)
    parser.add_argument("--test_file", type=Path, required=True)
    parser.add_argument("--pooling", choices=POOLINGS, default="patch_statistics")
    parser.add_argument("--feature_preset", help="audioset, esc50 or speech_commands instead of the model's own")
    args = parser.parse_args(argv)
    extractor = load_feature_extractor(args.model, args.feature_preset)
    model = AsdaModel.from_pretrained(args.model)
    train_features, train_labels = clip_features(args.train_file, extractor)
    test_features, test_labels = clip_features(args.test_file, extractor)
    train_embeddings = encoder_embeddings(model, train_features)[args.pooling]
    test_embeddings = encoder_embeddings(model, test_features)[args.pooling]
    accuracy = logistic_regression_accuracy(train_embeddings, train_labels, test_embeddings, test_labels)
    print(f"{args.pooling} of {args.model}, logistic regression: test accuracy {accuracy:.4f}")
    return accuracy


if __name__ == "__main__":
    main()
