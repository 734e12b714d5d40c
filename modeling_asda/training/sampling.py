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
"""Class-balanced sampling of the official AudioSet-2M fine-tuning: per-clip weights and a multinomial sampler.

It draws clips by index, so it needs map-style data (a manifest, or shards read with `--streaming false`); a stream
of shards cannot be sampled this way (docs/scaling.md says what a stream could keep of it)."""

import numpy as np
import torch



def class_balanced_weights(label_ids: list, num_labels: int, smoothing: float = 0.01) -> np.ndarray:
    """Per-clip sampling weights: the sum over the clip's labels of `1 / (label count + smoothing)`, the label counts
    taken over the whole list (AST/Audio-MAE's weight file; the official one is not released). Single-label lists
    (one int per clip) work too."""
    label_matrix = np.zeros((len(label_ids), num_labels), dtype=np.float64)
    for row, labels in enumerate(label_ids):
        label_matrix[row, labels] = 1.0
    label_counts = label_matrix.sum(axis=0)
    return label_matrix @ (1.0 / (label_counts + smoothing))


class ClassBalancedSampler(torch.utils.data.Sampler[int]):
    """Every epoch, `num_samples` clips drawn by `torch.multinomial` with the given weights (without replacement, as
    the official AS-2M loader). The draw depends only on `(seed, epoch)`, so every process of a distributed run makes
    the same one and Accelerate hands each its share; `set_epoch` is called by Accelerate's data loader."""

    def __init__(self, weights, num_samples: int, replacement: bool = False, seed: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        if self.weights.ndim != 1 or (self.weights < 0).any() or not self.weights.sum() > 0:
            raise ValueError("Sampling weights must be a 1-D, non-negative array with a positive sum.")
        available = int((self.weights > 0).sum())
        if not replacement and num_samples > available:
            raise ValueError(f"Cannot draw {num_samples} clips without replacement from {available} with weight > 0.")
        self.num_samples = num_samples
        self.replacement = replacement
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        yield from torch.multinomial(self.weights, self.num_samples, self.replacement, generator=generator).tolist()

    def __len__(self) -> int:
        return self.num_samples


__all__ = ["ClassBalancedSampler", "class_balanced_weights"]
