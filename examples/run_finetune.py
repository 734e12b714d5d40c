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
"""Fine-tune (or evaluate) ASDA / EAT audio classifiers with the official recipes.

    accelerate launch examples/run_finetune.py configuration/finetuning/as20k.json --model_name_or_path PRETRAINED \
        --train_file train.csv --eval_file eval.csv --label_file audioset_labels.csv --output_dir asda-as20k --do_train

A preset (`configuration/finetuning/{as2m,as20k,esc50,spc2}.json`, given first) holds a dataset's official values; the
flags after it override them. Data: `--dataset_name` (Hub), `--train_dir`/`--eval_dir` (`<dir>/<label>/<clip>`)
or `--train_file`/`--eval_file` (csv/tsv with a header; multi-label rows join labels with `--label_separator`).
With `--do_eval` alone, the model is evaluated like the official `eval.py`. See docs/finetuning.md.
"""

import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import datasets
import numpy as np
import transformers
from transformers import (
    AutoConfig,
    AutoFeatureExtractor,
    AutoModelForAudioClassification,
    HfArgumentParser,
    default_data_collator,
    set_seed,
)

from modeling_asda.audio_data import (
    LabelVocabulary,
    class_label_names,
    drop_short_clips,
    is_multi_label_column,
    label_strings,
    load_manifest,
    prepare_audio_column,
    scan_audio_folder,
)
from modeling_asda.finetuning import (
    AsdaFinetuningArguments,
    AsdaFinetuningTrainer,
    AudioClassificationMetrics,
    AudioClassificationTransform,
    class_balanced_weights,
    per_class_average_precision,
)
from modeling_asda import script_utils
from modeling_asda.script_utils import parse_args_with_preset


logger = logging.getLogger(__name__)

LABEL_IDS = "label_ids"
# The official fine-tuning loader skips clips under 10,000 samples (0.625 s at 16 kHz).
OFFICIAL_MIN_LENGTH_SAMPLES = 10_000


@dataclass
class ModelArguments:
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


@dataclass
class DataArguments:
    dataset_name: str | None = field(default=None, metadata={"help": "Hub dataset (or local dataset folder) name."})
    dataset_config_name: str | None = field(default=None, metadata={"help": "Hub dataset configuration."})
    train_split_name: str = field(default="train", metadata={"help": "Training split of --dataset_name."})
    eval_split_name: str = field(default="validation", metadata={"help": "Evaluation split of --dataset_name."})
    train_dir: str | None = field(default=None, metadata={"help": "Training audio folder: <dir>/<label>/<clip>."})
    eval_dir: str | None = field(default=None, metadata={"help": "Evaluation audio folder: <dir>/<label>/<clip>."})
    train_file: str | None = field(default=None, metadata={"help": "Training csv/tsv manifest with a header."})
    eval_file: str | None = field(default=None, metadata={"help": "Evaluation csv/tsv manifest with a header."})
    audio_column_name: str = field(default="audio", metadata={"help": "Column with the audio (manifests: paths)."})
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
    max_train_samples: int | None = field(default=None, metadata={"help": "Keep only this many training clips."})
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


def parse_arguments(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> (ModelArguments, DataArguments, AsdaFinetuningArguments)."""
    parser = HfArgumentParser((ModelArguments, DataArguments, AsdaFinetuningArguments))
    return parse_args_with_preset(parser, argv)


def load_split(data_args: DataArguments, model_args: ModelArguments, split: str) -> datasets.Dataset | None:
    """The raw train or eval split from whichever source was given for it."""
    file, folder = getattr(data_args, f"{split}_file"), getattr(data_args, f"{split}_dir")
    given = [source for source in (file, folder, data_args.dataset_name) if source]
    if len(given) > 1:
        raise ValueError(f"Give one {split} source: --{split}_file, --{split}_dir or --dataset_name (got {given}).")
    audio, label = data_args.audio_column_name, data_args.label_column_name
    if file:
        return load_manifest(file, audio, label)
    if folder:
        return scan_audio_folder(folder, audio, label)
    if data_args.dataset_name:
        return datasets.load_dataset(
            data_args.dataset_name,
            data_args.dataset_config_name,
            split=getattr(data_args, f"{split}_split_name"),
            cache_dir=model_args.cache_dir,
            token=model_args.token,
        )
    return None


def build_vocabulary(data_args, reference: datasets.Dataset, multi_label: bool, model_config=None) -> LabelVocabulary:
    """Class list: the label file, else the evaluated model's labels, else ClassLabel names, else the training labels."""
    separator = data_args.label_separator
    if data_args.label_file:
        vocabulary = LabelVocabulary.from_label_file(data_args.label_file, multi_label, separator)
        if model_config is not None and list(model_config.id2label.values()) != vocabulary.names:
            raise ValueError(f"{data_args.label_file} does not list the model's classes in the model's order.")
        return vocabulary
    if model_config is not None:
        names = [model_config.id2label[index] for index in range(model_config.num_labels)]
        return LabelVocabulary.from_names(names, multi_label, separator)
    names = class_label_names(reference, data_args.label_column_name)
    if names is not None:
        return LabelVocabulary.from_names(names, multi_label, separator)
    return LabelVocabulary.from_values(label_strings(reference, data_args.label_column_name), multi_label, separator)


def prepare_split(
    dataset, data_args, vocabulary, sampling_rate: int, min_samples: int, max_samples: int | None
) -> datasets.Dataset:
    """Encode the labels into `label_ids`, drop too-short clips, cap the size, set up audio decoding."""
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
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token,
                  "trust_remote_code": model_args.trust_remote_code}  # fmt: skip
    if model_args.feature_extractor_name:
        if overrides or data_args.feature_preset:
            raise ValueError(
                "--feature_extractor_name and --feature_preset / --target_length / --norm_* exclude each other."
            )
        return AutoFeatureExtractor.from_pretrained(model_args.feature_extractor_name, **hub_kwargs)
    return script_utils.load_feature_extractor(
        model_args.model_name_or_path, data_args.feature_preset, overrides, **hub_kwargs
    )


def load_model(model_args, vocabulary: LabelVocabulary | None, problem_type: str | None):
    """The classifier to fine-tune (labels, problem type and drop-path set), or, without a vocabulary, to evaluate."""
    hub_kwargs = {
        "cache_dir": model_args.cache_dir,
        "revision": model_args.model_revision,
        "token": model_args.token,
        "trust_remote_code": model_args.trust_remote_code,
    }
    model_kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if vocabulary is None:
        return AutoModelForAudioClassification.from_pretrained(
            model_args.model_name_or_path, **hub_kwargs, **model_kwargs
        )
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
        return AutoModelForAudioClassification.from_config(config, **model_kwargs)
    return AutoModelForAudioClassification.from_pretrained(
        model_args.model_name_or_path,
        config=config,
        ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
        **hub_kwargs,
        **model_kwargs,
    )


def write_per_class_results(path: Path, names: list[str], average_precision: np.ndarray):
    """Per-class AP, like the official eval.py's log; written to a temporary name, then renamed."""
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as handle:
        handle.write("class\tAP\n")
        for name, value in zip(names, average_precision):
            handle.write(f"{name}\t{value:.6f}\n")
    os.replace(temporary, path)


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
    if not (training_args.do_train or training_args.do_eval):
        raise ValueError("Nothing to do: pass --do_train (fine-tune, then evaluate) and/or --do_eval.")
    if not training_args.do_train and model_args.model_name_or_path is None:
        raise ValueError("Evaluation needs a fine-tuned --model_name_or_path.")
    set_seed(training_args.seed)

    train_split = load_split(data_args, model_args, "train") if training_args.do_train else None
    eval_split = load_split(data_args, model_args, "eval")
    if training_args.do_train and train_split is None:
        raise ValueError("Training needs --train_file, --train_dir or --dataset_name.")
    if eval_split is None and (not training_args.do_train or training_args.eval_strategy != "no"):
        raise ValueError(
            "No evaluation data: give --eval_file, --eval_dir or --dataset_name (the recipes keep the best checkpoint "
            "on it), or train without it with --eval_strategy no --load_best_model_at_end false."
        )
    reference = train_split if train_split is not None else eval_split
    multi_label = data_args.multi_label
    if multi_label is None:
        multi_label = is_multi_label_column(reference, data_args.label_column_name, data_args.label_separator)
        logger.info("Detected %s data.", "multi-label" if multi_label else "single-label")

    evaluated_config = None
    if not training_args.do_train:
        evaluated_config = AutoConfig.from_pretrained(
            model_args.model_name_or_path, trust_remote_code=model_args.trust_remote_code, token=model_args.token
        )
    vocabulary = build_vocabulary(data_args, reference, multi_label, evaluated_config)
    feature_extractor = load_feature_extractor(model_args, data_args)
    sampling_rate = feature_extractor.sampling_rate

    data_problem_type = "multi_label_classification" if multi_label else "single_label_classification"
    if training_args.do_train:
        problem_type = model_args.problem_type or data_problem_type
        model = load_model(model_args, vocabulary, problem_type)
    else:
        model = load_model(model_args, None, None)
        problem_type = model.config.problem_type = model.config.problem_type or data_problem_type
    if model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    binary_cross_entropy = problem_type == "multi_label_classification"

    def transform(train: bool) -> AudioClassificationTransform:
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
    if train_split is not None:
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
        training_args.metric_for_best_model = "mAP" if multi_label else "accuracy"

    trainer = AsdaFinetuningTrainer(
        model=model,
        args=training_args,
        train_dataset=train_split,
        eval_dataset=eval_split,
        processing_class=feature_extractor,
        data_collator=default_data_collator,
        compute_metrics=AudioClassificationMetrics(multi_label),
        train_sample_weights=train_sample_weights,
    )

    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
        trainer.save_model()
        trainer.log_metrics("train", train_result.metrics)
        trainer.save_metrics("train", train_result.metrics)
        trainer.save_state()
        if eval_split is not None:
            metrics = trainer.evaluate()
            trainer.log_metrics("eval", metrics)
            trainer.save_metrics("eval", metrics)
        card = {
            "finetuned_from": model_args.model_name_or_path,
            "dataset": data_args.card_dataset or data_args.dataset_name,
        }
        if training_args.push_to_hub:
            trainer.push_to_hub(**card)
        else:
            trainer.create_model_card(**card)
        return trainer

    prediction = trainer.predict(eval_split, metric_key_prefix="eval")
    trainer.log_metrics("eval", prediction.metrics)
    trainer.save_metrics("eval", prediction.metrics)
    if trainer.is_world_process_zero():
        if multi_label:
            average_precision = per_class_average_precision(prediction.predictions, prediction.label_ids)
            write_per_class_results(
                Path(training_args.output_dir) / "eval_per_class_ap.tsv", vocabulary.names, average_precision
            )
            print(f"mAP on {len(eval_split)} clips: {prediction.metrics['eval_mAP']:.4f}")
        else:
            print(f"Accuracy on {len(eval_split)} clips: {prediction.metrics['eval_accuracy']:.4f}")
    return trainer


if __name__ == "__main__":
    main()
