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
"""Audio values of any source as waveforms: `decode_audio`, the lengths behind `drop_short_clips` (the official
loaders' minimum length), and `prepare_audio_column`, which sets up decoding by `datasets` where it can."""

import io
import logging
import os

import datasets
import numpy as np
import soundfile

from ..feature_extraction_asda import load_audio


logger = logging.getLogger(__name__)

# The official loaders skip clips under 10,000 samples (0.625 s at 16 kHz), counted at each file's own rate.
OFFICIAL_MIN_LENGTH_SAMPLES = 10_000


def prepare_audio_column(dataset: datasets.Dataset, audio_column: str, sampling_rate: int) -> datasets.Dataset:
    """Let `datasets` decode (and resample) an `Audio` column when torchcodec is installed; otherwise keep the encoded
    file (`{"path", "bytes"}`) for `decode_audio` to read with soundfile. Path columns are left as they are."""
    if audio_column not in dataset.column_names:
        raise ValueError(f"No audio column {audio_column!r} in the dataset (columns: {dataset.column_names}).")
    if isinstance(dataset.features[audio_column], datasets.Audio):
        decode = datasets.config.TORCHCODEC_AVAILABLE
        dataset = dataset.cast_column(audio_column, datasets.Audio(sampling_rate=sampling_rate, decode=decode))
    return dataset


def _encoded_source(value) -> str | io.BytesIO | None:
    """The file behind an audio value (a path, or in-memory bytes); None for already decoded audio."""
    if isinstance(value, (str, os.PathLike)):
        return os.fspath(value)
    if isinstance(value, dict) and "array" not in value:
        if value.get("bytes"):
            return io.BytesIO(value["bytes"])
        if value.get("path"):
            return value["path"]
        raise ValueError(f"Audio value without bytes or path: {str(value)[:80]!r}.")
    return None


def decode_audio(value, sampling_rate: int) -> tuple[np.ndarray, int]:
    """An audio value of any source -> `(mono float32 waveform, its sampling rate)`.

    Paths are read with `load_audio` at `sampling_rate` (a missing file raises `FileNotFoundError`); in-memory files
    (`{"bytes"}`, which `load_audio` does not take) and decoded values (a datasets `AudioDecoder`,
    `{"array", "sampling_rate"}`) come at their own rate, for the feature extractor to resample.
    """
    source = _encoded_source(value)
    if source is None:
        return np.asarray(value["array"], dtype=np.float32), int(value["sampling_rate"])
    if isinstance(source, str):
        return load_audio(source, sampling_rate), sampling_rate
    waveform, file_sampling_rate = soundfile.read(source, dtype="float32", always_2d=True)
    return waveform.mean(axis=1), file_sampling_rate


def num_samples(value) -> int:
    """Length of an audio value in samples at its own rate, from the file header where there is one."""
    source = _encoded_source(value)
    return len(value["array"]) if source is None else soundfile.info(source).frames


def drop_short_clips(dataset: datasets.Dataset, audio_column: str, min_samples: int) -> datasets.Dataset:
    """Remove clips shorter than `min_samples` at their own rate (the official loader skips clips under 10,000), with
    a warning that counts them; raise a `ValueError` if no clip is left."""
    if min_samples <= 0:
        return dataset
    feature = dataset.features[audio_column]
    view = (
        dataset.cast_column(audio_column, datasets.Audio(decode=False))
        if isinstance(feature, datasets.Audio)
        else dataset
    )
    lengths = (
        num_samples(value) for batch in view.select_columns(audio_column).iter(1024) for value in batch[audio_column]
    )
    keep = [index for index, length in enumerate(lengths) if length >= min_samples]
    if len(dataset) and not keep:
        raise ValueError(
            f"All {len(dataset)} clips are shorter than {min_samples} samples (counted at each file's own sampling "
            "rate): lower --min_length_samples (0 keeps every clip)."
        )
    if len(keep) < len(dataset):
        logger.warning(
            "Skipped %d of %d clips shorter than %d samples (counted at each file's own sampling rate); lower "
            "--min_length_samples to keep them (0 keeps every clip).",
            len(dataset) - len(keep),
            len(dataset),
            min_samples,
        )
        dataset = dataset.select(keep)
    return dataset


__all__ = ["decode_audio", "drop_short_clips", "num_samples", "prepare_audio_column"]
