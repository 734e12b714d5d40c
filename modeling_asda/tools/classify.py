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
"""`asda-classify`: what is in these recordings, window by window.

    asda-classify clip.wav long_recording.flac --model asda-base-as2m --top_k 5

A recording is cut into windows of whole spectrogram frames; every window is one model input, featurised and padded
as the official evaluation treats a clip, and gets one output row with its time span. By default a window is the
model's clip length (its feature extractor's `max_length`: 1024 frames = 10.24 s for AudioSet models) and windows
follow each other without gap or overlap, so every frame of the recording is classified exactly once; the last window
holds the rest of the recording (padded like a short clip) and ends at the recording's end.

With `--events` and a frame classifier (sound event detection), the output is the recording's events instead:

    asda-classify long_recording.wav --model my-sed-model --events --median_filter_seconds 0.48 --output_format tsv

The windows' frame scores are put on one timeline (averaged where windows overlap), median-filtered and thresholded,
so an event that crosses a window boundary is one row: onset, offset, label and score (its highest frame score).
"""

import json
import logging
import math
import sys
from dataclasses import dataclass, field
from functools import partial

import numpy as np
import torch
from transformers import AutoModelForAudioClassification, AutoModelForAudioFrameClassification, HfArgumentParser

from ..deployment import BACKENDS, check_backend_device, load_deployed_model
from ..feature_extraction_asda import AsdaFeatureExtractor, load_audio
from .cli import (
    UsageError,
    check_arguments,
    default_device,
    load_feature_extractor,
    parse_arguments,
)
from .events import Detection, recording_events


logger = logging.getLogger(__name__)

OUTPUT_FORMATS = ("text", "jsonl", "tsv")
EVENTS_TSV_HEADER = "filename\tonset\toffset\tevent_label\tscore"


@dataclass(frozen=True)
class Window:
    """One model input cut from a recording: its span in seconds and the waveform samples its frames read."""

    start: float
    end: float
    samples: slice


def sliding_windows(
    num_samples: int, feature_extractor: AsdaFeatureExtractor, window_frames: int, hop_frames: int
) -> list[Window]:
    """Windows of `window_frames` spectrogram frames every `hop_frames` frames, covering the recording's frames.

    Frame `j` reads samples `[j * hop_length, j * hop_length + frame_length)` and stands for the time span
    `[j, j + 1) * hop_length / sampling_rate`; a window of frames `[s, e)` reads the samples of its frames (so a window
    featurised alone gives exactly those frames of the whole recording's spectrogram) and spans `[s, e) * 10 ms`. The
    windows stop at the first one that reaches the last frame, which spans to the end of the recording.
    """
    frame_length, hop_length = feature_extractor.frame_length, feature_extractor.hop_length
    sampling_rate = feature_extractor.sampling_rate
    if num_samples < frame_length:
        raise ValueError(
            f"The recording has {num_samples} samples at {sampling_rate} Hz, shorter than one analysis frame "
            f"({frame_length} samples)."
        )
    if not 0 < hop_frames <= window_frames:
        raise ValueError(
            f"Need 0 < hop <= window (got a hop of {hop_frames} and a window of {window_frames} frames): a hop longer "
            "than the window would leave audio between windows unclassified."
        )
    num_frames = 1 + (num_samples - frame_length) // hop_length
    num_windows = 1 + math.ceil(max(num_frames - window_frames, 0) / hop_frames)
    windows = []
    for index in range(num_windows):
        first = index * hop_frames
        last = min(first + window_frames, num_frames)  # exclusive
        end = num_samples / sampling_rate if last == num_frames else last * hop_length / sampling_rate
        samples = slice(first * hop_length, (last - 1) * hop_length + frame_length)
        windows.append(Window(first * hop_length / sampling_rate, end, samples))
    return windows


def seconds_to_frames(seconds: float, feature_extractor: AsdaFeatureExtractor, name: str) -> int:
    """A duration as a whole number of frame shifts (10 ms), or a `UsageError` naming the argument `name`."""
    frames = seconds * feature_extractor.sampling_rate / feature_extractor.hop_length
    if not 1 <= frames < math.inf or not math.isclose(frames, round(frames), abs_tol=1e-6):
        frame_shift = feature_extractor.hop_length / feature_extractor.sampling_rate
        raise UsageError(
            f"argument {name}: must be a positive multiple of the {frame_shift * 1000:g} ms frame shift, got {seconds}"
        )
    return round(frames)


@torch.inference_mode()
def classify_windows(
    model,
    feature_extractor: AsdaFeatureExtractor,
    waveform: np.ndarray,
    windows: list[Window],
    window_frames: int,
    batch_size: int = 8,
) -> np.ndarray:
    """Class scores `(num_windows, num_labels)` of a waveform at `feature_extractor.sampling_rate`: sigmoid scores
    for a multi-label model, softmax probabilities otherwise; for a frame classifier, sigmoid scores
    `(num_windows, num_time_patches, num_labels)`.

    Every window is featurised on its own and padded to the model's clip length (or to the window, if longer), with the
    extractor's own mask setting: the last, shorter window is classified as the official evaluation classifies a
    short clip.
    """
    patch_size = model.config.patch_size
    input_frames = max(feature_extractor.max_length, math.ceil(window_frames / patch_size) * patch_size)
    if input_frames > model.config.max_frames:
        raise ValueError(
            f"A window of {window_frames} frames needs {input_frames} input frames; the model takes at most "
            f"{model.config.max_frames} (its position table). Use a shorter window."
        )
    multi_label = model.config.problem_type == "multi_label_classification"
    scores = []
    for start in range(0, len(windows), batch_size):
        chunk = [waveform[window.samples] for window in windows[start : start + batch_size]]
        inputs = feature_extractor(
            chunk,
            sampling_rate=feature_extractor.sampling_rate,
            padding="max_length",
            max_length=input_frames,
            return_tensors="pt",
        ).to(model.device)
        inputs["input_values"] = inputs["input_values"].to(model.dtype)
        logits = model(**inputs).logits.float()
        sigmoid = multi_label or logits.ndim == 3
        scores.append((logits.sigmoid() if sigmoid else logits.softmax(dim=-1)).cpu().numpy())
    return np.concatenate(scores)


@dataclass
class ClassifyArguments:
    model: str = field(metadata={"help": "Fine-tuned ASDA classifier: a folder or a Hub id."})
    top_k: int = field(default=5, metadata={"help": "Labels printed per window, best first."})
    window_seconds: float | None = field(
        default=None,
        metadata={
            "help": "Window length (a multiple of 10 ms). Default: the model's clip length (10.24 s for AudioSet)."
        },
    )
    hop_seconds: float | None = field(
        default=None, metadata={"help": "Distance between window starts, at most the window. Default: the window."}
    )
    batch_size: int = field(default=8, metadata={"help": "Windows per forward pass."})
    output_format: str = field(
        default="text",
        metadata={
            "help": "'text' (aligned rows), 'jsonl' (one json object per window or event) or, with --events, 'tsv' "
            "(filename, onset, offset, event_label, score with a header: the event manifest form)."
        },
    )
    events: bool = field(
        default=False,
        metadata={"help": "Sound event detection with a frame classifier: print events, merged across windows."},
    )
    threshold: float = field(default=0.5, metadata={"help": "--events: score at which a frame holds an event."})
    median_filter_seconds: float = field(
        default=0.0, metadata={"help": "--events: median filter over time before thresholding (seconds; 0: none)."}
    )
    feature_preset: str | None = field(
        default=None, metadata={"help": "audioset, esc50 or speech_commands instead of the model's own extractor."}
    )
    device: str | None = field(default=None, metadata={"help": "Default: cuda when available, else cpu."})
    backend: str = field(
        default="torch",
        metadata={
            "help": "torch, or onnx / onnx-int8: ONNX Runtime on the CPU with fp32 / int8 weights, exported once into "
            "MODEL/onnx/ (or --model is an asda-export-onnx folder)."
        },
    )
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})

    def __post_init__(self):
        check_arguments(
            self,
            positive=("top_k", "window_seconds", "hop_seconds", "batch_size", "threshold"),
            non_negative=("median_filter_seconds",),
            choices={"output_format": OUTPUT_FORMATS, "backend": BACKENDS},
        )
        check_backend_device(self.backend, self.device)
        if self.output_format == "tsv" and not self.events:
            raise UsageError("argument --output_format: 'tsv' lists events; it needs --events")
        if self.events and self.backend != "torch":
            raise UsageError(f"argument --backend: --events runs frame classifiers on torch only, got {self.backend}")


def load_classifier(model_name_or_path: str, frame_classifier: bool = False, **hub_kwargs):
    """A fine-tuned clip (or frame) classifier, or a `UsageError` for a checkpoint without a trained head (whose head
    would be randomly initialised and give meaningless scores)."""
    auto_class = AutoModelForAudioFrameClassification if frame_classifier else AutoModelForAudioClassification
    model, loading_info = auto_class.from_pretrained(model_name_or_path, output_loading_info=True, **hub_kwargs)
    if loading_info["missing_keys"] and frame_classifier:
        raise UsageError(
            f"argument --model: {model_name_or_path} holds no trained frame classification head (it has no "
            f"{', '.join(sorted(loading_info['missing_keys']))}): --events needs a sound event detector. Fine-tune "
            "one on event manifests first (examples/run_finetune.py configuration/finetuning/strong-labels.json)."
        )
    if loading_info["missing_keys"]:
        raise UsageError(
            f"argument --model: {model_name_or_path} holds no trained classification head (it has no "
            f"{', '.join(sorted(loading_info['missing_keys']))}): it is an encoder or pre-training checkpoint. "
            "Fine-tune it on labelled audio first (examples/run_finetune.py), or use asda-extract-embeddings for its "
            "embeddings."
        )
    return model


def window_and_hop_frames(args: ClassifyArguments, feature_extractor: AsdaFeatureExtractor) -> tuple[int, int]:
    """`--window_seconds` (default: the model's clip length) and `--hop_seconds` (default: the window) in frames."""
    if args.window_seconds is None:
        window_frames = feature_extractor.max_length
    else:
        window_frames = seconds_to_frames(args.window_seconds, feature_extractor, "--window_seconds")
    if args.hop_seconds is None:
        return window_frames, window_frames
    hop_frames = seconds_to_frames(args.hop_seconds, feature_extractor, "--hop_seconds")
    if hop_frames > window_frames:
        raise UsageError(
            f"argument --hop_seconds: must be at most the window ({window_frames} frames), got {args.hop_seconds}: "
            "a hop longer than the window would leave audio between windows unclassified"
        )
    return window_frames, hop_frames


def format_row(path: str, window: Window, labels: list[str], scores: list[float], output_format: str) -> str:
    if output_format == "jsonl":
        record = {"file": path, "start": round(window.start, 3), "end": round(window.end, 3)}
        return json.dumps({**record, "labels": labels, "scores": [round(score, 6) for score in scores]})
    predictions = " | ".join(f"{label} {score:.3f}" for label, score in zip(labels, scores))
    return f"{path}\t{window.start:8.2f}\t{window.end:8.2f}\t{predictions}"


def format_event(path: str, event: Detection, output_format: str) -> str:
    if output_format == "jsonl":
        record = {"file": path, "onset": round(event.onset, 3), "offset": round(event.offset, 3)}
        return json.dumps({**record, "label": event.label, "score": round(event.score, 6)})
    if output_format == "tsv":
        return f"{path}\t{event.onset:.3f}\t{event.offset:.3f}\t{event.label}\t{event.score:.6f}"
    return f"{path}\t{event.onset:8.2f}\t{event.offset:8.2f}\t{event.label}\t{event.score:.3f}"


def main(argv: list[str] | None = None) -> int:
    """Classify every file and print one row per window; a file that cannot be read or classified is reported on
    stderr with its name and skipped. Returns (and exits with) 1 when a file failed, 2 for bad arguments."""
    parser = HfArgumentParser(ClassifyArguments, description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", help="Audio files (anything soundfile reads: wav, flac, ogg, mp3, ...).")
    args, namespace = parse_arguments(parser, argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)

    hub_kwargs = {"trust_remote_code": args.trust_remote_code}
    feature_extractor = load_feature_extractor(args.model, args.feature_preset, **hub_kwargs)
    try:
        window_frames, hop_frames = window_and_hop_frames(args, feature_extractor)
        if args.backend == "torch":
            model = load_classifier(args.model, args.events, **hub_kwargs).to(args.device or default_device()).eval()
        else:
            load_torch_model = partial(load_classifier, args.model, **hub_kwargs)
            model = load_deployed_model(
                args.model, args.backend, load_torch_model, "audio-classification", feature_extractor=feature_extractor
            )
    except (UsageError, ImportError) as error:
        parser.error(str(error))
    names = [model.config.id2label[index] for index in range(model.config.num_labels)]
    top_k = min(args.top_k, len(names))
    frame_seconds = feature_extractor.hop_length / feature_extractor.sampling_rate
    if args.events and args.output_format == "tsv":
        print(EVENTS_TSV_HEADER, flush=True)

    failed = 0
    for path in namespace.files:
        try:
            waveform = load_audio(path, feature_extractor.sampling_rate)
            windows = sliding_windows(len(waveform), feature_extractor, window_frames, hop_frames)
            scores = classify_windows(model, feature_extractor, waveform, windows, window_frames, args.batch_size)
        except Exception as error:  # a file that cannot be read or classified must not stop the others
            print(f"{path}: {type(error).__name__}: {error}", file=sys.stderr, flush=True)
            failed += 1
            continue
        if args.events:
            spans = [(window.start, window.end) for window in windows]
            step_seconds = model.config.patch_size * frame_seconds
            events = recording_events(
                list(scores), spans, step_seconds, frame_seconds, names, args.threshold, args.median_filter_seconds
            )
            for event in events:
                print(format_event(path, event, args.output_format), flush=True)
            continue
        for window, window_scores in zip(windows, scores):
            best = np.argsort(-window_scores, kind="stable")[:top_k]
            labels = [names[index] for index in best]
            print(format_row(path, window, labels, window_scores[best].tolist(), args.output_format), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
