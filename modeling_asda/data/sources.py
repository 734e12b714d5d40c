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
"""Where training audio comes from: Hub datasets, audio folders and csv/tsv manifests, each as one `datasets.Dataset`
with an audio column (a path, `{"path", "bytes"}` or a decoded Hub `Audio` value) and, for labelled data, a label
column. `load_audio_dataset` chooses the one source given; the other functions read the label column."""

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

import datasets


AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".opus", ".aif", ".aiff")


@dataclass
class AudioDataArguments:
    """Where the training audio comes from; the recipes' `DataArguments` add their own fields."""

    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset (or local dataset folder) name."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_split_name: str = field(default="train", metadata={"help": "Training split of --dataset_name."})
    train_dir: str | None = field(
        default=None,
        metadata={"help": "Training audio folder: <dir>/<label>/<clip> (pre-training: every audio file below it)."},
    )
    train_file: str | None = field(default=None, metadata={"help": "Training csv/tsv manifest with a header."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column with the audio (manifests: paths)."})
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training clips."})
    train_shards: str | None = field(
        default=None,
        metadata={"help": "Folder of parquet shards written by asda-pack (with its index.json), streamed by default."},
    )
    streaming: bool = field(
        default=True,
        metadata={"help": "Stream --train_shards; false loads them map-style (random access, e.g. balanced sampling)."},
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={
            "help": "Clips in the shuffle buffer of a stream (shard order is reshuffled every pass too). Resuming "
            "drops the buffer's clips from that pass; 1 makes a resumed run repeat an uninterrupted one exactly."
        },
    )


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



def load_audio_dataset(
    split: str,
    file: str | None = None,
    folder: str | None = None,
    dataset_name: str | None = None,
    shards: str | None = None,
    dataset_config_name: str | None = None,
    split_name: str = "train",
    audio_column: str = "audio",
    label_column: str | None = "label",
    **load_kwargs,
) -> datasets.Dataset | None:
    """The `split` ("train", "eval") from the one source given for it (`--{split}_file`, `--{split}_dir`,
    `--dataset_name` or `--{split}_shards`, read map-style), or None when none is. Folders are
    `<folder>/<label>/<clip>`, or with `label_column=None` (unlabelled audio) every audio file below them;
    `load_kwargs` go to `datasets.load_dataset`. Shards keep their own column names (`audio`, `label`)."""
    given = [source for source in (file, folder, dataset_name, shards) if source]
    if len(given) > 1:
        raise ValueError(
            f"Give one {split} source: --{split}_file, --{split}_dir, --dataset_name or --{split}_shards (got {given})."
        )
    if shards:
        from .shards import load_shards  # shards.py packs what this module loads

        return load_shards(shards)
    if file:
        return load_manifest(file, audio_column, label_column)
    if folder:
        if label_column is None:
            return scan_audio_files(folder, audio_column)
        return scan_audio_folder(folder, audio_column, label_column)
    if dataset_name:
        return datasets.load_dataset(dataset_name, dataset_config_name, split=split_name, **load_kwargs)
    return None


__all__ = [
    "AUDIO_EXTENSIONS",
    "AudioDataArguments",
    "class_label_names",
    "is_multi_label_column",
    "label_strings",
    "load_audio_dataset",
    "load_manifest",
    "scan_audio_files",
    "scan_audio_folder",
]
