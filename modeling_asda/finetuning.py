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
"""The official ASDA/EAT fine-tuning recipe (spec section 4) on the Hugging Face Trainer.

Where each piece runs, in the official order:
    per clip (`AudioClassificationTransform`, data-loader workers, training split only for the augmentations):
        waveform roll + Beta gain -> log-mel features -> Speech Commands noise + time roll -> targets
    per batch (`AsdaFinetuningTrainer.compute_loss`, on the device, training only):
        mixup of the batch with its reverse -> SpecAugment (one frequency and one time mask per clip)
    optimiser: AdamW with layer-wise lr decay groups, each on fairseq's cosine schedule
    sampler: class-balanced multinomial draws for AudioSet-2M
    metrics: mAP / mAUC / d' (multi-label), accuracy / top-5 accuracy (single-label)

Not a Hub file: it needs scikit-learn and datasets; `modeling_asda.py` never imports it.
"""

import math
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import torch
from huggingface_hub import EvalResult
from sklearn.metrics import average_precision_score, roc_auc_score, top_k_accuracy_score
from torch import nn
from transformers import EvalPrediction, Trainer, TrainingArguments

from .audio_data import decode_audio
from .model_card import write_model_card


LOSS_NORMALIZATIONS = ("positives", "samples", "entries")
# Metrics reported on the model card, and their Hub metric ids.
RESULT_METRICS = ("mAP", "mAUC", "d_prime", "accuracy", "top5_accuracy", "loss")
CARD_METRICS = {"mAP": "mean_average_precision", "mAUC": "roc_auc", "accuracy": "accuracy"}


# ---------------------------------------------------------------------------------------------------------------------
# Arguments: TrainingArguments with the official fine-tuning defaults and the recipe's own flags
# ---------------------------------------------------------------------------------------------------------------------


@dataclass
class AsdaFinetuningArguments(TrainingArguments):
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
    exempt_biases_and_1d_from_weight_decay: bool = field(
        default=False,
        metadata={
            "help": "Skip weight decay on biases and 1-D tensors. The official code tags them so, but fairseq's "
            "composite optimiser never applies the tag, so the official runs decay every parameter (the default)."
        },
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


# ---------------------------------------------------------------------------------------------------------------------
# Augmentations. `rng` is a numpy RandomState (or the `np.random` module, seeded per data-loader worker by Trainer).
# ---------------------------------------------------------------------------------------------------------------------


def roll_and_gain(
    waveform: np.ndarray, gain_beta: float = 10.0, gain_offset: float = 0.5, rng=np.random
) -> np.ndarray:
    """Circularly shift the waveform by a uniform offset and scale it by `Beta(gain_beta, gain_beta) + gain_offset`."""
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
    `lambda ~ Beta(alpha, alpha)` for inputs and float targets alike. Returns the inputs, the targets and lambda."""
    if alpha <= 0.0 or rng.rand() >= prob:
        return input_values, labels, 1.0
    if not labels.is_floating_point() or labels.ndim != 2:
        raise ValueError(
            f"mixup needs (batch, num_labels) float targets, got {labels.dtype} of shape {tuple(labels.shape)}."
        )
    lam = float(rng.beta(alpha, alpha))
    mixed_inputs = input_values * lam + input_values.flip(0) * (1.0 - lam)
    mixed_labels = labels * lam + labels.flip(0) * (1.0 - lam)
    return mixed_inputs, mixed_labels, lam


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


# ---------------------------------------------------------------------------------------------------------------------
# Per-clip transform
# ---------------------------------------------------------------------------------------------------------------------


class AudioClassificationTransform:
    """`datasets.with_transform` function: audio + labels rows -> `input_values` and `labels` for one split.

    Targets: class indices for single-label softmax cross-entropy; float `(num_labels,)` vectors (one-hot, multi-hot,
    label-smoothed) when mixup, label smoothing or binary cross-entropy need them. Everything random is applied only
    when `train` is True.
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
        self.label_smoothing = args.label_smoothing_factor if train else 0.0
        self.float_targets = binary_cross_entropy or (train and (args.mixup_alpha > 0 or self.label_smoothing > 0))

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
        if self.label_smoothing > 0:
            target = target * (1.0 - self.label_smoothing) + self.label_smoothing / self.num_labels
        return target

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        return {
            "input_values": [self.features(audio) for audio in batch[self.audio_column]],
            "labels": [self.target(label) for label in batch[self.label_column]],
        }


# ---------------------------------------------------------------------------------------------------------------------
# Class-balanced sampling (AudioSet-2M)
# ---------------------------------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------------------------------
# Layer-wise learning-rate decay
# ---------------------------------------------------------------------------------------------------------------------


def is_weight_decayed(name: str, param: torch.Tensor, exempt_biases_and_1d: bool) -> bool:
    """Whether a parameter gets weight decay: always in the official runs (fairseq never applies the code's
    exemption tags), or, with `exempt_biases_and_1d`, unless it is a bias or a 1-D tensor, as the code intends."""
    # DeepSpeed ZeRO-3 empties partitioned tensors and keeps their shape in `ds_shape`.
    shape = getattr(param, "ds_shape", param.shape)
    return not exempt_biases_and_1d or (len(shape) > 1 and not name.endswith(".bias"))


def layer_decay_parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    exempt_biases_and_1d: bool = False,
) -> list[dict]:
    """Optimizer groups of the official fine-tuning: encoder block i (0-based) of L gets `lr * layer_decay^(L - i)`;
    every other parameter (patch embedding, CLS token, input LayerNorm, classifier) the full lr. With
    `exempt_biases_and_1d`, biases and 1-D tensors get no weight decay. Each group carries its `lr_scale`."""
    encoder = model.base_model
    num_layers = len(encoder.layers)
    block_of = {id(param): block for block, layer in enumerate(encoder.layers) for param in layer.parameters()}
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        block = block_of.get(id(param))
        lr_scale = 1.0 if block is None else layer_decay ** (num_layers - block)
        decay = is_weight_decayed(name, param, exempt_biases_and_1d)
        group = groups.setdefault(
            (lr_scale, decay),
            {
                "params": [],
                "lr": learning_rate * lr_scale,
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": lr_scale,
            },
        )
        group["params"].append(param)
    return list(groups.values())


def official_cosine_schedule(
    optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_training_steps: int, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """fairseq's `cosine` scheduler run once per optimiser group, as the official composite optimiser does: a group
    with peak lr `p` (its `lr`) starts at `floor = min(min_lr, p)`, rises linearly to `p` over the warm-up, then
    follows `floor + (p - floor) * (1 + cos(pi * progress)) / 2` to `floor` at the last step. Groups whose layer-decayed
    peak is below `min_lr` thus stay at their peak."""

    def schedule(peak: float):
        floor = min(min_lr, peak)

        def factor(step: int) -> float:
            if step < num_warmup_steps:
                lr = floor + step * (peak - floor) / num_warmup_steps
            else:
                progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
                lr = floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))
            return lr / peak

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [schedule(group["lr"]) for group in optimizer.param_groups])


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def per_class_average_precision(scores: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """scikit-learn average precision of every class; NaN for classes without a positive clip."""
    targets = targets >= 0.5
    return np.array(
        [
            average_precision_score(targets[:, k], scores[:, k]) if targets[:, k].any() else np.nan
            for k in range(targets.shape[1])
        ]
    )


def multi_label_metrics(scores: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """mAP (NaN-mean of per-class AP, as the official eval), mAUC (classes with both outcomes) and d' = sqrt(2) *
    Phi^-1(mAUC). Scores may be logits or sigmoid outputs: all three are rank statistics."""
    targets = targets >= 0.5
    average_precision = per_class_average_precision(scores, targets)
    both_outcomes = targets.any(axis=0) & ~targets.all(axis=0)
    aucs = [roc_auc_score(targets[:, k], scores[:, k]) for k in np.flatnonzero(both_outcomes)]
    metrics = {"mAP": float(np.nanmean(average_precision)) if targets.any() else math.nan}
    metrics["mAUC"] = float(np.mean(aucs)) if aucs else math.nan
    metrics["d_prime"] = (
        math.sqrt(2.0) * NormalDist().inv_cdf(metrics["mAUC"]) if 0 < metrics["mAUC"] < 1 else math.nan
    )
    return metrics


def single_label_metrics(scores: np.ndarray, labels: np.ndarray, top_k: int = 5) -> dict[str, float]:
    """Accuracy, and top-k accuracy when there are more than `top_k` classes. `labels` are class indices or
    `(clips, classes)` one-hot targets."""
    if labels.ndim == 2:
        labels = labels.argmax(axis=1)
    metrics = {"accuracy": float((scores.argmax(axis=1) == labels).mean())}
    num_labels = scores.shape[1]
    if num_labels > top_k:
        metrics[f"top{top_k}_accuracy"] = float(
            top_k_accuracy_score(labels, scores, k=top_k, labels=np.arange(num_labels))
        )
    return metrics


@dataclass
class AudioClassificationMetrics:
    """`compute_metrics` for Trainer: multi-label or single-label metrics of the logits."""

    multi_label: bool

    def __call__(self, prediction: EvalPrediction) -> dict[str, float]:
        logits = prediction.predictions[0] if isinstance(prediction.predictions, tuple) else prediction.predictions
        logits = np.asarray(logits, dtype=np.float64)
        labels = np.asarray(prediction.label_ids)
        return multi_label_metrics(logits, labels) if self.multi_label else single_label_metrics(logits, labels)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------------------


class AsdaFinetuningTrainer(Trainer):
    """Trainer with the official fine-tuning recipe; its `args` are an `AsdaFinetuningArguments`.

    - optimiser: AdamW (from `--optim`) over `layer_decay_parameter_groups`, built in `create_optimizer`, so DDP, FSDP
      and DeepSpeed see it like any Trainer optimiser, with `official_cosine_schedule` per group;
    - training batches get mixup then SpecAugment on the device (`compute_loss`), from a generator seeded with
      `seed + process_index`;
    - `train_sample_weights` + `args.balanced_sampling` replace the random sampler by `ClassBalancedSampler`;
    - binary cross-entropy is divided by the global number of positive targets (or clips) of the batch, counted over
      gradient accumulation and processes like Trainer's own `num_items_in_batch`, which the model honours.
    Labels must come from `AudioClassificationTransform` (label smoothing is applied there, not by Trainer).
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
        # The transform smooths the training targets; Trainer's LabelSmoother would smooth again, and the eval loss.
        self.label_smoother = None
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
                "label_smoothing_factor needs the smoothed float targets of AudioClassificationTransform."
            )
        input_values, labels, _ = mixup(
            inputs["input_values"], labels, self.args.mixup_alpha, self.args.mixup_prob, self.augmentation_rng
        )
        input_values = spec_augment(input_values, self.args.spec_augment_ratio, self.augmentation_rng)
        return {**inputs, "input_values": input_values, "labels": labels}

    def _get_num_items_in_batch(self, batch_samples, device):
        """The divisor of the summed loss over the whole global batch (all accumulation steps and processes)."""
        normalization = self.args.multilabel_loss_normalization
        if (
            normalization == "entries"
            or self.model.config.problem_type != "multi_label_classification"
            or not batch_samples
            or "labels" not in batch_samples[0]
        ):
            return super()._get_num_items_in_batch(batch_samples, device)
        if normalization == "positives":
            count = sum(batch["labels"].sum() for batch in batch_samples)
        else:
            count = sum(batch["labels"].shape[0] for batch in batch_samples)
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
            description=self.recipe_card_section(metrics),
            overwrite=True,
        )

    def final_eval_metrics(self) -> dict[str, float]:
        """The last evaluation's metrics (after training: the loaded best checkpoint's), without the `eval_` prefix."""
        for entry in reversed(self.state.log_history):
            if "eval_loss" in entry:
                return {key[len("eval_") :]: value for key, value in entry.items() if key.startswith("eval_")}
        return {}

    def recipe_card_section(self, metrics: dict[str, float]) -> str:
        args, config = self.args, self.model.config
        if config.problem_type == "multi_label_classification":
            objective = (
                f"binary cross-entropy, summed and divided by the number of {args.multilabel_loss_normalization}"
            )
        else:
            objective = f"softmax cross-entropy, label smoothing {args.label_smoothing_factor}"
        augmentations = []
        if args.roll_augment:
            augmentations.append(f"waveform roll + Beta({args.gain_beta}, {args.gain_beta}) + {args.gain_offset} gain")
        if args.spectrogram_noise:
            augmentations.append(f"feature noise (scale {args.noise_scale}) + time roll (+-{args.noise_max_shift})")
        if args.mixup_alpha > 0:
            augmentations.append(f"mixup alpha {args.mixup_alpha} (probability {args.mixup_prob})")
        if args.spec_augment_ratio > 0:
            augmentations.append(f"SpecAugment ratio {args.spec_augment_ratio}")
        sampling = (
            f"class-balanced, {args.balanced_samples_per_epoch} clips per epoch"
            if args.balanced_sampling
            else "uniform"
        )
        rows = [
            ("objective", objective),
            (
                "optimiser",
                f"AdamW betas ({args.adam_beta1}, {args.adam_beta2}), weight decay {args.weight_decay} "
                f"({'not on biases and 1-D tensors' if args.exempt_biases_and_1d_from_weight_decay else 'on every parameter'}"
                f"), layer-wise lr decay {args.layer_decay}",
            ),
            (
                "schedule",
                f"peak lr {args.learning_rate}, {args.warmup_steps:g} warm-up steps, "
                + (
                    f"fairseq cosine per layer group to min_lr {args.lr_scheduler_kwargs.get('min_lr', 0.0)}"
                    if args.official_lr_schedule
                    else f"{getattr(args.lr_scheduler_type, 'value', args.lr_scheduler_type)} {args.lr_scheduler_kwargs}"
                )
                + f", {args.max_steps} steps, batch {args.train_batch_size} x {args.gradient_accumulation_steps} "
                f"accumulation x {args.world_size} processes",
            ),
            ("stochastic depth", str(config.drop_path_rate)),
            ("augmentation", "; ".join(augmentations) or "none"),
            ("sampling", sampling),
            ("checkpoint", f"best eval {args.metric_for_best_model}" if args.load_best_model_at_end else "last"),
        ]
        recipe = "\n".join(f"| {name} | {value} |" for name, value in rows)
        results = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items() if name in RESULT_METRICS)
        section = (
            "## Fine-tuning\n\n"
            "Fine-tuned with `examples/run_finetune.py`, the official ASDA/EAT recipe on the Hugging Face Trainer.\n\n"
            f"| setting | value |\n|---|---|\n{recipe}\n"
        )
        if results:
            section += f"\n### Results on the evaluation set\n\n| metric | value |\n|---|---|\n{results}\n"
        return section


__all__ = [
    "AsdaFinetuningArguments",
    "AsdaFinetuningTrainer",
    "AudioClassificationMetrics",
    "AudioClassificationTransform",
    "ClassBalancedSampler",
    "class_balanced_weights",
    "iid_mask",
    "layer_decay_parameter_groups",
    "mixup",
    "multi_label_metrics",
    "noise_and_roll",
    "official_cosine_schedule",
    "per_class_average_precision",
    "roll_and_gain",
    "single_label_metrics",
    "spec_augment",
]
