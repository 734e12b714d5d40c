#!/usr/bin/env python
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
"""Self-supervised pre-training of ASDA (EAT's teacher-student recipe) with the Hugging Face Trainer.

    python examples/run_pretrain.py configuration/pretraining/asda-tiny-smoke.json --train_dir my_audio/
    python examples/run_pretrain.py configuration/pretraining/asda-small-data-cpu.json --train_dir my_1s_clips/
    accelerate launch --config_file configuration/accelerate/ddp.yaml examples/run_pretrain.py \
        configuration/pretraining/asda-base-audioset.json --train_file audioset_unbalanced.tsv

A preset (given first) holds the official values; the flags after it override them (`--config_overrides` adds to the
preset's). `asda-small-data-cpu.json` is a short run of a small model on a few hundred 1-s clips on a CPU. Unlabelled
audio comes from `--train_dir` (every audio file below it), `--train_file` (a csv/tsv manifest with a header and an
`audio` column of paths) or `--dataset_name` (a `datasets` dataset with an audio column). Spectrograms are computed on
the fly in the data-loader workers. The output folder holds the student encoder, which `AsdaModel.from_pretrained`
loads (with `--keep_pretraining_modules`, the whole `AsdaForPreTraining`); `checkpoint-*` folders resume a run
exactly (`--resume_from_checkpoint`).
"""

import logging
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import transformers
from transformers import HfArgumentParser, TrainingArguments, default_data_collator, set_seed

from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForPreTraining, AsdaModel
from modeling_asda.audio_data import (
    decode_audio,
    drop_short_clips,
    load_manifest,
    prepare_audio_column,
    scan_audio_files,
)
from modeling_asda.model_card import write_model_card
from modeling_asda.pretraining import AsdaPretrainingTrainer
from modeling_asda.script_utils import parse_args_with_preset


logger = logging.getLogger(__name__)


PRETRAINED_CARD_TEXT = (
    "Pre-trained with the self-supervised recipe of ASDA / EAT (`examples/run_pretrain.py`): an EMA teacher, inverse "
    "block masking of 80 % of the patches for several student clones per clip, a CNN decoder, and frame plus "
    "utterance regression losses. This folder holds the student encoder; fine-tune it with "
    "`examples/run_finetune.py`."
)


@dataclass
class ModelArguments:
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
class DataArguments:
    train_dir: str | None = field(default=None, metadata={"help": "Folder of audio files (searched recursively)."})
    train_file: str | None = field(default=None, metadata={"help": "csv/tsv manifest with a header and audio paths."})
    dataset_name: str | None = field(default=None, metadata={"help": "`datasets` dataset name or local folder."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Its configuration."})
    train_split_name: str = field(default="train", metadata={"help": "Its split."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column with the audio (manifests: paths)."})
    feature_preset: str = field(
        default="audioset", metadata={"help": "Normalisation statistics: audioset, esc50 or speech_commands."}
    )
    target_length: int = field(default=1024, metadata={"help": "Frames per clip: longer clips are cut, shorter padded."})
    min_length_samples: int = field(
        default=10_000, metadata={"help": "Skip clips shorter than this many samples (the official loader). 0: keep all."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N clips."})


@dataclass
class AsdaPretrainingArguments(TrainingArguments):
    """`TrainingArguments` with the official optimiser settings as defaults (spec 3.6)."""

    learning_rate: float = field(default=5e-4, metadata={"help": "Peak learning rate."})
    weight_decay: float = field(default=0.05, metadata={"help": "AdamW weight decay."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    max_grad_norm: float = field(default=4.0, metadata={"help": "Gradient clipping norm."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Linear warm-up, then cosine decay to 0."})
    exempt_biases_and_1d_from_weight_decay: bool = field(
        default=False,
        metadata={
            "help": "Exempt biases and 1-D parameters from weight decay, as the official code intends; its fairseq "
            "optimiser never applies that exemption, so by default every parameter is decayed, as in the official runs."
        },
    )
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


def load_unlabelled_audio(data_args: DataArguments) -> datasets.Dataset:
    given = [source for source in (data_args.train_dir, data_args.train_file, data_args.dataset_name) if source]
    if len(given) != 1:
        raise ValueError(f"Give exactly one of --train_dir, --train_file and --dataset_name (got {given or 'none'}).")
    audio = data_args.audio_column_name
    if data_args.train_dir:
        return scan_audio_files(data_args.train_dir, audio)
    if data_args.train_file:
        return load_manifest(data_args.train_file, audio, label_column=None)
    return datasets.load_dataset(
        data_args.dataset_name, data_args.dataset_config_name, split=data_args.train_split_name
    )


def parse_arguments(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> (ModelArguments, DataArguments, AsdaPretrainingArguments)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, AsdaPretrainingArguments))
    model_args, data_args, training_args = parse_args_with_preset(parser, argv)
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


def main(argv: list[str] | None = None):
    model_args, data_args, training_args = parse_arguments(argv)
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    logging.getLogger("modeling_asda").setLevel(log_level)
    transformers.utils.logging.set_verbosity(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    set_seed(training_args.seed)

    feature_extractor = AsdaFeatureExtractor.from_preset(data_args.feature_preset, max_length=data_args.target_length)
    audio = data_args.audio_column_name
    train_dataset = drop_short_clips(load_unlabelled_audio(data_args), audio, data_args.min_length_samples)
    if data_args.max_train_samples is not None:
        train_dataset = train_dataset.select(range(min(data_args.max_train_samples, len(train_dataset))))
    train_dataset = prepare_audio_column(train_dataset, audio, feature_extractor.sampling_rate)
    train_dataset = train_dataset.with_transform(SpectrogramTransform(feature_extractor, audio))

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
        "Pre-training on %d clips, %d process(es), %d student clones per clip; EMA decay %g -> %g over %d updates.",
        len(train_dataset),
        training_args.world_size,
        model.config.clone_batch,
        model.config.ema_decay,
        model.config.ema_end_decay,
        model.config.ema_anneal_end_step,
    )
    result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()
    save_final_model(trainer, feature_extractor, model_args.keep_pretraining_modules)
    return trainer


if __name__ == "__main__":
    main()
