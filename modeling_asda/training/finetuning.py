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
"""The official ASDA/EAT fine-tuning recipe (spec section 4) on the Hugging Face Trainer: its arguments, the per-clip
transform, the Trainer with the recipe's loss, and `run`, which `examples/run_finetune.py` calls.

Where each piece runs, in the official order:
    per clip (`AudioClassificationTransform`, data-loader workers, training split only for the augmentations):
        waveform roll + Beta gain -> log-mel features -> Speech Commands noise + time roll -> targets
    per batch (`AsdaFinetuningTrainer.compute_loss`, on the device, training only):
        mixup of the batch with its reverse -> SpecAugment (one frequency and one time mask per clip)
    optimiser: AdamW with layer-wise lr decay groups, each on fairseq's cosine schedule (`optim.py`)
    sampler: class-balanced multinomial draws for AudioSet-2M (`sampling.py`), or a stream of shards (`streaming.py`)
    metrics: mAP / mAUC / d' (multi-label), accuracy / top-5 accuracy (single-label) (`metrics.py`)

With `--strong_labels` the manifests list events (`filename, onset, offset, event_label`) and the recipe fine-tunes a
frame classifier (`AsdaForAudioFrameClassification`, sound event detection): `StrongLabelTransform` turns each clip's
events into multi-hot targets per time patch, rolled with the waveform; mixup mixes them; the loss is the binary
cross-entropy over the real time patches; the metrics are frame-level (`sed_metrics.frame_metrics`).
"""

import logging
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import torch
import torch.nn.functional as F
from huggingface_hub import EvalResult
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    AutoModelForAudioFrameClassification,
    HfArgumentParser,
    Trainer,
    TrainingArguments,
    default_data_collator,
    set_seed,
)

from ..data.audio import (
    OFFICIAL_MIN_LENGTH_SAMPLES,
    decode_audio,
    drop_short_clips,
    prepare_audio_column,
)
from ..data.events import EVENTS, as_events, event_dataset, event_labels, frame_targets, roll_events
from ..data.labels import LabelVocabulary
from ..data.shards import LABEL, read_index
from ..data.sources import (
    AudioDataArguments,
    class_label_names,
    is_multi_label_column,
    label_strings,
    load_audio_dataset,
)
from ..tools import cli
from ..tools.files import write_text_atomically
from ..tools.model_card import CARD_METRICS, finetuning_card_section, write_model_card
from . import TrainingRunResult, train_and_save_state
from .augment import IGNORED_TARGET, mixup, noise_and_roll, roll_and_gain, spec_augment
from .metrics import AudioClassificationMetrics, per_class_average_precision
from .optim import WeightDecayArguments, layer_decay_parameter_groups, official_cosine_schedule
from .sampling import ClassBalancedSampler, class_balanced_weights
from .sed_metrics import frame_metrics
from .streaming import StreamingTrainerMixin, stream_training_clips


logger = logging.getLogger(__name__)

LOSS_NORMALIZATIONS = ("positives", "samples", "entries")
LABEL_IDS = "label_ids"


@dataclass
class ModelArguments:
    """The model to fine-tune (or evaluate), or the config to train one from scratch."""

    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Pre-trained (or fine-tuned) model: a folder or a Hub id."}
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Config to train from scratch, e.g. configuration/models/asda-base.json."}
    )
    feature_extractor_name: str | None = field(
        default=None,
        metadata={"help": "Feature extractor folder or Hub id (default: feature_preset, else the model's)."},
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where to cache Hub downloads."})
    model_revision: str = field(default="main", metadata={"help": "Model revision (branch, tag or commit)."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private models and datasets."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})
    drop_path_rate: float = field(
        default=0.1, metadata={"help": "Stochastic depth at the last block (official: 0.1)."}
    )
    pooling_mode: str | None = field(
        default=None, metadata={"help": "'cls' (official) or 'mean'; default: the model's own setting."}
    )
    problem_type: str | None = field(
        default=None,
        metadata={
            "help": "'single_label_classification' (softmax cross-entropy) or 'multi_label_classification' (binary "
            "cross-entropy; official for AudioSet and SPC-2). Default: multi-label for multi-label data."
        },
    )
    ignore_mismatched_sizes: bool = field(
        default=False, metadata={"help": "Re-initialise a classifier whose size differs (fine-tuned -> new labels)."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "eager, sdpa, flash_attention_2, ..."})
    freeze_feature_encoder: bool = field(default=False, metadata={"help": "Freeze the patch embedding."})

    @property
    def hub_kwargs(self) -> dict:
        """The `from_pretrained` arguments that say where and how to download."""
        return {
            "cache_dir": self.cache_dir,
            "revision": self.model_revision,
            "token": self.token,
            "trust_remote_code": self.trust_remote_code,
        }


@dataclass
class DataArguments(AudioDataArguments):
    """The labelled splits (`--train_*`, `--eval_*`), their labels, and the features."""

    eval_split_name: str = field(default="validation", metadata={"help": "Evaluation split of --dataset_name."})
    eval_dir: str | None = field(default=None, metadata={"help": "Evaluation audio folder: <dir>/<label>/<clip>."})
    eval_file: str | None = field(default=None, metadata={"help": "Evaluation csv/tsv manifest with a header."})
    eval_shards: str | None = field(
        default=None, metadata={"help": "Evaluation shards written by asda-pack (read map-style)."}
    )
    label_column_name: str = field(default="label", metadata={"help": "Column with the label(s)."})
    label_file: str | None = field(
        default=None,
        metadata={"help": "Class list: AudioSet's index,mid,display_name csv or one name per line (fixes the order)."},
    )
    multi_label: bool | None = field(
        default=None, metadata={"help": "Clips carry several labels (default: detected from the label column)."}
    )
    label_separator: str = field(default=",", metadata={"help": "Separator of multi-label strings."})
    min_length_samples: int | None = field(
        default=None,
        metadata={
            "help": "Skip clips shorter than this many samples at their own rate, in both splits. Default: 10,000 when "
            "training (the official training loader, which also filters the subset it validates and reports on), "
            "0 in evaluation-only mode (the official AudioSet eval.py keeps every clip). 0: keep all."
        },
    )
    max_eval_samples: int | None = field(default=None, metadata={"help": "Keep only this many evaluation clips."})
    feature_preset: str | None = field(
        default=None, metadata={"help": "Feature statistics and length: audioset, esc50 or speech_commands."}
    )
    target_length: int | None = field(
        default=None, metadata={"help": "Frames per clip (pad/truncate), overrides the preset."}
    )
    norm_mean: float | None = field(default=None, metadata={"help": "Log-mel mean, overrides the preset."})
    norm_std: float | None = field(
        default=None, metadata={"help": "Log-mel standard deviation, overrides the preset."}
    )
    card_dataset: str | None = field(
        default=None, metadata={"help": "Dataset named on the model card (default: --dataset_name)."}
    )
    strong_labels: bool = field(
        default=False,
        metadata={
            "help": "Sound event detection: --train_file / --eval_file list events (columns --audio_column_name, "
            "onset, offset, event_label, in seconds; a row with empty event fields is a clip without events), and a "
            "frame classifier learns them per time patch."
        },
    )


@dataclass
class AsdaFinetuningArguments(TrainingArguments, WeightDecayArguments):
    """`TrainingArguments` whose defaults are the official fine-tuning recipe (ASDA `config/finetuning.yaml` and the
    `finetuning_*.sh` scripts), plus the recipe's augmentation, sampling and loss flags. Dataset-specific values
    (steps, batch size, mixup, SpecAugment ratio, ...) come from the presets in `configuration/finetuning/`."""

    learning_rate: float = field(
        default=5e-5, metadata={"help": "Peak learning rate (official: 5e-5; 2e-4 for SPC-2)."}
    )
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay, not applied to biases and 1-D tensors."}
    )
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2 (official: 0.95)."})
    max_grad_norm: float = field(default=0.0, metadata={"help": "Gradient clipping norm; 0 disables it (official)."})
    lr_scheduler_type: str = field(
        default="cosine_with_min_lr", metadata={"help": "Linear warm-up, then cosine decay to `min_lr` (official)."}
    )
    lr_scheduler_kwargs: dict | str | None = field(
        default_factory=lambda: {"min_lr": 1e-6}, metadata={"help": "Official cosine floor: min_lr 1e-6."}
    )
    eval_strategy: str = field(default="epoch", metadata={"help": "Validate every epoch, as the official runs do."})
    save_strategy: str = field(default="epoch", metadata={"help": "Checkpoint every epoch (official)."})
    save_total_limit: int | None = field(default=2, metadata={"help": "Keep the best and the last checkpoint."})
    load_best_model_at_end: bool = field(
        default=True, metadata={"help": "Finish with the checkpoint that scored best on the eval set (official)."}
    )
    metric_for_best_model: str | None = field(
        default="auto", metadata={"help": "'auto': mAP for multi-label data, accuracy for single-label data."}
    )
    logging_steps: float = field(default=200, metadata={"help": "Official log interval: 200 updates."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the transform reads the audio and label columns."}
    )
    label_smoothing_factor: float = field(
        default=0.0,
        metadata={
            "help": "Label smoothing of the softmax cross-entropy targets of the training split (official: 0.1 for "
            "ESC-50). Applied to the targets by AudioClassificationTransform, so eval losses stay unsmoothed."
        },
    )

    layer_decay: float = field(
        default=0.65, metadata={"help": "Layer-wise lr decay: block i of L gets lr * layer_decay^(L - i); 1 disables."}
    )
    official_lr_schedule: bool = field(
        default=True,
        metadata={
            "help": "fairseq's cosine schedule of the official runs, per optimiser group: linear warm-up from "
            "min(min_lr, the group's peak lr), then cosine decay to that floor, which layer decay does not scale. "
            "False: --lr_scheduler_type as transformers defines it."
        },
    )
    roll_augment: bool = field(
        default=True,
        metadata={"help": "Roll every training waveform by a random offset and scale it by a random gain."},
    )
    gain_beta: float = field(default=10.0, metadata={"help": "The gain is Beta(gain_beta, gain_beta) + gain_offset."})
    gain_offset: float = field(default=0.5, metadata={"help": "The gain is Beta(gain_beta, gain_beta) + gain_offset."})
    spectrogram_noise: bool = field(
        default=False,
        metadata={"help": "Speech Commands noise: add uniform noise to the features, then roll in time."},
    )
    noise_scale: float = field(
        default=0.1, metadata={"help": "The noise is U[0, 1) per bin times U[0, 1) * noise_scale per clip."}
    )
    noise_max_shift: int = field(
        default=10, metadata={"help": "Time roll of the noise augmentation: [-shift, shift)."}
    )
    mixup_alpha: float = field(default=0.8, metadata={"help": "Mixup lambda ~ Beta(alpha, alpha); 0 disables mixup."})
    mixup_prob: float = field(default=0.9, metadata={"help": "Probability that a training batch is mixed."})
    spec_augment_ratio: float = field(
        default=0.2,
        metadata={
            "help": "SpecAugment: one frequency mask narrower than bins*r and one time mask narrower than frames*r."
        },
    )
    balanced_sampling: bool = field(
        default=False, metadata={"help": "Draw training clips with probability ~ sum of inverse label frequencies."}
    )
    balanced_samples_per_epoch: int = field(
        default=200_000, metadata={"help": "Clips drawn (without replacement) per balanced-sampling epoch."}
    )
    multilabel_loss_normalization: str = field(
        default="positives",
        metadata={
            "help": "Divisor of the summed binary cross-entropy: 'positives' (number of positive targets in the global "
            "batch, official AudioSet), 'samples' (clips, official SPC-2) or 'entries' (clips x classes, the mean)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        if self.official_lr_schedule and self.lr_scheduler_type != "cosine_with_min_lr":
            raise ValueError(
                f"official_lr_schedule is a cosine with a min_lr floor; pass --official_lr_schedule false to use "
                f"--lr_scheduler_type {getattr(self.lr_scheduler_type, 'value', self.lr_scheduler_type)}."
            )
        if self.multilabel_loss_normalization not in LOSS_NORMALIZATIONS:
            raise ValueError(
                f"multilabel_loss_normalization must be one of {LOSS_NORMALIZATIONS}, got "
                f"{self.multilabel_loss_normalization!r}."
            )
        checks = {
            "layer_decay": 0.0 < self.layer_decay <= 1.0,
            "mixup_alpha": self.mixup_alpha >= 0.0,
            "mixup_prob": 0.0 <= self.mixup_prob <= 1.0,
            "spec_augment_ratio": 0.0 <= self.spec_augment_ratio < 1.0,
            "label_smoothing_factor": 0.0 <= self.label_smoothing_factor < 1.0,
            "gain_beta": self.gain_beta > 0.0,
            "noise_scale": self.noise_scale >= 0.0,
            "noise_max_shift": self.noise_max_shift >= 0,
            "balanced_samples_per_epoch": self.balanced_samples_per_epoch > 0,
        }
        for name, valid in checks.items():
            if not valid:
                raise ValueError(f"Invalid {name}: {getattr(self, name)!r}.")


class AudioClassificationTransform:
    """`datasets.with_transform` function: audio + labels rows -> `input_values` and `labels` for one split.

    Targets: class indices for single-label softmax cross-entropy; float `(num_labels,)` vectors (one-hot, multi-hot)
    when mixup, label smoothing (applied by `AsdaFinetuningTrainer.recipe_loss`) or binary cross-entropy need them.
    Everything random is applied only when `train` is True.
    """

    def __init__(
        self,
        feature_extractor,
        args: AsdaFinetuningArguments,
        num_labels: int,
        multi_label: bool,
        binary_cross_entropy: bool,
        train: bool,
        audio_column: str = "audio",
        label_column: str = "label_ids",
    ):
        if multi_label and not binary_cross_entropy:
            raise ValueError(
                "Multi-label data needs problem_type='multi_label_classification' (binary cross-entropy)."
            )
        if binary_cross_entropy and args.label_smoothing_factor > 0:
            raise ValueError(
                "label_smoothing_factor applies to softmax cross-entropy only; the official binary cross-entropy "
                "recipes (AudioSet, SPC-2) use no label smoothing."
            )
        self.feature_extractor = feature_extractor
        self.args = args
        self.num_labels = num_labels
        self.multi_label = multi_label
        self.train = train
        self.audio_column = audio_column
        self.label_column = label_column
        self.float_targets = binary_cross_entropy or (
            train and (args.mixup_alpha > 0 or args.label_smoothing_factor > 0)
        )

    def waveform(self, audio) -> tuple[np.ndarray, int]:
        waveform, sampling_rate = decode_audio(audio, self.feature_extractor.sampling_rate)
        if self.train and self.args.roll_augment:
            waveform = roll_and_gain(waveform, self.args.gain_beta, self.args.gain_offset)
        return waveform, sampling_rate

    def features(self, audio) -> np.ndarray:
        waveform, sampling_rate = self.waveform(audio)
        features = self.feature_extractor(waveform, sampling_rate=sampling_rate, return_tensors="np")["input_values"][
            0
        ]
        if self.train and self.args.spectrogram_noise:
            features = noise_and_roll(features, self.args.noise_scale, self.args.noise_max_shift)
        return features

    def target(self, label) -> int | np.ndarray:
        if not self.float_targets:
            return int(label)
        target = np.zeros(self.num_labels, dtype=np.float32)
        target[label] = 1.0
        return target

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {
            "input_values": [self.features(audio) for audio in batch[self.audio_column]],
            "labels": [self.target(label) for label in batch[self.label_column]],
        }


class StrongLabelTransform(AudioClassificationTransform):
    """`datasets.with_transform` function for sound event detection: audio + event lists -> `input_values` and
    `labels` of shape `(num_time_patches, num_labels)` (multi-hot; -100 on time patches of padding), plus
    `attention_mask` when the feature extractor returns one. A training clip's waveform roll shifts its events
    alike; the Speech Commands feature roll (a few frames, less than a time patch) would misalign them and is refused.
    """

    def __init__(
        self,
        feature_extractor,
        args: AsdaFinetuningArguments,
        label2id: dict[str, int],
        patch_size: int,
        train: bool,
        audio_column: str = "audio",
    ):
        if args.spectrogram_noise:
            raise ValueError(
                "spectrogram_noise rolls the features without their event times; strong labels use roll_augment, "
                "which rolls the events with the waveform."
            )
        if args.label_smoothing_factor > 0:
            raise ValueError("label_smoothing_factor applies to softmax cross-entropy, not to frame targets.")
        super().__init__(feature_extractor, args, len(label2id), True, True, train, audio_column, EVENTS)
        self.label2id = label2id
        self.patch_size = patch_size
        self.step_seconds = patch_size * feature_extractor.hop_length / feature_extractor.sampling_rate

    def example(self, audio, events) -> dict[str, np.ndarray]:
        waveform, sampling_rate = decode_audio(audio, self.feature_extractor.sampling_rate)
        events = as_events(events)
        if self.train and self.args.roll_augment:
            shift = np.random.randint(len(waveform))
            waveform = roll_and_gain(waveform, self.args.gain_beta, self.args.gain_offset, shift=shift)
            events = roll_events(events, shift / sampling_rate, len(waveform) / sampling_rate)
        inputs = self.feature_extractor(
            waveform, sampling_rate=sampling_rate, return_attention_mask=True, return_tensors="np"
        )
        num_frames = inputs["input_values"].shape[1]
        num_steps = num_frames // self.patch_size
        labels = frame_targets(events, self.label2id, num_steps, self.step_seconds)
        labels[-(-int(inputs["attention_mask"][0].sum()) // self.patch_size) :] = IGNORED_TARGET
        example = {"input_values": inputs["input_values"][0], "labels": labels}
        if self.feature_extractor.return_attention_mask:
            example["attention_mask"] = inputs["attention_mask"][0]
        return example

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        examples = [self.example(*row) for row in zip(batch[self.audio_column], batch[self.label_column])]
        return {key: [example[key] for example in examples] for key in examples[0]}


class AsdaFinetuningTrainer(StreamingTrainerMixin, Trainer):
    """Trainer with the official fine-tuning recipe; its `args` are an `AsdaFinetuningArguments`.

    - optimiser: AdamW (from `--optim`) over `layer_decay_parameter_groups`, built in `create_optimizer`, so DDP, FSDP
      and DeepSpeed see it like any Trainer optimiser, with `official_cosine_schedule` per group;
    - training batches get mixup then SpecAugment on the device (`compute_loss`), from a generator seeded with
      `seed + process_index`;
    - `train_sample_weights` + `args.balanced_sampling` replace the random sampler by `ClassBalancedSampler`;
    - a streamed training set (`EndlessStream`) is read and resumed as `StreamingTrainerMixin` says;
    - the loss is the recipe's (`recipe_loss`, Trainer's `compute_loss_func`): label smoothing of the training targets,
      and the summed loss divided by the global number of positive targets, clips or entries of the batch, counted
      over gradient accumulation and processes in `_get_num_items_in_batch`.
    Labels must come from `AudioClassificationTransform`.
    """

    def __init__(self, *args, train_sample_weights=None, **kwargs):
        super().__init__(*args, **kwargs)
        if not isinstance(self.args, AsdaFinetuningArguments):
            raise TypeError(f"AsdaFinetuningTrainer needs AsdaFinetuningArguments, got {type(self.args).__name__}.")
        if self.args.metric_for_best_model == "auto":
            raise ValueError(
                "Resolve metric_for_best_model='auto' (to 'mAP' or 'accuracy') before building the Trainer."
            )
        if self.args.balanced_sampling and train_sample_weights is None:
            raise ValueError("balanced_sampling needs train_sample_weights (see class_balanced_weights).")
        self.train_sample_weights = train_sample_weights
        # `recipe_loss` smooths the training targets; Trainer's LabelSmoother would smooth again, and the eval loss.
        self.label_smoother = None
        self.compute_loss_func = self.recipe_loss
        self.augmentation_rng = np.random.RandomState(self.args.seed + self.args.process_index)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            opt_model = self.model if model is None else model
            groups = layer_decay_parameter_groups(
                opt_model,
                self.args.learning_rate,
                self.args.weight_decay,
                self.args.layer_decay,
                self.args.exempt_biases_and_1d_from_weight_decay,
            )
            if self.optimizer_cls_and_kwargs is not None:
                optimizer_cls, optimizer_kwargs = self.optimizer_cls_and_kwargs
            else:
                optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, opt_model)
            if {"params", "model", "optimizer_dict"} & optimizer_kwargs.keys():
                raise ValueError(
                    f"--optim {self.args.optim} builds its own parameter groups; layer decay needs AdamW."
                )
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and self.args.official_lr_schedule:
            self.lr_scheduler = official_cosine_schedule(
                self.optimizer if optimizer is None else optimizer,
                self.args.get_warmup_steps(num_training_steps),
                num_training_steps,
                self.args.lr_scheduler_kwargs.get("min_lr", 0.0),
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def _get_train_sampler(self, train_dataset=None):
        if self.args.balanced_sampling:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            return ClassBalancedSampler(self.train_sample_weights, self.args.balanced_samples_per_epoch, seed=seed)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """Augment a training batch, then Trainer's `compute_loss`, which calls the model without the labels and takes
        the loss from `recipe_loss`."""
        inputs = dict(inputs)  # Trainer pops the labels: leave the caller's batch whole
        if model.training and "labels" in inputs:
            inputs = self.augment_batch(inputs)
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def augment_batch(self, inputs: dict) -> dict:
        """Mixup, then SpecAugment, of a training batch (the official order)."""
        labels = inputs["labels"]
        if self.args.label_smoothing_factor > 0 and not labels.is_floating_point():
            raise ValueError(
                "label_smoothing_factor needs the one-hot float targets of AudioClassificationTransform, which the loss "
                "turns into smoothed float targets."
            )
        input_values, labels, lam = mixup(
            inputs["input_values"], labels, self.args.mixup_alpha, self.args.mixup_prob, self.augmentation_rng
        )
        input_values = spec_augment(input_values, self.args.spec_augment_ratio, self.augmentation_rng)
        augmented = {**inputs, "input_values": input_values, "labels": labels}
        if lam != 1.0 and "attention_mask" in inputs:  # a mixed clip holds the audio of both
            augmented["attention_mask"] = inputs["attention_mask"] | inputs["attention_mask"].flip(0)
        return augmented

    def recipe_loss(self, outputs, labels: torch.Tensor, num_items_in_batch: torch.Tensor | None = None):
        """The recipe's objective, defined here only: binary cross-entropy (multi-label problems) or softmax
        cross-entropy, whose soft training targets get label smoothing, summed over the micro-batch and divided by
        `num_items_in_batch` (training: see `_get_num_items_in_batch`). Without it (evaluation) the divisor is the
        batch's own count, which makes the loss the model's standard mean. Frame targets (strong labels) count their
        entries that are not -100."""
        logits = outputs.logits.float()
        if logits.ndim == 3:
            keep = labels != IGNORED_TARGET
            losses = F.binary_cross_entropy_with_logits(logits, labels.float().clamp(min=0.0), reduction="none")
            total, count = (losses * keep).sum(), keep.sum()
        elif self.model.config.problem_type == "multi_label_classification":
            total = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
            count = labels.numel()
        elif labels.is_floating_point():
            smoothing = self.args.label_smoothing_factor if self.model.training else 0.0
            if smoothing > 0:
                labels = labels * (1.0 - smoothing) + smoothing / labels.shape[-1]
            total = -(labels * logits.log_softmax(dim=-1)).sum()
            count = labels.shape[0]
        else:
            total = F.cross_entropy(logits, labels.view(-1), ignore_index=-100, reduction="sum")
            count = (labels != -100).sum()
        return total / (count if num_items_in_batch is None else num_items_in_batch)

    def _get_num_items_in_batch(self, batch_samples, device):
        """The divisor of the summed training loss over the whole global batch (all accumulation steps and processes):
        for binary cross-entropy the positive targets (official AudioSet), the clips (official SPC-2) or the entries
        (`multilabel_loss_normalization`); for softmax cross-entropy the clips; for frame targets the entries that
        are not -100."""
        if not batch_samples or "labels" not in batch_samples[0]:
            return super()._get_num_items_in_batch(batch_samples, device)
        labels = [batch["labels"] for batch in batch_samples]
        normalization = self.args.multilabel_loss_normalization
        if labels[0].ndim == 3:
            normalization = "frame_entries"
        elif self.model.config.problem_type != "multi_label_classification":
            normalization = "samples" if labels[0].is_floating_point() else "entries"
        if normalization == "entries":  # every label entry (class indices: every clip not ignored)
            return super()._get_num_items_in_batch(batch_samples, device)
        if normalization == "frame_entries":
            count = sum((batch_labels != IGNORED_TARGET).sum() for batch_labels in labels)
        elif normalization == "positives":
            count = sum(batch_labels.sum() for batch_labels in labels)
        else:
            count = sum(batch_labels.shape[0] for batch_labels in labels)
        count = torch.as_tensor(count, dtype=torch.float32, device=device)
        if self.args.average_tokens_across_devices and self.args.world_size > 1:
            count = self.accelerator.gather(count).sum()
        # A batch of clips without any positive label would divide by zero; the summed loss is then the objective.
        return count.clamp(min=1.0)

    def create_model_card(self, license=None, finetuned_from=None, dataset=None, **trainer_card_kwargs):
        """The project's card (`write_model_card`: Hub metadata, usage) with the recipe and the final eval metrics.
        Called by `push_to_hub` too; Trainer's other card arguments (tags, tasks, ...) are set by `write_model_card`."""
        if not self.is_world_process_zero():
            return
        metrics = self.final_eval_metrics()
        metric = self.args.metric_for_best_model
        eval_results = None
        if dataset and metric in metrics:
            eval_results = [
                EvalResult(
                    task_type="audio-classification",
                    dataset_type=dataset,
                    dataset_name=dataset,
                    metric_type=CARD_METRICS.get(metric, metric),
                    metric_value=metrics[metric],
                )
            ]
        write_model_card(
            self.args.output_dir,
            repo_id=self.hub_model_id if self.args.push_to_hub else None,
            base_model=finetuned_from,
            datasets=dataset,
            eval_results=eval_results,
            license=license or "apache-2.0",
            description=finetuning_card_section(self.args, self.model.config, metrics),
            overwrite=True,
        )

    def final_eval_metrics(self) -> dict[str, float]:
        """The last evaluation's metrics (after training: the loaded best checkpoint's), without the `eval_` prefix."""
        for entry in reversed(self.state.log_history):
            if "eval_loss" in entry:
                return {key[len("eval_") :]: value for key, value in entry.items() if key.startswith("eval_")}
        return {}


def parse_arguments(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> (ModelArguments, DataArguments, AsdaFinetuningArguments)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, AsdaFinetuningArguments))
    return cli.parse_args_with_preset(parser, argv)


def load_split(data_args: DataArguments, model_args: ModelArguments, split: str) -> datasets.Dataset | None:
    """The raw train or eval split from whichever source was given for it (strong labels: its event manifest)."""
    if data_args.strong_labels:
        if getattr(data_args, f"{split}_dir") or data_args.dataset_name:
            raise ValueError(f"Strong labels come from event manifests: give --{split}_file, not a folder or dataset.")
        manifest = getattr(data_args, f"{split}_file")
        return event_dataset(manifest, data_args.audio_column_name) if manifest else None
    return load_audio_dataset(
        split,
        file=getattr(data_args, f"{split}_file"),
        folder=getattr(data_args, f"{split}_dir"),
        dataset_name=data_args.dataset_name,
        shards=getattr(data_args, f"{split}_shards"),
        dataset_config_name=data_args.dataset_config_name,
        split_name=getattr(data_args, f"{split}_split_name"),
        audio_column=data_args.audio_column_name,
        label_column=data_args.label_column_name,
        cache_dir=model_args.cache_dir,
        token=model_args.token,
    )


def build_vocabulary(
    data_args, reference: datasets.Dataset | None, multi_label: bool, model_config=None, shard_index=None
) -> LabelVocabulary:
    """Class list: the label file, else the evaluated model's labels, else those counted in the index of streamed
    shards, else ClassLabel names, else the training labels."""
    separator = data_args.label_separator
    if data_args.label_file:
        vocabulary = LabelVocabulary.from_label_file(data_args.label_file, multi_label, separator)
        if model_config is not None and list(model_config.id2label.values()) != vocabulary.names:
            raise ValueError(f"{data_args.label_file} does not list the model's classes in the model's order.")
        return vocabulary
    if model_config is not None:
        names = [model_config.id2label[index] for index in range(model_config.num_labels)]
        return LabelVocabulary.from_names(names, multi_label, separator)
    if shard_index is not None:
        return LabelVocabulary.from_values([[name] for name in shard_index["labels"]], multi_label, separator)
    if data_args.strong_labels:
        return LabelVocabulary.from_names(event_labels(reference), multi_label, separator)
    names = class_label_names(reference, data_args.label_column_name)
    if names is not None:
        return LabelVocabulary.from_names(names, multi_label, separator)
    return LabelVocabulary.from_values(label_strings(reference, data_args.label_column_name), multi_label, separator)


def prepare_split(
    dataset, data_args, vocabulary, sampling_rate: int, min_samples: int, max_samples: int | None
) -> datasets.Dataset:
    """Encode the labels into `label_ids` (event lists stay as they are), drop too-short clips, cap the size, set up
    audio decoding."""
    if not data_args.strong_labels:
        label_ids = [vocabulary.encode(value) for value in label_strings(dataset, data_args.label_column_name)]
        if LABEL_IDS in dataset.column_names:
            dataset = dataset.remove_columns(LABEL_IDS)
        dataset = dataset.add_column(LABEL_IDS, label_ids)
    dataset = drop_short_clips(dataset, data_args.audio_column_name, min_samples)
    if max_samples is not None:
        dataset = dataset.select(range(min(max_samples, len(dataset))))
    return prepare_audio_column(dataset, data_args.audio_column_name, sampling_rate)


def load_feature_extractor(model_args, data_args):
    """--feature_extractor_name, else a preset (--feature_preset, AudioSet when only --target_length / --norm_mean /
    --norm_std are given) with those overrides, else the model's own extractor, else the AudioSet default."""
    overrides = {
        name: value
        for name, value in (
            ("max_length", data_args.target_length),
            ("mean", data_args.norm_mean),
            ("std", data_args.norm_std),
        )
        if value is not None
    }
    hub_kwargs = model_args.hub_kwargs
    if model_args.feature_extractor_name:
        if overrides or data_args.feature_preset:
            raise ValueError(
                "--feature_extractor_name and --feature_preset / --target_length / --norm_* exclude each other."
            )
        return AutoFeatureExtractor.from_pretrained(model_args.feature_extractor_name, **hub_kwargs)
    return cli.load_feature_extractor(
        model_args.model_name_or_path, data_args.feature_preset, overrides, **hub_kwargs
    )


def load_model(
    model_args, vocabulary: LabelVocabulary | None, problem_type: str | None, auto_class=AutoModelForAudioClassification
):
    """The classifier to fine-tune (labels, problem type and drop-path set), or, without a vocabulary, to evaluate;
    `auto_class` is the clip (default) or frame classifier's Auto class."""
    hub_kwargs = model_args.hub_kwargs
    model_kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if vocabulary is None:
        return auto_class.from_pretrained(model_args.model_name_or_path, **hub_kwargs, **model_kwargs)
    config_kwargs = {
        "id2label": vocabulary.id2label,
        "label2id": vocabulary.label2id,
        "problem_type": problem_type,
        "drop_path_rate": model_args.drop_path_rate,
    }
    if model_args.pooling_mode is not None:
        config_kwargs["pooling_mode"] = model_args.pooling_mode
    source = model_args.model_name_or_path or model_args.config_name
    if source is None:
        raise ValueError("Give --model_name_or_path (a pre-trained model) or --config_name (to train from scratch).")
    config = AutoConfig.from_pretrained(model_args.config_name or source, **config_kwargs, **hub_kwargs)
    if model_args.model_name_or_path is None:
        return auto_class.from_config(config, **model_kwargs)
    return auto_class.from_pretrained(
        model_args.model_name_or_path,
        config=config,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **hub_kwargs,
        **model_kwargs,
    )


def run(
    model_args: ModelArguments, data_args: DataArguments, training_args: AsdaFinetuningArguments
) -> TrainingRunResult:
    """Fine-tune (`--do_train`, then evaluate the best checkpoint) or only evaluate (`--do_eval`, like the official
    `eval.py`, with per-class AP for multi-label data) as the arguments say; the model, metrics and card are written
    to `training_args.output_dir`."""
    cli.setup_logging(training_args.get_process_log_level())
    if not (training_args.do_train or training_args.do_eval):
        raise ValueError("Nothing to do: pass --do_train (fine-tune, then evaluate) and/or --do_eval.")
    if not training_args.do_train and model_args.model_name_or_path is None:
        raise ValueError("Evaluation needs a fine-tuned --model_name_or_path.")
    set_seed(training_args.seed)

    if data_args.strong_labels and (data_args.train_shards or data_args.eval_shards):
        raise ValueError("Strong labels come from event manifests (--train_file / --eval_file), not from shards.")
    stream_index = None
    if training_args.do_train and data_args.train_shards and data_args.streaming:
        if training_args.balanced_sampling:
            raise ValueError(
                "Class-balanced sampling draws clips by index, which a stream cannot: load the shards map-style with "
                "--streaming false (or pass --balanced_sampling false to stream them)."
            )
        stream_index = read_index(data_args.train_shards)
        if stream_index["label_column"] is None:
            raise ValueError(f"{data_args.train_shards} holds no labels (packed with --unlabelled).")
    train_split = None
    if training_args.do_train and stream_index is None:
        train_split = load_split(data_args, model_args, "train")
    eval_split = load_split(data_args, model_args, "eval")
    if training_args.do_train and train_split is None and stream_index is None:
        raise ValueError("Training needs --train_file, --train_dir, --dataset_name or --train_shards.")
    if eval_split is None and (not training_args.do_train or training_args.eval_strategy != "no"):
        raise ValueError(
            "No evaluation data: give --eval_file, --eval_dir, --eval_shards or --dataset_name (the recipes keep the "
            "best checkpoint on it), or train without it with --eval_strategy no --load_best_model_at_end false."
        )
    reference = train_split if train_split is not None else eval_split
    multi_label = True if data_args.strong_labels else data_args.multi_label
    if data_args.strong_labels and training_args.balanced_sampling:
        raise ValueError("balanced_sampling weighs clip labels; it does not apply to strong labels.")
    if multi_label is None and stream_index is not None:
        multi_label = stream_index["multi_label"]
    elif multi_label is None:
        multi_label = is_multi_label_column(reference, data_args.label_column_name, data_args.label_separator)
        logger.info("Detected %s data.", "multi-label" if multi_label else "single-label")

    evaluated_config = None
    if not training_args.do_train:
        evaluated_config = AutoConfig.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, token=model_args.token
        )
    vocabulary = build_vocabulary(data_args, reference, multi_label, evaluated_config, stream_index)
    feature_extractor = load_feature_extractor(model_args, data_args)
    sampling_rate = feature_extractor.sampling_rate

    data_problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    auto_class = AutoModelForAudioFrameClassification if data_args.strong_labels else AutoModelForAudioClassification
    if data_args.strong_labels and model_args.problem_type not in (None, data_problem_type):
        raise ValueError("Strong labels train a multi-label frame classifier: problem_type must be multi-label.")
    if training_args.do_train:
        problem_type = model_args.problem_type or data_problem_type
        model = load_model(model_args, vocabulary, problem_type, auto_class)
    else:
        model = load_model(model_args, None, None, auto_class)
        problem_type = model.config.problem_type = model.config.problem_type or data_problem_type
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    binary_cross_entropy = problem_type == "multi_label_classification"

    def transform(train: bool) -> AudioClassificationTransform:
        if data_args.strong_labels:
            return StrongLabelTransform(
                feature_extractor,
                training_args,
                vocabulary.label2id,
                model.config.patch_size,
                train,
                audio_column=data_args.audio_column_name,
            )
        return AudioClassificationTransform(
            feature_extractor,
            training_args,
            len(vocabulary.names),
            multi_label,
            binary_cross_entropy,
            train,
            audio_column=data_args.audio_column_name,
            label_column=LABEL_IDS,
        )

    train_sample_weights = None
    min_samples = data_args.min_length_samples
    if min_samples is None:
        min_samples = OFFICIAL_MIN_LENGTH_SAMPLES if training_args.do_train else 0
    if stream_index is not None:

        def encode_labels(example):
            return {LABEL_IDS: vocabulary.encode(example[LABEL])}

        train_split = stream_training_clips(data_args, training_args, transform(train=True), min_samples, encode_labels)
    elif train_split is not None:
        train_split = prepare_split(
            train_split, data_args, vocabulary, sampling_rate, min_samples, data_args.max_train_samples
        )
        if training_args.balanced_sampling:
            train_sample_weights = class_balanced_weights(train_split[LABEL_IDS], len(vocabulary.names))
        train_split = train_split.with_transform(transform(train=True))
    if eval_split is not None:
        eval_split = prepare_split(
            eval_split, data_args, vocabulary, sampling_rate, min_samples, data_args.max_eval_samples
        )
        eval_split = eval_split.with_transform(transform(train=False))

    if training_args.metric_for_best_model == "auto":
        if data_args.strong_labels:
            training_args.metric_for_best_model = "frame_mAP"
        else:
            training_args.metric_for_best_model = "mAP" if multi_label else "accuracy"

    trainer = AsdaFinetuningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_split,
        eval_dataset=eval_split,
        processing_class=feature_extractor,
        data_collator=default_data_collator,
        compute_metrics=frame_metrics if data_args.strong_labels else AudioClassificationMetrics(multi_label),
        train_sample_weights=train_sample_weights,
    )

    output_dir = Path(training_args.output_dir)
    if training_args.do_train:
        metrics = train_and_save_state(trainer)
        trainer.save_model()
        if eval_split is not None:
            eval_metrics = trainer.evaluate()
            trainer.log_metrics("eval", eval_metrics)
            trainer.save_metrics("eval", eval_metrics)
            metrics.update(eval_metrics)
        card = {
            "finetuned_from": model_args.model_name_or_path,
            "dataset": data_args.card_dataset or data_args.dataset_name,
        }
        if training_args.push_to_hub:
            trainer.push_to_hub(**card)
        else:
            trainer.create_model_card(**card)
        return TrainingRunResult(metrics, output_dir, trainer)

    prediction = trainer.predict(eval_split, metric_key_prefix="eval")
    trainer.log_metrics("eval", prediction.metrics)
    trainer.save_metrics("eval", prediction.metrics)
    if trainer.is_world_process_zero():
        if data_args.strong_labels:
            print(f"Frame mAP on {len(eval_split)} clips: {prediction.metrics['eval_frame_mAP']:.4f}")
        elif multi_label:
            average_precision = per_class_average_precision(prediction.predictions, prediction.label_ids)
            rows = "".join(f"{name}\t{value:.6f}\n" for name, value in zip(vocabulary.names, average_precision))
            write_text_atomically(output_dir / "eval_per_class_ap.tsv", "class\tAP\n" + rows)
            print(f"mAP on {len(eval_split)} clips: {prediction.metrics['eval_mAP']:.4f}")
        else:
            print(f"Accuracy on {len(eval_split)} clips: {prediction.metrics['eval_accuracy']:.4f}")
    return TrainingRunResult(prediction.metrics, output_dir, trainer)


__all__ = [
    "AsdaFinetuningArguments",
    "AsdaFinetuningTrainer",
    "AudioClassificationTransform",
    "DataArguments",
    "StrongLabelTransform",
    "ModelArguments",
    "build_vocabulary",
    "load_model",
    "parse_arguments",
    "run",
]
