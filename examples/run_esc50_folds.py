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
"""ESC-50 5-fold cross-validation: fine-tune once per fold with the esc50 preset and report the mean accuracy.

    python examples/run_esc50_folds.py --esc50_dir ESC-50-master --output_dir asda-esc50 \
        --launcher "accelerate launch --multi_gpu --num_processes 4" -- --model_name_or_path PRETRAINED

Everything after `--` goes to every `run_finetune.py` run. Folds that already have `eval_results.json` in
`OUTPUT_DIR/fold<k>` are not run again. The summary goes to `OUTPUT_DIR/esc50_5fold_results.json`.
"""

import argparse
import json
import shlex
import statistics
import subprocess
import sys
from pathlib import Path

from modeling_asda.tools.files import write_text_atomically
from prepare_manifests import ESC50_FOLDS, esc50_manifests


RUN_FINETUNE = Path(__file__).resolve().with_name("run_finetune.py")
ESC50_PRESET = Path(__file__).resolve().parents[1] / "configuration" / "finetuning" / "esc50.json"


def fold_command(launcher: list[str], train: Path, evaluation: Path, output_dir: Path, extra: list[str]) -> list[str]:
    return [
        *launcher, str(RUN_FINETUNE), str(ESC50_PRESET), "--do_train",
        "--train_file", str(train), "--eval_file", str(evaluation), "--output_dir", str(output_dir), *extra,
    ]  # fmt: skip


def summarize(output_dir: Path, folds=ESC50_FOLDS) -> dict:
    """Per-fold best-checkpoint accuracy and its mean and standard deviation over the folds."""
    accuracies = {}
    for fold in folds:
        results = output_dir / f"fold{fold}" / "eval_results.json"
        if not results.is_file():
            raise FileNotFoundError(f"Fold {fold} has no {results}; did its run fail?")
        accuracies[fold] = json.loads(results.read_text())["eval_accuracy"]
    values = list(accuracies.values())
    return {
        "fold_accuracy": accuracies,
        "mean_accuracy": statistics.fmean(values),
        "std_accuracy": statistics.stdev(values) if len(values) > 1 else 0.0,
    }


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--esc50_dir", type=Path, required=True, help="the extracted ESC-50 repository")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--launcher", default=shlex.quote(sys.executable), help="command that runs run_finetune.py")
    parser.add_argument("--folds", type=int, nargs="+", default=list(ESC50_FOLDS), choices=ESC50_FOLDS)
    args = parser.parse_args(own)

    manifests = esc50_manifests(args.esc50_dir, args.output_dir / "manifests")
    for fold in args.folds:
        fold_dir = args.output_dir / f"fold{fold}"
        if (fold_dir / "eval_results.json").is_file():
            print(f"fold {fold}: done already, skipped")
            continue
        train, evaluation = manifests[fold]
        subprocess.run(fold_command(shlex.split(args.launcher), train, evaluation, fold_dir, extra), check=True)

    summary = summarize(args.output_dir, args.folds)
    path = args.output_dir / "esc50_5fold_results.json"
    write_text_atomically(path, json.dumps(summary, indent=2) + "\n")
    print(f"ESC-50 accuracy over folds {args.folds}: {summary['mean_accuracy']:.4f} +- {summary['std_accuracy']:.4f}")
    return summary


if __name__ == "__main__":
    main()
