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
"""End-to-end proof at small scale: does self-supervised pre-training help, and does differential attention beat
standard attention at the same budget? On a synthetic spoken-command corpus (`examples/make_spoken_commands.py`).

    apt-get install -y espeak-ng sox
    PYTHONPATH=. python examples/pretraining_experiment.py         # about 80 minutes on 2 CPU cores

The setting is the one self-supervised pre-training is for: much unlabelled audio, few labels. For every seed and
both attention types (`differential` = ASDA; `standard` = the same model with plain softmax attention, the paper's
ablation as one flag):
1. pre-train a small encoder on the unlabelled pool (4000 clips of other words and phrases, training voices only)
   with the preset for small data on a CPU, `configuration/pretraining/asda-small-data-cpu.json`: the official recipe
   (16 masked clones per clip, 12 clips per step as on one official GPU, EMA teacher, CNN decoder) scaled to a run of
   1,600 steps, with a checkpoint every 200;
2. probe every checkpoint (and the random initialisation) with `examples/linear_probe.py`: a logistic regression on
   the frozen encoder's CLS token, and on its patch statistics (each frequency patch's token mean and std over time),
   of the labelled clips, scored on the test voices;
3. fine-tune the final encoder, and the same architecture from random initialisation, on the labelled clips (40 per
   command word) with `configuration/finetuning/small-data-cpu.json`;
4. score the fine-tuned models on the validation and test voices, which no training clip was spoken in;
and first the trivial baseline every row is read against, `examples/log_mel_baseline.py` on the same clips.
Every run's metrics and loss logs go to `benchmarks/results/experiment/runs.json` (finished runs are skipped when
the script is run again); the table (mean ± std over seeds) and the plots are written next to it.
"""

import argparse
import csv
import json
import logging
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch
import transformers

from linear_probe import clip_features, encoder_embeddings
from log_mel_baseline import baseline_accuracy, logistic_regression_accuracy
from make_spoken_commands import write_corpus
from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaModel
from modeling_asda.training import finetuning, pretraining


REPO_ROOT = Path(__file__).resolve().parents[1]


RESULTS_DIR = REPO_ROOT / "benchmarks" / "results" / "experiment"
ATTENTION_TYPES = ("differential", "standard")
# asda-tiny (192 wide, 3 heads of 64) with 4 blocks; 1-s clips -> 128 frames -> 8 x 8 = 64 patches. A run of a few
# hundred steps needs a teacher that follows the student within the run: the EMA decay anneals from 0.998 to 0.9999
# over the run (official: 0.9998 -> 0.99999 over the first 100k of 800k steps). The utterance loss is lambda_u = 0.5 on
# the *mean* over the 192 student clones of a step: the official *sum* (spec 3.4) weights it 192 x 0.5 against the
# frame term, which at this budget pulls every CLS token to one point.
PRETRAINING_PRESET = REPO_ROOT / "configuration/pretraining/asda-small-data-cpu.json"
PRETRAINING = json.loads(PRETRAINING_PRESET.read_text())
LABELLED_PER_WORD = 40
# The trivial baseline every model row is read against: examples/log_mel_baseline.py on the same clips.
BASELINE = "baseline/log_mel_statistics"
# Probes of a frozen encoder: its CLS token (the utterance embedding), and every frequency patch's token mean and
# standard deviation over time (the encoder's counterpart of the baseline's per-bin statistics).
# Keys: the runs.json names; values: label, plot style, `linear_probe.py --pooling`.
PROBE_POOLINGS = {
    "cls": ("the CLS token", "-", "utterance"),
    "patches": ("the patch statistics", "--", "patch_statistics"),
}
# runs.json of another protocol (e.g. probes of the CLS token only) is not resumed from.
PROTOCOL = 3
# The SPC-2 recipe's roll, noise and SpecAugment, without mixup and with softmax cross-entropy (with mixup and binary
# cross-entropy no model, pre-trained or not, left chance level within a few hundred steps); layer decay for
# pre-trained encoders only.
FINETUNING_PRESET = REPO_ROOT / "configuration/finetuning/small-data-cpu.json"
FINETUNING = json.loads(FINETUNING_PRESET.read_text())
FEATURE_PRESET, TARGET_LENGTH = FINETUNING["feature_preset"], FINETUNING["target_length"]
COMMON_FLAGS = ["--use_cpu", "true", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]


def model_config(attention_type: str, directory: Path) -> Path:
    """The pre-training preset's model with one attention type, as a json preset for the scripts."""
    config = pretraining.build_config(pretraining.ModelArguments(
        config_name=str(REPO_ROOT / PRETRAINING["config_name"]),
        config_overrides=f"{PRETRAINING['config_overrides']},attention_type={attention_type}",
    ))  # fmt: skip
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{attention_type}.json"
    config.to_json_file(path)
    return path


def labelled_subset(corpus: Path, per_word: int, seed: int) -> Path:
    """`per_word` training clips of every command word, drawn at random: the labelled data of the experiment."""
    path = corpus / f"train_{per_word}_per_word.csv"
    if not path.exists():
        with open(corpus / "train.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        rng = np.random.default_rng(seed)
        chosen = []
        for word in sorted({row["label"] for row in rows}):
            candidates = [row for row in rows if row["label"] == word]
            chosen += [candidates[index] for index in sorted(rng.choice(len(candidates), per_word, replace=False))]
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(chosen)
    return path


def pretrain(
    corpus: Path, attention_type: str, seed: int, output_dir: Path, pool: Path | None = None, flags: tuple = ()
) -> dict:
    """Pre-train with the small-data preset on the unlabelled `pool` (default: the corpus's whole pool); `flags`
    override the preset (e.g. `--max_steps`)."""
    start = time.perf_counter()
    result = pretraining.run(*pretraining.parse_arguments([
        str(PRETRAINING_PRESET), "--config_name", str(REPO_ROOT / PRETRAINING["config_name"]),  # from any directory
        "--config_overrides", f"attention_type={attention_type}",  # merged with the preset's overrides
        "--train_file", str(pool or corpus / "pool.csv"), "--save_only_model", "true", "--seed", str(seed),
        "--output_dir", str(output_dir), *COMMON_FLAGS, *flags,
    ]))  # fmt: skip
    return {
        "seconds": time.perf_counter() - start,
        "log": [entry for entry in result.trainer.state.log_history if "frame_loss" in entry],
    }


class Probe:
    """Linear probes on the labelled clips, scored on the test voices: `examples/linear_probe.py`'s logistic regression
    on a frozen encoder's embeddings."""

    def __init__(self, corpus: Path, labelled: Path):
        extractor = AsdaFeatureExtractor.from_preset(FEATURE_PRESET, max_length=TARGET_LENGTH)
        self.splits = {split: clip_features(manifest, extractor)
                       for split, manifest in (("train", labelled), ("test", corpus / "test.csv"))}  # fmt: skip

    def accuracies(self, model: AsdaModel) -> dict[str, float]:
        """Probe accuracy of every pooling of `PROBE_POOLINGS`; the encoder runs once per split."""
        (train, train_labels), (test, test_labels) = (
            (encoder_embeddings(model, features), labels) for features, labels in self.splits.values()
        )
        return {
            key: logistic_regression_accuracy(train[pooling], train_labels, test[pooling], test_labels)
            for key, (_, _, pooling) in PROBE_POOLINGS.items()
        }


def probe_checkpoints(
    probe: Probe,
    config: Path,
    seed: int,
    pretrained_dir: Path,
    max_steps: int = PRETRAINING["max_steps"],
    save_steps: int = PRETRAINING["save_steps"],
) -> dict[int, dict[str, float]]:
    """Probe accuracies at step 0 (the random initialisation) and at every saved pre-training checkpoint."""
    torch.manual_seed(seed)
    accuracies = {0: probe.accuracies(AsdaModel(AsdaConfig.from_pretrained(config)))}
    for step in range(save_steps, max_steps + 1, save_steps):
        encoder = AsdaModel.from_pretrained(pretrained_dir / f"checkpoint-{step}")  # the student of the checkpoint
        accuracies[step] = probe.accuracies(encoder)
    return accuracies


def finetune(
    corpus: Path, labelled: Path, init: list[str], layer_decay: float, seed: int, output_dir: Path, flags: tuple = ()
) -> dict:
    """Fine-tune on the labelled clips, then evaluate the final model on the validation and test voices; `flags`
    override the preset (e.g. `--eval_strategy steps` for a validation curve)."""
    start = time.perf_counter()
    trained = finetuning.run(*finetuning.parse_arguments([
        str(FINETUNING_PRESET), *init, "--layer_decay", str(layer_decay),
        "--train_file", str(labelled), "--eval_file", str(corpus / "validation.csv"),
        "--do_train", "--logging_steps", "10", "--seed", str(seed), "--output_dir", str(output_dir), *COMMON_FLAGS,
        *flags,
    ]))  # fmt: skip
    seconds = time.perf_counter() - start
    tested = finetuning.run(*finetuning.parse_arguments([
        "--model_name_or_path", str(output_dir), "--eval_file", str(corpus / "test.csv"), "--do_eval",
        "--per_device_eval_batch_size", "64", "--output_dir", str(output_dir / "test"), *COMMON_FLAGS,
    ]))  # fmt: skip
    return {
        "seconds": seconds,
        "validation_accuracy": trained.metrics["eval_accuracy"],
        "test_accuracy": tested.metrics["eval_accuracy"],
        "log": [entry for entry in trained.trainer.state.log_history if "loss" in entry],
        # one point per step: the final evaluation repeats the last periodic one when they fall on the same step
        "validation_curve": sorted(
            {entry["step"]: entry["eval_accuracy"] for entry in trained.trainer.state.log_history
             if "eval_accuracy" in entry}.items()
        ),  # fmt: skip
    }


def run_all(
    corpus: Path, labelled: Path, work_dir: Path, seeds: list[int], attention_types: list[str], runs: dict, save
) -> None:
    probe = None
    if BASELINE not in runs:
        start = time.perf_counter()
        extractor = AsdaFeatureExtractor.from_preset(FEATURE_PRESET, max_length=TARGET_LENGTH)
        accuracy = baseline_accuracy(labelled, corpus / "test.csv", extractor)
        runs[BASELINE] = {"test_accuracy": accuracy, "seconds": time.perf_counter() - start}
        save()
    for seed in seeds:
        for attention in attention_types:
            config = model_config(attention, work_dir / "configs")
            pretrained_dir = work_dir / f"pretrain/{attention}/seed{seed}"
            key = f"pretrain/{attention}/seed{seed}"
            if key not in runs:
                runs[key] = pretrain(corpus, attention, seed, pretrained_dir)
                save()
            if "probe_test_accuracy" not in runs[key]:
                probe = probe or Probe(corpus, labelled)
                runs[key]["probe_test_accuracy"] = probe_checkpoints(probe, config, seed, pretrained_dir)
                save()
            starts = {
                "pretrained": ([f"--model_name_or_path={pretrained_dir}"], FINETUNING["layer_decay"]),
                "scratch": ([f"--config_name={config}"], 1.0),
            }
            for start, (init, layer_decay) in starts.items():
                finetune_key = f"finetune/{attention}/{start}/seed{seed}"
                if finetune_key not in runs:
                    runs[finetune_key] = finetune(corpus, labelled, init, layer_decay, seed, work_dir / finetune_key)
                    save()


def mean_std(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{100 * statistics.mean(values):.1f} ± {100 * spread:.1f}"


def finetuned(runs: dict, attention: str, start: str, split: str) -> list[float]:
    prefix = f"finetune/{attention}/{start}/"
    return [run[f"{split}_accuracy"] for key, run in sorted(runs.items()) if key.startswith(prefix)]


def probed(runs: dict, attention: str, pooling: str) -> dict[int, list[float]]:
    """Probe accuracies of one pooling (`PROBE_POOLINGS`) by pre-training step, over seeds."""
    by_step = {}
    for key, run in sorted(runs.items()):
        if key.startswith(f"pretrain/{attention}/"):
            for step, accuracies in run["probe_test_accuracy"].items():
                by_step.setdefault(int(step), []).append(accuracies[pooling])
    return dict(sorted(by_step.items()))


def write_plots(runs: dict, first_seed: int, path: Path) -> None:
    """Loss curves (one legend entry per curve kind, from `first_seed`) and probe accuracy against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colours = {"differential": "tab:blue", "standard": "tab:orange"}
    figure, axes = plt.subplots(1, 3, figsize=(17, 4.5))
    for attention in ATTENTION_TYPES:
        for key, run in sorted(runs.items()):
            first = key.endswith(f"seed{first_seed}")
            if key.startswith(f"pretrain/{attention}/"):
                steps = [entry["step"] for entry in run["log"]]
                axes[0].plot(steps, [entry["frame_loss"] for entry in run["log"]], color=colours[attention],
                             alpha=0.7, label=attention if first else None)  # fmt: skip
            elif key.startswith(f"finetune/{attention}/"):
                start = key.split("/")[2]
                steps = [entry["step"] for entry in run["log"]]
                axes[1].plot(steps, [entry["loss"] for entry in run["log"]], "-" if start == "pretrained" else ":",
                             color=colours[attention], alpha=0.7,
                             label=f"{attention}, {start}" if first else None)  # fmt: skip
        for pooling, (name, style, _) in PROBE_POOLINGS.items():
            by_step = probed(runs, attention, pooling)
            means = [100 * statistics.mean(values) for values in by_step.values()]
            spreads = [100 * statistics.stdev(values) if len(values) > 1 else 0.0 for values in by_step.values()]
            axes[2].errorbar(list(by_step), means, yerr=spreads, marker="o", capsize=4, color=colours[attention],
                             linestyle=style, label=f"{attention}: probe of {name}")  # fmt: skip
    axes[2].axhline(100 * runs[BASELINE]["test_accuracy"], color="black", linestyle="-.",
                    label="baseline: probe of log-mel mean + std")  # fmt: skip
    axes[0].set(title="Pre-training: frame loss", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="Fine-tuning: training loss (solid: pre-trained, dotted: scratch)", xlabel="step", ylabel="loss")
    axes[2].set(title="Test voices: probe accuracy vs pre-training steps", xlabel="pre-training steps",
                ylabel="accuracy (%)")  # fmt: skip
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_report(runs: dict, corpus_summary: dict, seeds: list[int]) -> str:
    clips = corpus_summary["clips"]
    words = len(corpus_summary["commands"])
    lines = [
        "# Pre-training vs scratch, differential vs standard attention (synthetic spoken commands)",
        "",
        f"Accuracy (%) on {words} command words, mean ± std over {len(seeds)} seeds. Fine-tuned on "
        f"{LABELLED_PER_WORD * words} labelled clips ({LABELLED_PER_WORD} per word); validation ({clips['validation']} "
        f"clips) and test ({clips['test']} clips) are spoken in voices held out of all training; pre-training used "
        f"{clips['pool']} unlabelled clips of other words. Chance is {100 / words:.0f} %.",
        "",
        "| attention | initialisation | fine-tuned: validation voices | fine-tuned: test voices | "
        "probe of the CLS token: test voices | probe of the patch statistics: test voices |",
        "|---|---|---:|---:|---:|---:|",
        f"| — | baseline: logistic regression on the log-mel mean + std over time | | | "
        f"{100 * runs[BASELINE]['test_accuracy']:.1f} | |",
    ]
    for attention in ATTENTION_TYPES:
        by_step = {pooling: probed(runs, attention, pooling) for pooling in PROBE_POOLINGS}
        for start, name, probe_step in (
            ("scratch", "random (no pre-training)", 0),
            ("pretrained", f"pre-trained {PRETRAINING['max_steps']} steps", PRETRAINING["max_steps"]),
        ):
            validation, test = (
                finetuned(runs, attention, start, "validation"),
                finetuned(runs, attention, start, "test"),
            )
            if test:
                lines.append(
                    f"| {attention} | {name} | {mean_std(validation)} | {mean_std(test)} | "
                    f"{mean_std(by_step['cls'][probe_step])} | {mean_std(by_step['patches'][probe_step])} |"
                )
    lines += ["", "Per seed, test voices (%):", "", "| run | " + " | ".join(f"seed {s}" for s in seeds) + " |",
              "|---|" + "---:|" * len(seeds)]  # fmt: skip
    for attention in ATTENTION_TYPES:
        for start in ("scratch", "pretrained"):
            values = finetuned(runs, attention, start, "test")
            lines.append(f"| fine-tuned, {attention}, {start} | " + " | ".join(f"{100 * v:.1f}" for v in values) + " |")
        for pooling, (name, _, _) in PROBE_POOLINGS.items():
            for step, values in probed(runs, attention, pooling).items():
                lines.append(
                    f"| probe of {name}, {attention}, step {step} | "
                    + " | ".join(f"{100 * v:.1f}" for v in values)
                    + " |"
                )
    minutes = {key: run["seconds"] / 60 for key, run in runs.items()}
    pretraining_minutes = [value for key, value in minutes.items() if key.startswith("pretrain/")]
    lines += [
        "",
        "![pre-training loss, fine-tuning loss, probe accuracy vs pre-training steps](experiment.png)",
        "",
        f"Pre-training: `{PRETRAINING_PRESET.relative_to(REPO_ROOT)}`, {PRETRAINING['max_steps']} steps x "
        f"{PRETRAINING['per_device_train_batch_size']} clips, lr {PRETRAINING['learning_rate']}, config overrides "
        f"`{PRETRAINING['config_overrides']}`, EMA decay annealed over the run; "
        f"{min(pretraining_minutes):.1f}-{max(pretraining_minutes):.1f} min per run. Fine-tuning: "
        f"`{FINETUNING_PRESET.relative_to(REPO_ROOT)}`, {FINETUNING['max_steps']} steps x "
        f"{FINETUNING['per_device_train_batch_size']} clips, lr {FINETUNING['learning_rate']}, layer decay "
        f"{FINETUNING['layer_decay']} for pre-trained encoders (none from scratch), the SPC-2 recipe's roll, noise and "
        f"SpecAugment, no mixup, cross-entropy. Model: `{PRETRAINING['config_name']}` with the pre-training preset's "
        "overrides.",
        "",
        f"Made by `PYTHONPATH=. python examples/pretraining_experiment.py` ({sum(minutes.values()):.0f} min of "
        f"training and evaluation) on {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
        f"transformers {transformers.__version__}.",
    ]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", type=Path, default=REPO_ROOT / "outputs" / "experiment")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--corpus_seed", type=int, default=0)
    parser.add_argument("--attention_types", nargs="+", default=list(ATTENTION_TYPES), choices=ATTENTION_TYPES)
    parser.add_argument("--results_dir", type=Path, default=RESULTS_DIR, help="where runs.json and the report go")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    transformers.utils.logging.set_verbosity_error()

    start = time.perf_counter()
    corpus = args.work_dir / "corpus"
    if not (corpus / "corpus.json").exists():
        write_corpus(corpus, seed=args.corpus_seed, takes_per_word={"train": 2, "validation": 1, "test": 1})
    corpus_summary = json.loads((corpus / "corpus.json").read_text())
    labelled = labelled_subset(corpus, LABELLED_PER_WORD, args.corpus_seed)

    args.results_dir.mkdir(parents=True, exist_ok=True)
    runs_file = args.results_dir / "runs.json"
    saved = json.loads(runs_file.read_text()) if runs_file.exists() else {}
    runs = saved.get("runs", {}) if saved.get("protocol") == PROTOCOL else {}

    def save():
        runs_file.write_text(json.dumps({"protocol": PROTOCOL, "runs": runs}, indent=1) + "\n", encoding="utf-8")
        print(f"[{(time.perf_counter() - start) / 60:.1f} min] {len(runs)} runs done", flush=True)

    run_all(corpus, labelled, args.work_dir, args.seeds, args.attention_types, runs, save)
    write_plots(runs, args.seeds[0], args.results_dir / "experiment.png")
    report = write_report(runs, corpus_summary, args.seeds)
    (args.results_dir / "RESULTS.md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
