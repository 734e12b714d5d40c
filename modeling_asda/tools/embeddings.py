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
"""`asda-extract-embeddings`: ASDA embeddings of audio files, folders, manifests or a `datasets` dataset.

    asda-extract-embeddings my_audio/ --model asda-base --output_dir embeddings/ --granularity frame --layer 8

Granularities (the official `feature_extract.py`'s):
    utterance: the CLS token, `(hidden_size,)`.
    frame: the patch tokens, `(num_time_patches * 8, hidden_size)`, time-major: row `t * 8 + f` is time patch `t`
        (frames `16 t ... 16 t + 15`, i.e. 160 ms from `0.16 t` s) and frequency patch `f` (mel bins `16 f ... 16 f + 15`,
        `f = 0` lowest), about 50 tokens per second. `x.reshape(-1, 8, hidden_size).mean(1)` gives one vector per
        160 ms.
    all: the CLS token, then the patch tokens.
    patch_statistics: every frequency patch's token mean, then standard deviation, over the clip's time patches,
        `(8 * 2 * hidden_size,)` (frequency patch `f` at `f * 2 * hidden_size`): one vector per clip for a linear
        probe, where on small data it keeps far more than the CLS token (docs/experiment.md).
By default every clip is embedded at its own length (rounded up to 16 frames): clips are batched with padding and an
attention mask, which gives each clip the result it would have alone, and the patches past its end are dropped.
`--max_length N` instead pads or cuts every clip to N frames with no mask, as the official tool does
(`--target_length`), and keeps every patch. The position table covers `max_time_patches * 16` frames (2 min 2.88 s);
longer clips are refused and reported: cut them, or pass `--max_length` to embed their first N frames.

Output (`--output_dir`): one `<key>.npy` per clip (float32), the key being the file's path relative to the inputs'
common folder without its extension, or the `--id_column` / row index of a dataset; or (`--output_format safetensors`)
shards `embeddings-00000.safetensors`, ... of about `--shard_size_mb`, with `index.json` mapping each key to its
shard. `embedding_config.json` records the settings. Every file is written under a temporary name and renamed when
complete; a rerun skips the clips already written (a rerun with other settings is refused). Clips that cannot be read
or embedded (missing files included) are listed in `errors.tsv` and the run goes on; the exit status is then 1. Ctrl-C
or SIGTERM stops the run and its workers at once, keeping what is written, with exit status 130: rerun to resume.
"""

import csv
import json
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import save_file
from tqdm.auto import tqdm
from transformers import AutoConfig, AutoModel, HfArgumentParser

from ..data.audio import decode_audio, prepare_audio_column
from ..data.sources import load_manifest, scan_audio_files
from ..deployment import BACKENDS, check_backend_device, load_deployed_model
from ..feature_extraction_asda import AsdaFeatureExtractor
from .files import write_atomically, write_text_atomically
from .cli import (
    UsageError,
    check_arguments,
    default_device,
    load_feature_extractor,
    parse_arguments,
    sigterm_as_keyboard_interrupt,
)


logger = logging.getLogger(__name__)

GRANULARITIES = ("utterance", "frame", "all", "patch_statistics")
OUTPUT_FORMATS = ("npy", "safetensors")
DTYPES = ("float32", "bfloat16", "float16")
MANIFEST_SUFFIXES = (".csv", ".tsv", ".tab")
CONFIG_FILE = "embedding_config.json"
INDEX_FILE = "index.json"
ERRORS_FILE = "errors.tsv"
SHARD_PATTERN = "embeddings-{:05d}.safetensors"


@dataclass
class EmbeddingArguments:
    model: str = field(metadata={"help": "ASDA model (encoder, pre-trained or fine-tuned): a folder or a Hub id."})
    output_dir: str = field(metadata={"help": "Where the embeddings go; a rerun resumes there."})
    granularity: str = field(
        default="utterance",
        metadata={
            "help": "utterance (CLS), frame (patch tokens), all, or patch_statistics (every frequency patch's token "
            "mean and std over time, one vector: the features of a linear probe on small data)."
        },
    )
    layer: int = field(
        default=-1, metadata={"help": "Hidden state to take: 0 = input embeddings, k = block k, -1 = last block."}
    )
    max_length: int | None = field(
        default=None,
        metadata={
            "help": "Pad/cut every clip to this many frames, unmasked, as the official tool. Default: own length."
        },
    )
    output_format: str = field(default="npy", metadata={"help": "npy (a file per clip) or safetensors (shards)."})
    shard_size_mb: float = field(default=1024.0, metadata={"help": "Shard size for --output_format safetensors."})
    batch_size: int = field(default=8, metadata={"help": "Clips per forward pass."})
    num_workers: int = field(default=2, metadata={"help": "Processes reading and featurising audio."})
    dataset_name: str | None = field(
        default=None, metadata={"help": "A `datasets` dataset (Hub name, or a folder saved with save_to_disk)."}
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration."})
    split: str = field(default="train", metadata={"help": "Its split."})
    audio_column: str = field(default="audio", metadata={"help": "Audio column of a dataset or manifest."})
    id_column: str | None = field(
        default=None, metadata={"help": "Dataset column naming the clips (default: row index)."}
    )
    feature_preset: str | None = field(
        default=None, metadata={"help": "audioset, esc50 or speech_commands instead of the model's own extractor."}
    )
    device: str | None = field(default=None, metadata={"help": "Default: cuda when available, else cpu."})
    dtype: str = field(default="float32", metadata={"help": "Model dtype: float32, bfloat16 or float16 (GPU)."})
    backend: str = field(
        default="torch",
        metadata={
            "help": "torch, or onnx / onnx-int8: ONNX Runtime on the CPU with fp32 / int8 weights, exported once into "
            "MODEL/onnx/ (or --model is an asda-export-onnx --task feature-extraction folder)."
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})

    def __post_init__(self):
        check_arguments(
            self,
            positive=("max_length", "shard_size_mb", "batch_size"),
            non_negative=("num_workers",),
            choices={
                "granularity": GRANULARITIES,
                "output_format": OUTPUT_FORMATS,
                "dtype": DTYPES,
                "backend": BACKENDS,
            },
        )
        check_backend_device(self.backend, self.device)
        if self.backend != "torch" and self.dtype != "float32":
            raise UsageError(f"argument --dtype: the {self.backend} backend runs in float32, got {self.dtype}")


@dataclass
class ClipSource:
    key: str
    audio: object  # a path, or the row index of `dataset`


# ---------------------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------------------


def collect_files(inputs: list[str], audio_column: str = "audio") -> list[ClipSource]:
    """Audio files, folders (searched recursively) and csv/tsv manifests -> clips keyed by their path relative to the
    common folder of all the files, without extension. A path that does not exist is kept as a clip, to be reported
    as not found with the clips that fail."""
    paths = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += scan_audio_files(path, audio_column)[audio_column]
        elif path.is_file() and path.suffix.lower() in MANIFEST_SUFFIXES:
            paths += load_manifest(path, audio_column, label_column=None)[audio_column]
        else:
            paths.append(path)
    paths = list(dict.fromkeys(Path(os.path.abspath(path)) for path in paths))
    if not paths:
        raise ValueError("No audio files in the inputs.")
    root = Path(os.path.commonpath([path.parent for path in paths]))
    clips = [ClipSource(path.relative_to(root).with_suffix("").as_posix(), str(path)) for path in paths]
    check_unique_keys(clips)
    return clips


def collect_dataset_rows(dataset: datasets.Dataset, id_column: str | None) -> list[ClipSource]:
    if id_column is None:
        width = len(str(len(dataset) - 1))
        return [ClipSource(f"{index:0{width}d}", index) for index in range(len(dataset))]
    if id_column not in dataset.column_names:
        raise ValueError(f"No id column {id_column!r} in the dataset (columns: {dataset.column_names}).")
    clips = [ClipSource(str(key), index) for index, key in enumerate(dataset[id_column])]
    check_unique_keys(clips)
    return clips


def check_unique_keys(clips: list[ClipSource]):
    seen = {}
    for clip in clips:
        parts = Path(clip.key).parts
        if not parts or Path(clip.key).is_absolute() or ".." in parts:
            raise ValueError(f"Clip key {clip.key!r} (from {clip.audio!r}) is not a relative path inside the output.")
        if clip.key in seen:
            raise ValueError(
                f"{seen[clip.key]!r} and {clip.audio!r} would both be saved as {clip.key!r}; rename one of them."
            )
        seen[clip.key] = clip.audio


class ClipFeatures(torch.utils.data.Dataset):
    """Reads and featurises clips (in data-loader workers); a clip that fails gives its error instead of features."""

    def __init__(
        self,
        clips: list[ClipSource],
        feature_extractor: AsdaFeatureExtractor,
        max_frames: int,
        max_length: int | None,
        dataset: datasets.Dataset | None = None,
        audio_column: str = "audio",
    ):
        self.clips = clips
        self.feature_extractor = feature_extractor
        self.max_frames = max_frames
        self.max_length = max_length
        self.dataset = dataset
        self.audio_column = audio_column

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> dict:
        clip = self.clips[index]
        try:
            audio = clip.audio if self.dataset is None else self.dataset[clip.audio][self.audio_column]
            waveform, sampling_rate = decode_audio(audio, self.feature_extractor.sampling_rate)
            return {"key": clip.key, **self.featurise(waveform, sampling_rate)}
        except Exception as error:  # reported per clip; the run goes on
            return {"key": clip.key, "source": str(clip.audio), "error": f"{type(error).__name__}: {error}"}

    def featurise(self, waveform: np.ndarray, sampling_rate: int) -> dict:
        extractor = self.feature_extractor
        seconds = len(waveform) / sampling_rate
        if self.max_length is None:
            features = extractor(waveform, sampling_rate=sampling_rate, padding=False, truncation=False)
            num_frames = len(features["input_values"][0])
            if num_frames > self.max_frames:
                frame_shift = extractor.hop_length / extractor.sampling_rate
                raise ValueError(
                    f"the clip is {seconds:.2f} s long ({num_frames} frames); the model's position table covers "
                    f"{self.max_frames} frames ({self.max_frames * frame_shift:.2f} s). Cut it into shorter files, or "
                    "pass --max_length to embed its first frames as the official tool does."
                )
        else:
            features = extractor(
                waveform, sampling_rate=sampling_rate, padding="max_length", max_length=self.max_length
            )
            num_frames = self.max_length
        return {"input_values": features["input_values"][0], "num_frames": num_frames, "seconds": seconds}


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------


def write_json(path: Path, content):
    write_text_atomically(path, json.dumps(content, indent=2))


class NpyWriter:
    """One `<key>.npy` per clip; a clip is done when its file exists."""

    def __init__(self, output_dir: Path):
        self.output_dir = output_dir

    def path(self, key: str) -> Path:
        return self.output_dir / f"{key}.npy"

    def done_keys(self) -> set[str]:
        return {
            path.relative_to(self.output_dir).with_suffix("").as_posix() for path in self.output_dir.rglob("*.npy")
        }

    def write(self, key: str, embedding: np.ndarray, info: dict):
        def save(temporary):
            with open(temporary, "wb") as handle:
                np.save(handle, embedding)

        write_atomically(self.path(key), save)

    def close(self):
        pass


class SafetensorsShardWriter:
    """Clips gathered into shards of about `shard_bytes`, each written whole; `index.json` maps keys to shards.

    A shard holds one tensor per clip, named by its key; its metadata holds every clip's shape, `seconds` and
    `num_frames`.
    The shards are the record of what is done: after an interruption the clips of the unwritten shard are embedded
    again, into the same shards an uninterrupted run would have written.
    """

    def __init__(self, output_dir: Path, shard_bytes: int):
        self.output_dir = output_dir
        self.shard_bytes = shard_bytes
        self.buffer, self.buffer_info, self.buffer_bytes = {}, {}, 0
        self.next_shard = len(self.shard_paths())

    def shard_paths(self) -> list[Path]:
        paths = sorted(self.output_dir.glob(SHARD_PATTERN.replace("{:05d}", "[0-9]" * 5)))
        if [path.name for path in paths] != [SHARD_PATTERN.format(index) for index in range(len(paths))]:
            raise ValueError(
                f"The shards in {self.output_dir} are not numbered 0, 1, 2, ...: {[p.name for p in paths]}."
            )
        return paths

    @staticmethod
    def shard_clips(path: Path) -> dict[str, dict]:
        with safe_open(path, framework="numpy") as shard:
            return json.loads(shard.metadata()["clips"])

    def done_keys(self) -> set[str]:
        return {key for path in self.shard_paths() for key in self.shard_clips(path)}

    def write(self, key: str, embedding: np.ndarray, info: dict):
        self.buffer[key] = embedding
        self.buffer_info[key] = {"shape": list(embedding.shape), **info}
        self.buffer_bytes += embedding.nbytes
        if self.buffer_bytes >= self.shard_bytes:
            self.flush()

    def flush(self):
        if not self.buffer:
            return
        metadata = {"clips": json.dumps(self.buffer_info, sort_keys=True)}
        path = self.output_dir / SHARD_PATTERN.format(self.next_shard)
        write_atomically(path, lambda temporary: save_file(self.buffer, temporary, metadata=metadata))
        self.next_shard += 1
        self.buffer, self.buffer_info, self.buffer_bytes = {}, {}, 0

    def close(self):
        self.flush()
        index = {
            key: {"shard": path.name, **info}
            for path in self.shard_paths()
            for key, info in self.shard_clips(path).items()
        }
        write_json(self.output_dir / INDEX_FILE, {"clips": index})


def check_settings(output_dir: Path, settings: dict):
    """Record the run's settings, or refuse to add to embeddings made with other ones."""
    path = output_dir / CONFIG_FILE
    if path.exists():
        previous = json.loads(path.read_text(encoding="utf-8"))
        if previous != settings:
            changed = sorted(name for name in {**previous, **settings} if previous.get(name) != settings.get(name))
            raise ValueError(
                f"{output_dir} holds embeddings made with other settings (different: {', '.join(changed)}); choose "
                "another --output_dir, or remove it to start again."
            )
    else:
        write_json(path, settings)


def write_errors(output_dir: Path, errors: list[dict]):
    path = output_dir / ERRORS_FILE
    if not errors:
        path.unlink(missing_ok=True)
        return

    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            table = csv.writer(handle, delimiter="\t", lineterminator="\n")
            table.writerow(["key", "source", "error"])
            table.writerows([error["key"], error["source"], error["error"]] for error in errors)

    write_atomically(path, write)


# ---------------------------------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------------------------------


def resolve_layer(layer: int, num_layers: int) -> int:
    """`--layer` as an index into `hidden_states` (0 = input embeddings, k = block k)."""
    if not -(num_layers + 1) <= layer <= num_layers:
        raise UsageError(
            f"argument --layer: must lie in [{-(num_layers + 1)}, {num_layers}] for {num_layers} blocks, got {layer}"
        )
    return layer % (num_layers + 1)


def patch_statistics(patch_tokens: torch.Tensor, num_frequency_patches: int) -> torch.Tensor:
    """`(..., time x frequency, hidden)` patch tokens -> every frequency patch's token mean and standard deviation over
    time, `(..., frequency x 2 x hidden)`: the encoder's counterpart of each log-mel bin's mean and std over time."""
    grid = patch_tokens.unflatten(-2, (-1, num_frequency_patches))  # (..., time, frequency, hidden)
    std, mean = torch.std_mean(grid, dim=-3, correction=0)
    return torch.cat([mean, std], dim=-1).flatten(-2)


def select_tokens(hidden_state: torch.Tensor, granularity: str, num_time_patches: int, num_frequency_patches: int):
    """One clip's `(tokens, hidden)` state -> its embedding at `granularity`, keeping its first `num_time_patches`."""
    tokens = hidden_state[: 1 + num_time_patches * num_frequency_patches]
    if granularity == "patch_statistics":
        return patch_statistics(tokens[1:], num_frequency_patches)
    return {"utterance": tokens[0], "frame": tokens[1:], "all": tokens}[granularity]


def embed(args: EmbeddingArguments, clips: list[ClipSource], dataset: datasets.Dataset | None = None) -> dict:
    """Embed `clips` into `args.output_dir`; returns the counts and the errors of the run."""
    hub_kwargs = {"trust_remote_code": args.trust_remote_code}
    feature_extractor = load_feature_extractor(args.model, args.feature_preset, **hub_kwargs)
    config = AutoConfig.from_pretrained(args.model, **hub_kwargs)
    layer = resolve_layer(args.layer, config.num_hidden_layers)

    def load_encoder():
        model = AutoModel.from_pretrained(args.model, dtype=getattr(torch, args.dtype), **hub_kwargs)
        # Hidden state k is the output of block k: the blocks after it need not run.
        model.layers = model.layers[:layer]
        return model

    if args.backend == "torch":
        model = load_encoder().to(args.device or default_device()).eval()
    else:
        model = load_deployed_model(
            args.model, args.backend, load_encoder, "feature-extraction", layer, feature_extractor
        )
    if args.max_length is not None and (args.max_length % config.patch_size or args.max_length > config.max_frames):
        raise UsageError(
            f"argument --max_length: must be a multiple of {config.patch_size} up to {config.max_frames}, got "
            f"{args.max_length}"
        )

    if dataset is not None:
        # Decoded by `decode_audio` in the workers (with torchcodec, by `datasets` at the extractor's rate).
        dataset = prepare_audio_column(dataset, args.audio_column, feature_extractor.sampling_rate)

    output_dir = Path(args.output_dir)
    model_source = os.path.abspath(args.model) if os.path.isdir(args.model) else args.model
    check_settings(
        output_dir,
        {
            "model": model_source,
            "granularity": args.granularity,
            "layer": layer,
            "max_length": args.max_length,
            "output_format": args.output_format,
            "feature_extractor": json.loads(feature_extractor.to_json_string()),
            # Recorded for the ONNX backends only, so that folders written before the flag existed still resume.
            **({"backend": args.backend} if args.backend != "torch" else {}),
        },
    )
    if args.output_format == "npy":
        writer = NpyWriter(output_dir)
    else:
        writer = SafetensorsShardWriter(output_dir, int(args.shard_size_mb * 2**20))
    done = writer.done_keys()
    todo = [clip for clip in clips if clip.key not in done]
    logger.info("%d clips: %d already embedded, %d to embed.", len(clips), len(clips) - len(todo), len(todo))

    loader = torch.utils.data.DataLoader(
        ClipFeatures(todo, feature_extractor, config.max_frames, args.max_length, dataset, args.audio_column),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=list,
    )
    errors, embedded = [], 0
    with tqdm(total=len(todo), desc="Embedding", unit="clip") as progress:
        for batch in loader:
            errors += [item for item in batch if "error" in item]
            readable = [item for item in batch if "error" not in item]
            if readable:
                masked = args.max_length is None
                outputs = embed_batch(model, feature_extractor, readable, args.granularity, masked)
                for item, embedding in zip(readable, outputs):
                    writer.write(
                        item["key"], embedding, {"seconds": item["seconds"], "num_frames": item["num_frames"]}
                    )
            embedded += len(readable)
            progress.update(len(batch))
    writer.close()
    write_errors(output_dir, errors)
    for error in errors:
        logger.error("%s (%s): %s", error["key"], error["source"], error["error"])
    return {"embedded": embedded, "skipped": len(clips) - len(todo), "errors": errors}


@torch.inference_mode()
def embed_batch(model, feature_extractor: AsdaFeatureExtractor, batch: list[dict], granularity: str, masked: bool):
    """Featurised clips -> their embeddings (float32 numpy), each clip keeping its own time patches."""
    config = model.config
    padded = feature_extractor.pad(
        {"input_values": [item["input_values"] for item in batch]},
        padding="longest",
        pad_to_multiple_of=config.patch_size,
        return_attention_mask=masked,
        return_tensors="pt",
    ).to(model.device)
    hidden_states = model(padded["input_values"].to(model.dtype), attention_mask=padded.get("attention_mask"))
    hidden_states = hidden_states.last_hidden_state.float().cpu()
    embeddings = []
    for item, hidden_state in zip(batch, hidden_states):
        num_time_patches = -(-item["num_frames"] // config.patch_size)
        tokens = select_tokens(hidden_state, granularity, num_time_patches, config.num_frequency_patches)
        embeddings.append(tokens.clone().numpy())  # a copy: a view would keep the whole batch alive in a shard
    return embeddings


def main(argv: list[str] | None = None) -> int:
    parser = HfArgumentParser(EmbeddingArguments, description=__doc__.split("\n\n")[0])
    parser.add_argument("inputs", nargs="*", help="Audio files, folders (searched recursively), csv/tsv manifests.")
    args, namespace = parse_arguments(parser, argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.INFO)
    if bool(namespace.inputs) == bool(args.dataset_name):
        parser.error("give audio inputs (files, folders, manifests) or --dataset_name, not both or neither")
    dataset = None
    if args.dataset_name:
        if Path(args.dataset_name, "state.json").exists() or Path(args.dataset_name, "dataset_dict.json").exists():
            dataset = datasets.load_from_disk(args.dataset_name)
            dataset = dataset[args.split] if isinstance(dataset, datasets.DatasetDict) else dataset
        else:
            dataset = datasets.load_dataset(args.dataset_name, args.dataset_config_name, split=args.split)
        clips = collect_dataset_rows(dataset, args.id_column)
    else:
        clips = collect_files(namespace.inputs, args.audio_column)
    with sigterm_as_keyboard_interrupt():
        try:
            result = embed(args, clips, dataset)
        except (UsageError, ImportError) as error:
            parser.error(str(error))
        except KeyboardInterrupt:
            # The data loader's workers were stopped as the interruption left `embed`, and no file is half-written.
            logger.error("Interrupted: the embeddings written so far are kept; rerun the same command to resume.")
            return 130
    print(
        f"Embedded {result['embedded']} clips, skipped {result['skipped']} already done, "
        f"{len(result['errors'])} failed"
        + (f" (see {Path(args.output_dir) / ERRORS_FILE})." if result["errors"] else ".")
    )
    return 1 if result["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
