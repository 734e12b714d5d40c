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
"""Batch and clip augmentations of the official fine-tuning recipe (spec section 4).

`rng` is a numpy RandomState (or the `np.random` module, seeded per data-loader worker by Trainer).
    per clip, on the waveform: `roll_and_gain`; on the features: `noise_and_roll` (Speech Commands)
    per batch, on the device: `mixup`, then `spec_augment` (built from `iid_mask`)
"""

import numpy as np
import torch


# A target entry that the losses and metrics skip (the transformers convention).
IGNORED_TARGET = -100


def roll_and_gain(
    waveform: np.ndarray, gain_beta: float = 10.0, gain_offset: float = 0.5, rng=np.random, shift: int | None = None
) -> np.ndarray:
    """Circularly shift the waveform by `shift` samples (default: a uniform offset) and scale it by
    `Beta(gain_beta, gain_beta) + gain_offset`."""
    if shift is None:
        shift = rng.randint(len(waveform))
    gain = rng.beta(gain_beta, gain_beta) + gain_offset
    return (np.roll(waveform, shift) * gain).astype(np.float32)


def noise_and_roll(features: np.ndarray, noise_scale: float = 0.1, max_shift: int = 10, rng=np.random) -> np.ndarray:
    """Speech Commands augmentation of normalised `(frames, bins)` features: add `U[0,1)` noise per bin scaled by
    `U[0,1) * noise_scale` per clip, then roll along time by an integer in `[-max_shift, max_shift)`."""
    noise = rng.rand(*features.shape) * (rng.rand() * noise_scale)
    return np.roll(features + noise, rng.randint(-max_shift, max_shift), axis=0).astype(np.float32)


def mixup(
    input_values: torch.Tensor, labels: torch.Tensor, alpha: float, prob: float = 0.9, rng=np.random
) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Batch mixup (timm's "batch" mode): with probability `prob`, mix the batch with its reverse using one
    `lambda ~ Beta(alpha, alpha)` for inputs and float targets alike. Returns the inputs, the targets and lambda.

    Targets are `(batch, num_labels)` or, for frame targets, `(batch, num_steps, num_labels)`; an entry of -100
    (ignored, e.g. padding) stays ignored in the mix when either clip has it."""
    if alpha <= 0.0 or rng.rand() >= prob:
        return input_values, labels, 1.0
    if not labels.is_floating_point() or labels.ndim not in (2, 3):
        raise ValueError(
            "mixup needs (batch, num_labels) or (batch, num_steps, num_labels) float targets, got "
            f"{labels.dtype} of shape {tuple(labels.shape)}."
        )
    lam = float(rng.beta(alpha, alpha))
    mixed_inputs = input_values * lam + input_values.flip(0) * (1.0 - lam)
    mixed_labels = labels * lam + labels.flip(0) * (1.0 - lam)
    ignored = (labels == IGNORED_TARGET) | (labels.flip(0) == IGNORED_TARGET)
    return mixed_inputs, mixed_labels.masked_fill(ignored, IGNORED_TARGET), lam


def iid_mask(batch_size: int, size: int, max_width: float, rng=np.random, device=None) -> torch.BoolTensor:
    """torchaudio's iid SpecAugment mask, `(batch, size)`: per row `[floor(s), floor(s) + floor(w))` with
    `w ~ U[0, max_width)` and `s ~ U[0, size - w)`, so every mask is narrower than `max_width`."""
    width = rng.rand(batch_size) * max_width
    start = rng.rand(batch_size) * (size - width)
    start, end = np.floor(start), np.floor(start) + np.floor(width)
    positions = np.arange(size)
    mask = (positions >= start[:, None]) & (positions < end[:, None])
    return torch.from_numpy(mask).to(device)


def spec_augment(input_values: torch.Tensor, ratio: float, rng=np.random) -> torch.Tensor:
    """Zero one frequency band (narrower than `bins * ratio`) and one time span (narrower than `frames * ratio`) of
    every `(frames, bins)` spectrogram of the batch, as the official fine-tuning does."""
    if ratio <= 0.0:
        return input_values
    batch_size, num_frames, num_bins = input_values.shape
    frequency_mask = iid_mask(batch_size, num_bins, num_bins * ratio, rng, input_values.device)
    time_mask = iid_mask(batch_size, num_frames, num_frames * ratio, rng, input_values.device)
    return input_values.masked_fill(frequency_mask[:, None, :] | time_mask[:, :, None], 0.0)


__all__ = ["IGNORED_TARGET", "iid_mask", "mixup", "noise_and_roll", "roll_and_gain", "spec_augment"]
