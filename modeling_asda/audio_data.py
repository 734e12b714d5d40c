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
"""Labelled audio for ASDA training: Hub datasets, audio folders and csv/tsv manifests as one `datasets.Dataset`.

Every source gives a dataset with an audio column (a path, `{"path", "bytes"}` or a decoded Hub `Audio` value) and a
label column; `LabelVocabulary` maps the labels (class names, AudioSet mids, ClassLabel ids, lists of them) to class
indices, and `decode_audio` turns an audio value into a waveform. Not a Hub file: it needs `datasets` and `soundfile`.
"""

import csv
import io
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import soundfile

from .feature_extraction_asda import load_audio


logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aif", ".aiff")


@dataclass
class LabelVocabulary:
    """Class names in index order, and every spelling of a label (AudioSet mid, display name) that maps to an index."""

    names: list[str]
    index: dict[str, int]
    multi_label: bool
    separator: str = ","

    @classmethod
    def from_names(cls, names: Sequence[str], multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        names = [str(name) for name in names]
        if len(set(names)) != len(names):
            raise ValueError(f"Duplicate class names: {sorted({name for name in names if names.count(name) > 1})}.")
        return cls(names, {name: position for position, name in enumerate(names)}, multi_label, separator)

    @classmethod
    def from_label_file(cls, path: str | os.PathLike, multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        """Read `index,mid,display_name` rows (AudioSet's label csv, with or without its header) or one name per line.

        Labels may then be given as mids or as display names.
        """
        with open(path, newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle) if row]
        if rows and rows[0][0].strip().lower() == "index":
            rows = rows[1:]
        if rows and len(rows[0]) >= 3:
            indices = [int(row[0]) for row in rows]
            if indices != list(range(len(rows))):
                raise ValueError(f"{path}: the index column must run 0, 1, 2, ... in order.")
            vocabulary = cls.from_names([row[2] for row in rows], multi_label, separator)
            for position, row in enumerate(rows):
                key = row[1].strip()
                if vocabulary.index.get(key, position) != position:
                    raise ValueError(f"{path}: {key!r} names two different classes.")
                vocabulary.index[key] = position
            return vocabulary
        return cls.from_names([row[0].strip() for row in rows], multi_label, separator)

    @classmethod
    def from_values(cls, values: Iterable, multi_label: bool, separator: str = ",") -> "LabelVocabulary":
        """The sorted distinct labels found in `values` (numerically when they are all integers)."""
        vocabulary = cls([], {}, multi_label, separator)
        names = {name for value in values for name in vocabulary.split(value)}
        numeric = all(name.lstrip("-").isdigit() for name in names)
        return cls.from_names(sorted(names, key=int if numeric else None), multi_label, separator)

    def split(self, value) -> list[str]:
        """One raw label value -> its label strings."""
        if isinstance(value, (list, tuple, np.ndarray)):
            return [str(item).strip() for item in value]
        if self.multi_label and isinstance(value, str):
            return [item.strip() for item in value.split(self.separator) if item.strip()]
        return [str(value).strip()]

    def encode(self, value) -> int | list[int]:
        """A raw label value -> a class index (single-label) or a sorted list of class indices (multi-label)."""
        names = self.split(value)
        unknown = [name for name in names if name not in self.index]
        if unknown:
            raise ValueError(f"Unknown label(s) {unknown} (the vocabulary has {len(self.names)} classes).")
        if self.multi_label:
            return sorted({self.index[name] for name in names})
        if len(names) != 1:
            raise ValueError(f"Single-label data, but {value!r} holds {len(names)} labels; pass multi_label=True.")
        return self.index[names[0]]

    @property
    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.names))

    @property
    def label2id(self) -> dict[str, int]:
        return {name: position for position, name in enumerate(self.names)}


def label_strings(dataset: datasets.Dataset, label_column: str) -> list:
    """The label column with ClassLabel ids replaced by their names (lists of names for multi-label ClassLabels)."""
    if label_column not in dataset.column_names:
        raise ValueError(f"No label column {label_column!r} in the dataset (columns: {dataset.column_names}).")
    feature = dataset.features[label_column]
    values = dataset[label_column]
    if isinstance(feature, datasets.ClassLabel):
        return [feature.int2str(value) for value in values]
    inner = getattr(feature, "feature", None)
    if isinstance(inner, datasets.ClassLabel):
        return [[inner.int2str(item) for item in value] for value in values]
    return values


def class_label_names(dataset: datasets.Dataset, label_column: str) -> list[str] | None:
    """Class names declared by a ClassLabel (or list of ClassLabel) column, else None."""
    feature = dataset.features.get(label_column)
    feature = getattr(feature, "feature", feature)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def is_multi_label_column(dataset: datasets.Dataset, label_column: str, separator: str = ",") -> bool:
    """Whether clips carry several labels: a list-typed column, or separator-joined strings."""
    feature = dataset.features[label_column]
    if isinstance(feature, (datasets.Sequence, datasets.List, list)):
        return True
    if isinstance(feature, datasets.Value) and feature.dtype in ("string", "large_string"):
        return any(separator in value for value in dataset[label_column])
    return False


def load_manifest(
    path: str | os.PathLike, audio_column: str = "audio", label_column: str | None = "label"
) -> datasets.Dataset:
    """A csv or tsv manifest with a header; audio paths relative to the manifest's folder are made absolute.

    `label_column=None` reads unlabelled audio (pre-training)."""
    path = Path(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=delimiter))
    if not rows:
        raise ValueError(f"{path} has no rows under its header.")
    for column in (audio_column, label_column):
        if column is not None and column not in rows[0]:
            raise ValueError(f"{path} has no {column!r} column (columns: {list(rows[0])}).")
    root = path.resolve().parent
    columns = {name: [row[name] for row in rows] for name in rows[0]}
    columns[audio_column] = [str(root / audio) for audio in columns[audio_column]]
    return datasets.Dataset.from_dict(columns)


def _audio_files(root: str | os.PathLike, pattern: str, where: str) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"Audio folder {root} does not exist.")
    paths = sorted(path for path in root.glob(pattern) if path.is_file() and path.suffix.lower() in AUDIO_EXTENSIONS)
    if not paths:
        raise ValueError(f"No audio files ({', '.join(AUDIO_EXTENSIONS)}) {where} {root}.")
    return paths


def scan_audio_folder(
    root: str | os.PathLike, audio_column: str = "audio", label_column: str = "label"
) -> datasets.Dataset:
    """`root/<label>/.../<clip>` (the audiofolder layout) -> a dataset of audio paths and folder-name labels."""
    root = Path(root)
    paths = _audio_files(root, "*/**/*", "in class sub-folders of")
    labels = [path.relative_to(root).parts[0] for path in paths]
    return datasets.Dataset.from_dict({audio_column: [str(path) for path in paths], label_column: labels})


def scan_audio_files(root: str | os.PathLike, audio_column: str = "audio") -> datasets.Dataset:
    """Every audio file under `root`, at any depth, as a dataset of paths (unlabelled audio for pre-training)."""
    paths = _audio_files(root, "**/*", "under")
    return datasets.Dataset.from_dict({audio_column: [str(path) for path in paths]})


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


__all__ = [
    "AUDIO_EXTENSIONS",
    "LabelVocabulary",
    "class_label_names",
    "decode_audio",
    "drop_short_clips",
    "is_multi_label_column",
    "label_strings",
    "load_manifest",
    "num_samples",
    "prepare_audio_column",
    "scan_audio_files",
    "scan_audio_folder",
]
