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
"""ASDA self-supervised pre-training (EAT's teacher-student recipe, spec section 3) on the Hugging Face Trainer: its
arguments, the spectrogram transform, the EMA teacher update and loss logging, and `run`, which
`examples/run_pretrain.py` calls.

Spectrograms are computed on the fly in the data-loader workers (`SpectrogramTransform`); the model computes the frame
and utterance losses itself (`AsdaForPreTraining`); `AsdaEmaCallback` moves the teacher after every optimiser update.
"""

import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import HfArgumentParser, Trainer, TrainerCallback, TrainingArguments, default_data_collator, set_seed

from ..configuration_asda import AsdaConfig
from ..data.audio import (
    OFFICIAL_MIN_LENGTH_SAMPLES,
    decode_audio,
    drop_short_clips,
    prepare_audio_column,
)
from ..data.shards import EndlessStream
from ..data.sources import AudioDataArguments, load_audio_dataset
from ..feature_extraction_asda import AsdaFeatureExtractor
from ..modeling_asda import AsdaForPreTraining, AsdaModel
from ..tools import cli
from ..tools.model_card import PRETRAINED_CARD_TEXT, write_model_card
from . import TrainingRunResult, train_and_save_state
from .optim import WeightDecayArguments, is_weight_decayed
from .streaming import StreamingTrainerMixin, stream_training_clips


logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    """The model to pre-train: a preset with overrides, or a folder to continue from."""

    config_name: str = field(
        default="configuration/models/asda-base.json", metadata={"help": "Model preset (json or folder) to start from."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated `field=value` config overrides, e.g. 'clone_batch=8,attention_type=standard'; "
            "they add to a preset's, a field given again takes the later value."
        },
    )
    ema_anneal_to_max_steps: bool = field(
        default=False,
        metadata={
            "help": "Anneal the teacher's EMA decay from ema_decay to ema_end_decay over this run's --max_steps "
            "(sets the config's ema_anneal_end_step) instead of the official 100,000 updates, over which a run of a "
            "few hundred steps would keep its teacher almost fixed."
        },
    )
    model_name_or_path: str | None = field(
        default=None,
        metadata={
            "help": "Continue from this folder: a pre-training folder, or an encoder (the teacher then starts as a "
            "copy of it)."
        },
    )
    keep_pretraining_modules: bool = field(
        default=False,
        metadata={"help": "Save the final model as AsdaForPreTraining (student, teacher, decoder), not the student."},
    )


@dataclass
class DataArguments(AudioDataArguments):
    """The unlabelled training audio (`--train_dir`, `--train_file` or `--dataset_name`) and its features."""

    feature_preset: str = field(
        default="audioset", metadata={"help": "Normalisation statistics: audioset, esc50 or speech_commands."}
    )
    target_length: int = field(default=1024, metadata={"help": "Frames per clip: longer clips are cut, shorter padded."})
    min_length_samples: int = field(
        default=OFFICIAL_MIN_LENGTH_SAMPLES,
        metadata={"help": "Skip clips shorter than this many samples (the official loader). 0: keep all."},
    )


@dataclass
class AsdaPretrainingArguments(TrainingArguments, WeightDecayArguments):
    """`TrainingArguments` with the official optimiser settings as defaults (spec 3.6)."""

    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=4.0, metadata={"help": "Gradient clipping norm."})
    optim: str = field(
        default="adamw_torch_fused", metadata={"help": "AdamW as one fused kernel over all parameters (CPU and GPU)."}
    )
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Linear warm-up, then cosine decay to 0."})
    remove_unused_columns: bool = field(default=False, metadata={"help": "Keep the audio column for the transform."})
    ddp_find_unused_parameters: bool | None = field(
        default=False, metadata={"help": "Every trainable parameter is used in every step (the teacher is frozen)."}
    )


class SpectrogramTransform:
    """`datasets.with_transform` function: audio values -> normalised log-mel `input_values` (no labels)."""

    def __init__(self, feature_extractor: AsdaFeatureExtractor, audio_column: str):
        self.feature_extractor = feature_extractor
        self.audio_column = audio_column

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        waveforms = [decode_audio(value, self.feature_extractor.sampling_rate) for value in batch[self.audio_column]]
        input_values = [
            self.feature_extractor(waveform, sampling_rate=rate, return_tensors="np")["input_values"][0]
            for waveform, rate in waveforms
        ]
        return {"input_values": input_values}


def _unwrap(model):
    """The `AsdaForPreTraining` inside a DDP/FSDP/DeepSpeed wrapper (FSDP2 shards in place and needs none)."""
    while hasattr(model, "module"):
        model = model.module
    return model


class AsdaEmaCallback(TrainerCallback):
    """Move the teacher one EMA step towards the student after every optimiser update.

    `on_step_end` fires once per optimiser step, after gradient accumulation, with `state.global_step` already
    counting it: the official update numbering. The step comes from the Trainer state, which checkpoints save, so a
    resumed run continues the decay schedule where it stopped; the teacher itself is part of the model weights.
    Every process applies the same update to its replica (DDP) or to its own shards of teacher and student (FSDP),
    which are split alike.
    """

    def on_step_end(self, args, state, control, model=None, **kwargs):
        _unwrap(model).update_teacher(state.global_step)


class DistinctMasksPerProcessCallback(TrainerCallback):
    """Give every process its own random stream, so that the masks and decoder noise drawn in the forward pass differ
    between processes (Trainer seeds them all alike). Process 0 keeps the run's seed; on resume, Trainer restores
    each process's saved stream after this."""

    def on_train_begin(self, args, state, control, **kwargs):
        torch.manual_seed(args.seed + args.process_index)


class AsdaPretrainingTrainer(StreamingTrainerMixin, Trainer):
    """`Trainer` for `AsdaForPreTraining`: updates the EMA teacher; logs the frame and utterance losses (averaged over
    the micro-batches since the last log and over processes) and the teacher's EMA decay; applies weight decay as the
    official runs did (see `is_weight_decayed`); trains from streamed shards (`StreamingTrainerMixin`)."""

    LOGGED_TERMS = ("frame_loss", "utterance_loss")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(AsdaEmaCallback())
        self.add_callback(DistinctMasksPerProcessCallback())
        self._term_totals = None
        self._term_count = 0

    def get_decay_parameter_names(self, model) -> list[str]:
        exempt = self.args.exempt_biases_and_1d_from_weight_decay
        return [name for name, param in model.named_parameters() if is_weight_decayed(name, param, exempt)]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            terms = torch.stack([outputs[name].detach() for name in self.LOGGED_TERMS])
            self._term_totals = terms if self._term_totals is None else self._term_totals + terms
            self._term_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs, start_time=None):
        # `loss` marks the periodic training log, which every process reaches: gathering here is safe.
        if "loss" in logs and self._term_count:
            means = self.accelerator.gather((self._term_totals / self._term_count)[None]).mean(dim=0)
            logs.update(zip(self.LOGGED_TERMS, means.tolist()))
            logs["ema_decay"] = _unwrap(self.model).ema_decay(self.state.global_step)
            self._term_totals, self._term_count = None, 0
        super().log(logs, start_time)


def parse_arguments(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> (ModelArguments, DataArguments, AsdaPretrainingArguments)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, AsdaPretrainingArguments))
    model_args, data_args, training_args = cli.parse_args_with_preset(parser, argv)
    if model_args.ema_anneal_to_max_steps and training_args.max_steps <= 0:
        raise ValueError("--ema_anneal_to_max_steps needs the run length in optimiser updates: give --max_steps.")
    return model_args, data_args, training_args


def build_config(model_args: ModelArguments) -> AsdaConfig:
    """The model preset with the `--config_overrides` applied."""
    config = AsdaConfig.from_pretrained(model_args.config_name)
    if model_args.config_overrides:
        config.update_from_string(model_args.config_overrides)
        config.validate_architecture()
    return config


def build_model(model_args: ModelArguments) -> AsdaForPreTraining:
    if model_args.model_name_or_path is None:
        return AsdaForPreTraining(build_config(model_args))
    model, loading_info = AsdaForPreTraining.from_pretrained(model_args.model_name_or_path, output_loading_info=True)
    if any(key.startswith("teacher.") for key in loading_info["missing_keys"]):
        logger.info("%s holds no teacher: it starts as a copy of the student.", model_args.model_name_or_path)
        model.reset_teacher()
    return model


def save_final_model(trainer: AsdaPretrainingTrainer, feature_extractor, keep_pretraining_modules: bool):
    """The whole pre-training model, or only its student (staged beside the output, so an existing output is replaced
    only by a complete one); then the feature extractor and a model card."""
    output_dir = Path(trainer.args.output_dir)
    if keep_pretraining_modules:
        trainer.save_model(output_dir)
    else:
        staging = output_dir / ".pretraining-model"
        trainer.save_model(staging)  # every process takes part: it gathers FSDP / DeepSpeed shards
        if trainer.is_world_process_zero():
            AsdaModel.from_pretrained(staging).save_pretrained(output_dir)
            shutil.rmtree(staging)
    if trainer.is_world_process_zero():
        feature_extractor.save_pretrained(output_dir)
        if (output_dir / "README.md").exists():
            logger.info("Kept the existing %s.", output_dir / "README.md")
        else:
            write_model_card(output_dir, description=PRETRAINED_CARD_TEXT)


def load_unlabelled_audio(data_args: DataArguments):
    """The training audio from the one source given (shards here only map-style: `--streaming false`)."""
    dataset = load_audio_dataset(
        "train",
        file=data_args.train_file,
        folder=data_args.train_dir,
        dataset_name=data_args.dataset_name,
        shards=data_args.train_shards,
        dataset_config_name=data_args.dataset_config_name,
        split_name=data_args.train_split_name,
        audio_column=data_args.audio_column_name,
        label_column=None,
    )
    if dataset is None:
        raise ValueError("Give the training audio: --train_dir, --train_file, --dataset_name or --train_shards.")
    return dataset


def run(model_args: ModelArguments, data_args: DataArguments, training_args: AsdaPretrainingArguments) -> TrainingRunResult:
    """Pre-train as the arguments say; the encoder (or the whole pre-training model), its feature extractor, the
    training metrics and a card are written to `training_args.output_dir`."""
    cli.setup_logging(training_args.get_process_log_level())
    set_seed(training_args.seed)

    feature_extractor = AsdaFeatureExtractor.from_preset(data_args.feature_preset, max_length=data_args.target_length)
    audio = data_args.audio_column_name
    if data_args.train_shards and data_args.streaming:
        transform = SpectrogramTransform(feature_extractor, audio)
        train_dataset = stream_training_clips(data_args, training_args, transform, data_args.min_length_samples)
        num_clips = train_dataset.num_clips
    else:
        train_dataset = drop_short_clips(load_unlabelled_audio(data_args), audio, data_args.min_length_samples)
        if data_args.max_train_samples is not None:
            train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
        train_dataset = prepare_audio_column(train_dataset, audio, feature_extractor.sampling_rate)
        train_dataset = train_dataset.with_transform(SpectrogramTransform(feature_extractor, audio))
        num_clips = len(train_dataset)

    model = build_model(model_args)
    if model_args.ema_anneal_to_max_steps:
        model.config.ema_anneal_end_step = training_args.max_steps
    trainer = AsdaPretrainingTrainer(
        model=model,
        args=training_args,
        train_dataset=train_dataset,
        data_collator=default_data_collator,
    )
    logger.info(
        "Pre-training on %d clips%s, %d process(es), %d student clones per clip; EMA decay %g -> %g over %d updates.",
        num_clips,
        " (streamed)" if isinstance(train_dataset, EndlessStream) else "",
        training_args.world_size,
        model.config.clone_batch,
        model.config.ema_decay,
        model.config.ema_end_decay,
        model.config.ema_anneal_end_step,
    )
    metrics = train_and_save_state(trainer)
    save_final_model(trainer, feature_extractor, model_args.keep_pretraining_modules)
    return TrainingRunResult(metrics, Path(training_args.output_dir), trainer)


__all__ = [
    "AsdaEmaCallback",
    "AsdaPretrainingArguments",
    "AsdaPretrainingTrainer",
    "DataArguments",
    "DistinctMasksPerProcessCallback",
    "ModelArguments",
    "SpectrogramTransform",
    "build_config",
    "build_model",
    "parse_arguments",
    "run",
]
