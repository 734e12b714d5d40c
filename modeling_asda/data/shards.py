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
"""Audio shards for training at AudioSet scale: `pack_shards` writes any audio source as parquet files of a fixed
number of clips plus an `index.json`; `stream_shards` reads them back as a shuffled `datasets.IterableDataset` split
across processes, and `EndlessStream` turns that into the endless, resumable stream the Trainer consumes.

Why parquet: it is the form `datasets` streams natively, from local files and from the Hub (where audio datasets are
published as parquet with an `Audio` column of encoded bytes), with shard-level splitting (`split_dataset_by_node`),
shuffle buffers and `state_dict()` resumption built in. WebDataset tars stream too, but `datasets` decodes them
through a generic builder without parquet's columnar reads (labels and lengths are read without touching the audio).

A shard holds, per clip: `audio` (the original encoded file, `{"bytes", "path"}`, decoded by `decode_audio`),
`num_samples` and `sampling_rate` (from the file header, so short clips are dropped without decoding), and, when
given, `label` (a class name, or a list of names for multi-label data) and `events` (`[{"onset", "offset",
"event_label"}]`, seconds). The clips are shuffled once when packing (seeded), so every shard is a random sample.
"""

import argparse
import csv
import hashlib
import io
import json
import logging
import os
import shutil
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import soundfile
import torch
from datasets.distributed import split_dataset_by_node

from .audio import _encoded_source
from .labels import LabelVocabulary
from .sources import is_multi_label_column, label_strings, load_audio_dataset


logger = logging.getLogger(__name__)

INDEX_NAME = "index.json"
AUDIO, LABEL, EVENTS = "audio", "label", "events"
FEATURES = {
    AUDIO: datasets.Audio(decode=False),
    "num_samples": datasets.Value("int64"),
    "sampling_rate": datasets.Value("int32"),
}
ENCODED_FILE = {"bytes": datasets.Value("binary"), "path": datasets.Value("string")}
EVENT_FEATURE = datasets.List(
    {"onset": datasets.Value("float32"), "offset": datasets.Value("float32"), "event_label": datasets.Value("string")}
)


def read_events_file(path: str | os.PathLike) -> dict[str, list[dict]]:
    """A DCASE-style tsv (`filename`, `onset`, `offset`, `event_label`; one row per event) -> events per file name.
    Rows without an event (empty onset) mark clips without events."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    missing = {"filename", "onset", "offset", "event_label"} - set(rows[0] if rows else ())
    if missing:
        raise ValueError(f"{path} needs the tab-separated columns filename, onset, offset, event_label (missing "
                         f"{sorted(missing)}).")  # fmt: skip
    events = {}
    for row in rows:
        clip_events = events.setdefault(Path(row["filename"]).name, [])
        if row["onset"].strip():
            onset, offset = float(row["onset"]), float(row["offset"])
            if not 0 <= onset <= offset:
                raise ValueError(f"{path}: event {row} has onset > offset or a negative onset.")
            clip_events.append({"onset": onset, "offset": offset, "event_label": row["event_label"].strip()})
    return events


def _file_bytes(value) -> tuple[bytes, str]:
    """An undecoded audio value (a path or `{"bytes", "path"}`) -> (the encoded file, its name)."""
    source = _encoded_source(value)
    if source is None:
        raise ValueError("Pack an undecoded audio column (paths or Audio(decode=False) values).")
    name = os.path.basename((value.get("path") or "") if isinstance(value, dict) else value)
    if isinstance(source, str):
        if not os.path.isfile(source):
            raise FileNotFoundError(f"Audio file {source} not found.")
        return Path(source).read_bytes(), name
    return source.getvalue(), name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def pack_shards(
    dataset: datasets.Dataset,
    output_dir: str | os.PathLike,
    clips_per_shard: int = 1000,
    audio_column: str = "audio",
    label_column: str | None = None,
    label_separator: str = ",",
    events: dict[str, list[dict]] | None = None,
    shuffle: bool = True,
    seed: int = 0,
    split: str = "train",
) -> dict:
    """Write `dataset` as parquet shards of `clips_per_shard` clips (the last one may hold fewer) and an index into
    `output_dir`, which must not exist yet (it is written beside it, then renamed: a failed run leaves nothing).

    `label_column` names the labels to keep (class names, ClassLabel ids or lists, separator-joined strings); `events`
    maps clip file names to their events (`read_events_file`). Returns the index: the shards with their clip counts,
    label counts and sha256, and the totals.
    """
    output_dir = Path(output_dir)
    if output_dir.exists():
        raise FileExistsError(f"{output_dir} exists: pack into a new folder (shards are never overwritten).")
    if clips_per_shard <= 0:
        raise ValueError(f"clips_per_shard must be positive, got {clips_per_shard}.")
    if len(dataset) == 0:
        raise ValueError("The dataset to pack has no clips.")
    if audio_column not in dataset.column_names:
        raise ValueError(f"No audio column {audio_column!r} in the dataset (columns: {dataset.column_names}).")
    if isinstance(dataset.features[audio_column], datasets.Audio):
        dataset = dataset.cast_column(audio_column, datasets.Audio(decode=False))

    features = dict(FEATURES)
    labels = multi_label = None
    if label_column is not None:
        multi_label = is_multi_label_column(dataset, label_column, label_separator)
        names = LabelVocabulary([], {}, multi_label, label_separator)  # splits separator-joined strings
        labels = [
            names.split(value) if multi_label else str(value) for value in label_strings(dataset, label_column)
        ]
        features[LABEL] = datasets.List(datasets.Value("string")) if multi_label else datasets.Value("string")
    if events is not None:
        features[EVENTS] = EVENT_FEATURE
    features = datasets.Features(features)

    order = np.random.default_rng(seed).permutation(len(dataset)) if shuffle else np.arange(len(dataset))
    num_shards = -(-len(dataset) // clips_per_shard)
    staging = output_dir.with_name(f".{output_dir.name}.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shards, events_missing = [], 0
    try:
        for shard_index in range(num_shards):
            rows = order[shard_index * clips_per_shard : (shard_index + 1) * clips_per_shard].tolist()
            columns = {name: [] for name in features}
            for row, value in zip(rows, dataset.select(rows)[audio_column]):
                encoded, name = _file_bytes(value)
                try:
                    info = soundfile.info(io.BytesIO(encoded))
                except soundfile.LibsndfileError as error:
                    raise ValueError(f"Cannot read clip {name or row} as audio: {error}.") from error
                columns[AUDIO].append({"bytes": encoded, "path": name})
                columns["num_samples"].append(info.frames)
                columns["sampling_rate"].append(info.samplerate)
                if labels is not None:
                    columns[LABEL].append(labels[row])
                if events is not None:
                    events_missing += name not in events
                    columns[EVENTS].append(events.get(name, []))
            file_name = f"{split}-{shard_index:05d}-of-{num_shards:05d}.parquet"
            # Stored as the Audio struct directly: Audio.encode_example would need torchcodec even for bytes.
            shard = datasets.Dataset.from_dict(columns, features=datasets.Features({**features, AUDIO: ENCODED_FILE}))
            shard.cast_column(AUDIO, features[AUDIO]).to_parquet(staging / file_name)
            label_counts = Counter(
                name for value in columns.get(LABEL, []) for name in (value if multi_label else [value])
            )
            shards.append({"file": file_name, "num_clips": len(rows), "labels": dict(sorted(label_counts.items())),
                           "sha256": _sha256(staging / file_name)})  # fmt: skip
        if events_missing:
            logger.warning("%d of %d clips have no row in the events file: packed with no events.",
                           events_missing, len(dataset))  # fmt: skip
        total_labels = Counter()
        for shard in shards:
            total_labels.update(shard["labels"])
        index = {
            "format": "parquet",
            "num_clips": len(dataset),
            "num_shards": num_shards,
            "clips_per_shard": clips_per_shard,
            "columns": list(features),
            "label_column": LABEL if labels is not None else None,
            "multi_label": multi_label,
            "labels": dict(sorted(total_labels.items())),
            "shuffled_with_seed": seed if shuffle else None,
            "shards": shards,
        }
        (staging / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return index


def read_index(directory: str | os.PathLike, verify: bool = False) -> dict:
    """The `index.json` of a shard folder, checked against the files: every shard exists and holds the number of
    clips listed (read from the parquet footer); with `verify`, its sha256 matches too."""
    import pyarrow.parquet as parquet

    directory = Path(directory)
    if not (directory / INDEX_NAME).is_file():
        raise FileNotFoundError(f"{directory} has no {INDEX_NAME}: give a folder written by asda-pack.")
    index = json.loads((directory / INDEX_NAME).read_text(encoding="utf-8"))
    for shard in index["shards"]:
        path = directory / shard["file"]
        if not path.is_file():
            raise FileNotFoundError(f"Shard {path} listed in {directory / INDEX_NAME} is missing.")
        rows = parquet.read_metadata(path).num_rows
        if rows != shard["num_clips"]:
            raise ValueError(f"Shard {path} holds {rows} clips, its index says {shard['num_clips']}.")
        if verify and _sha256(path) != shard["sha256"]:
            raise ValueError(f"Shard {path} does not match the sha256 in its index (changed or corrupt).")
    return index


def shard_paths(directory: str | os.PathLike, index: dict) -> list[str]:
    return [str(Path(directory) / shard["file"]) for shard in index["shards"]]


def load_shards(directory: str | os.PathLike) -> datasets.Dataset:
    """The shards as one map-style dataset (memory-mapped by `datasets`), for random access: class-balanced sampling,
    evaluation sets."""
    files = shard_paths(directory, read_index(directory))
    dataset = datasets.load_dataset("parquet", data_files=files, split="train")
    return dataset.cast_column(AUDIO, datasets.Audio(decode=False))


def stream_shards(
    directory: str | os.PathLike,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    shuffle_buffer_size: int = 1000,
    min_samples: int = 0,
) -> datasets.IterableDataset:
    """The shards as a `datasets.IterableDataset` of this process's part: clips shorter than `min_samples` (at their
    own rate) dropped, shard order shuffled (every pass anew, see `EndlessStream`) with a buffer of
    `shuffle_buffer_size` clips, then split with `split_dataset_by_node`: whole shards per process when there are at
    least as many shards as processes (uneven counts are fine: `EndlessStream` repeats), else one clip in
    `world_size`. Every process must pass the same `seed`."""
    if shuffle_buffer_size < 1:
        raise ValueError(f"shuffle_buffer_size must be at least 1 (1: no buffer), got {shuffle_buffer_size}.")
    files = shard_paths(directory, read_index(directory))
    dataset = datasets.load_dataset("parquet", data_files=files, split="train", streaming=True)
    dataset = dataset.cast_column(AUDIO, datasets.Audio(decode=False))
    if min_samples > 0:
        dataset = dataset.filter(lambda length: length >= min_samples, input_columns="num_samples")
    # One shard at a time feeds the buffer: the shards are random samples already (shuffled when packed), and
    # datasets 5.2 cannot resume its interleaving of several shards in a data-loader worker that holds fewer of them.
    dataset = dataset.shuffle(seed=seed, buffer_size=shuffle_buffer_size, max_buffer_input_shards=1)
    strategy = "shards" if dataset.num_shards >= world_size else "examples"
    return split_dataset_by_node(dataset, rank=rank, world_size=world_size, strategy=strategy)


class EndlessStream(torch.utils.data.IterableDataset):
    """Endless passes over a `datasets.IterableDataset`, each reshuffled (`set_epoch`), with every example passed
    through `transform` (a batch function, as `datasets.with_transform` takes).

    Endless, so that every process of a distributed run draws as many batches as the run has steps, whatever its
    share of the shards (the Trainer stops at `max_steps`). `state_dict` / `load_state_dict` (the pass and the
    dataset's own state) make it resumable by torchdata's `StatefulDataLoader`, which calls them in every worker.
    """

    def __init__(self, dataset: datasets.IterableDataset, transform, num_clips: int | None = None):
        self.dataset = dataset
        self.transform = transform
        self.num_clips = num_clips
        self.epoch = 0
        self._resumed = False

    def __iter__(self):
        resumed, self._resumed = self._resumed, False
        while True:
            self.dataset.set_epoch(self.epoch)
            empty = True
            for example in self.dataset:
                empty = False
                batch = self.transform({name: [value] for name, value in example.items()})
                yield {name: values[0] for name, values in batch.items()}
            if empty and not resumed:
                raise ValueError(
                    "A pass over this process's shards yielded no clip: fewer shards than processes x data-loader "
                    "workers, or every clip filtered out (too short). Pack more shards or use fewer workers."
                )
            resumed = False
            self.epoch += 1

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "dataset": self.dataset.state_dict()}

    def load_state_dict(self, state: dict):
        self.epoch = state["epoch"]
        if state["dataset"] is not None:
            self.dataset.load_state_dict(state["dataset"])
            self._resumed = True


def main(argv: list[str] | None = None):
    """`asda-pack`: an audio folder, a csv/tsv manifest or a `datasets` dataset -> parquet shards + index.json."""
    parser = argparse.ArgumentParser(prog="asda-pack", description=main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--audio_dir", help="Audio folder: <dir>/<label>/<clip>, or any layout with --unlabelled.")
    source.add_argument("--manifest", help="csv/tsv manifest with a header and an audio column of paths.")
    source.add_argument("--dataset_name", help="A datasets dataset (Hub id or local folder) with an audio column.")
    source.add_argument("--check", metavar="SHARD_DIR", help="Check a shard folder against its index (and sha256).")
    parser.add_argument("--output_dir", help="New folder for the shards and index.json.")
    parser.add_argument("--dataset_config_name")
    parser.add_argument("--split", default="train", help="Split of --dataset_name; also names the shard files.")
    parser.add_argument("--audio_column", default="audio")
    parser.add_argument("--label_column", default="label")
    parser.add_argument("--unlabelled", action="store_true", help="Keep no labels (pre-training audio).")
    parser.add_argument("--label_separator", default=",", help="Separator of multi-label strings.")
    parser.add_argument("--events_file", help="DCASE tsv (filename, onset, offset, event_label) to store per clip.")
    parser.add_argument("--clips_per_shard", type=int, default=1000)
    parser.add_argument("--no_shuffle", action="store_true", help="Keep the source order (default: shuffle once).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    if args.check:
        index = read_index(args.check, verify=True)
        print(f"{args.check}: {index['num_shards']} shards, {index['num_clips']} clips, all match {INDEX_NAME}.")
        return index
    if not args.output_dir:
        parser.error("--output_dir is required to pack.")
    if args.clips_per_shard <= 0:
        parser.error(f"argument --clips_per_shard: must be a positive integer, got {args.clips_per_shard}")
    label_column = None if args.unlabelled else args.label_column
    dataset = load_audio_dataset(
        "train", file=args.manifest, folder=args.audio_dir, dataset_name=args.dataset_name,
        dataset_config_name=args.dataset_config_name, split_name=args.split, audio_column=args.audio_column,
        label_column=label_column,
    )  # fmt: skip
    events = read_events_file(args.events_file) if args.events_file else None
    index = pack_shards(
        dataset, args.output_dir, args.clips_per_shard, args.audio_column, label_column, args.label_separator,
        events, shuffle=not args.no_shuffle, seed=args.seed, split=args.split,
    )  # fmt: skip
    print(f"Packed {index['num_clips']} clips into {index['num_shards']} shards in {args.output_dir}.")
    return index


__all__ = [
    "EndlessStream",
    "load_shards",
    "main",
    "pack_shards",
    "read_events_file",
    "read_index",
    "stream_shards",
]
