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
"""Where the gap between ASDA and the log-mel baseline comes from: the curves behind `docs/experiment.md`.

Runs on the corpus and the labelled clips of `examples/pretraining_experiment.py` (run that first, with the same
`--work_dir`), seed 0, each curve through the library's `pretraining.run` / `finetuning.run`:

    PYTHONPATH=. python examples/small_data_curves.py                    # about 60 minutes on 2 CPU cores

- `scratch`: supervised training from random initialisation for 1,200 steps, validation accuracy every 200:
  the small-data recipe (roll, noise, SpecAugment) for both attention types;
- `pooling`: the same from scratch with mean pooling instead of the CLS token (400 steps);
- `pretraining_steps`: probe accuracy (CLS token, patch statistics) every 100 steps of the preset's 1,600-step
  pre-training (the experiment probes every 200, for three seeds);
- `pool_size`: probe accuracy after 400 pre-training steps on 500 / 1,000 / 2,000 / 4,000 unlabelled clips;
- `sweep`: fine-tuning the 400-step encoder of the 4,000 clips with the preset, and with other learning rates, layer
  decays and drop-path rates.
Finished curves are kept in `benchmarks/results/experiment/curves.json` and skipped when run again; the plot goes to
`curves.png` beside it.
"""

import argparse
import csv
import json
import logging
import statistics
import time
from pathlib import Path

import numpy as np
import transformers

from pretraining_experiment import (
    BASELINE,
    FINETUNING,
    PRETRAINING,
    RESULTS_DIR,
    Probe,
    finetune,
    labelled_subset,
    model_config,
    pretrain,
    probe_checkpoints,
    probed,
)


SEED = 0
SCRATCH_STEPS, EVAL_EVERY = 1200, 200
CURVE_SAVE_STEPS = 100
POOL_SIZE_STEPS = 400
POOL_SIZES = (500, 1000, 2000, 4000)
SWEEPS = {
    "learning_rate": ("--learning_rate", [0.00025, 0.001]),
    "layer_decay": ("--layer_decay", [0.5, 1.0]),
    "drop_path_rate": ("--drop_path_rate", [0.0, 0.2]),
}


def pool_subset(corpus: Path, size: int, seed: int) -> Path:
    """`size` clips of the unlabelled pool, drawn at random."""
    path = corpus / f"pool_{size}.csv"
    if not path.exists():
        with open(corpus / "pool.csv", newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        chosen = sorted(np.random.default_rng(seed).choice(len(rows), size, replace=False))
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows[index] for index in chosen)
    return path


def curve_runs(corpus: Path, labelled: Path, work_dir: Path) -> dict:
    """Every run of the curves, keyed by name: a function that makes its result."""
    config = {attention: model_config(attention, work_dir / "configs") for attention in ("differential", "standard")}
    pretrained = work_dir / f"curves/pool_size/{POOL_SIZES[-1]}"  # the sweeps' encoder
    probe = None

    def probe_run(pretrained_dir: Path, max_steps: int) -> dict:
        nonlocal probe
        probe = probe or Probe(corpus, labelled)
        return probe_checkpoints(probe, config["differential"], SEED, pretrained_dir, max_steps, CURVE_SAVE_STEPS)

    def scratch(attention: str) -> callable:
        steps = ("--max_steps", str(SCRATCH_STEPS), "--eval_strategy", "steps", "--eval_steps", str(EVAL_EVERY))
        return lambda: finetune(corpus, labelled, [f"--config_name={config[attention]}"], 1.0, SEED,
                                work_dir / f"curves/scratch/{attention}", steps)  # fmt: skip

    def pretraining_run(name: str, pool: Path | None, steps: int) -> callable:
        def run() -> dict:
            output_dir = work_dir / f"curves/{name}"
            result = pretrain(corpus, "differential", SEED, output_dir, pool, ("--max_steps", str(steps),
                              "--save_steps", str(CURVE_SAVE_STEPS)))  # fmt: skip
            return {**result, "probe_test_accuracy": probe_run(output_dir, steps)}

        return run

    def sweep(flag: str, value: float) -> callable:
        layer_decay = value if flag == "--layer_decay" else FINETUNING["layer_decay"]
        flags = () if flag == "--layer_decay" else (flag, str(value))
        return lambda: finetune(corpus, labelled, [f"--model_name_or_path={pretrained}"], layer_decay, SEED,
                                work_dir / f"curves/sweep/{flag[2:]}={value}", flags)  # fmt: skip

    runs = {
        "pretraining_steps": pretraining_run("pretraining_steps", None, PRETRAINING["max_steps"]),
        **{f"pool_size/{size}": pretraining_run(f"pool_size/{size}", pool_subset(corpus, size, SEED),
                                                POOL_SIZE_STEPS) for size in POOL_SIZES},  # fmt: skip
        "scratch/differential": scratch("differential"),
        "scratch/standard": scratch("standard"),
        "pooling/mean": lambda: finetune(corpus, labelled, [f"--config_name={config['differential']}"], 1.0, SEED,
                                         work_dir / "curves/pooling/mean", ("--pooling_mode", "mean")),  # fmt: skip
        "sweep/preset": lambda: finetune(corpus, labelled, [f"--model_name_or_path={pretrained}"],
                                         FINETUNING["layer_decay"], SEED, work_dir / "curves/sweep/preset"),
    }
    for name, (flag, values) in SWEEPS.items():
        runs.update({f"sweep/{name}={value}": sweep(flag, value) for value in values})
    return runs


def write_plot(curves: dict, experiment: dict, path: Path) -> None:
    """Four panels: scratch validation curves, probes vs pre-training steps, probes vs pool size, sweeps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    baseline = 100 * experiment[BASELINE]["test_accuracy"]
    figure, axes = plt.subplots(1, 4, figsize=(22, 4.8))
    for name, run in curves.items():
        if name.startswith("scratch/"):
            steps, accuracies = zip(*run["validation_curve"])
            axes[0].plot(steps, [100 * a for a in accuracies], marker="o", label=name.removeprefix("scratch/"))
    axes[0].set(title="From scratch: validation voices vs steps", xlabel="fine-tuning step", ylabel="accuracy (%)")

    for pooling, style in (("cls", "-"), ("patches", "--")):
        if "pretraining_steps" in curves:
            by_step = curves["pretraining_steps"]["probe_test_accuracy"]
            axes[1].plot([int(s) for s in by_step], [100 * v[pooling] for v in by_step.values()], style, marker="o",
                         color="tab:blue", label=f"probe of {pooling}, seed {SEED}, every {CURVE_SAVE_STEPS}")
        by_step = probed(experiment, "differential", pooling)  # the experiment's runs, every seed
        axes[1].errorbar(list(by_step), [100 * statistics.mean(v) for v in by_step.values()],
                         yerr=[100 * statistics.stdev(v) if len(v) > 1 else 0 for v in by_step.values()],
                         fmt=style, marker="s", color="tab:green", capsize=3,
                         label=f"probe of {pooling}, experiment ({len(next(iter(by_step.values())))} seeds)")  # fmt: skip
        points = sorted((int(name.split("/")[1]), run["probe_test_accuracy"][str(POOL_SIZE_STEPS)][pooling])
                        for name, run in curves.items() if name.startswith("pool_size/"))  # fmt: skip
        if points:
            axes[2].plot([p[0] for p in points], [100 * p[1] for p in points], style, marker="o", color="tab:blue",
                         label=f"probe of {pooling}")  # fmt: skip
    axes[1].set(title="Probe (test voices) vs pre-training steps", xlabel="pre-training step", ylabel="accuracy (%)")
    axes[2].set(title=f"Probe (test voices) after {POOL_SIZE_STEPS} steps vs unlabelled clips",
                xlabel="unlabelled clips", ylabel="accuracy (%)", xscale="log")  # fmt: skip

    labels, values = [], []
    for name, run in curves.items():
        if name.startswith("sweep/") or name.startswith("pooling/"):
            labels.append(name.split("/", 1)[1].replace("mean", "scratch, mean pooling"))
            values.append(100 * run["test_accuracy"])
    axes[3].barh(labels, values, color="tab:blue")
    axes[3].set(title=f"Fine-tuned (test voices), {POOL_SIZE_STEPS}-step encoder", xlabel="accuracy (%)")
    for axis in axes:
        axis.axvline(baseline, color="black", linestyle="-.") if axis is axes[3] else axis.axhline(
            baseline, color="black", linestyle="-.", label="baseline (log-mel mean + std)")  # fmt: skip
        axis.grid(alpha=0.3)
        if axis is not axes[3]:
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work_dir", type=Path, default=Path("outputs/experiment"))
    parser.add_argument("--only", nargs="+", help="run only the curves whose names start with one of these")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    transformers.utils.logging.set_verbosity_error()

    corpus = args.work_dir / "corpus"
    experiment_file = RESULTS_DIR / "runs.json"
    if not (corpus / "corpus.json").exists() or not experiment_file.exists():
        raise SystemExit(f"Run examples/pretraining_experiment.py --work_dir {args.work_dir} first.")
    experiment = json.loads(experiment_file.read_text())["runs"]
    labelled = labelled_subset(corpus, 40, 0)
    curves_file = RESULTS_DIR / "curves.json"
    curves = json.loads(curves_file.read_text()) if curves_file.exists() else {}
    start = time.perf_counter()
    for name, make in curve_runs(corpus, labelled, args.work_dir).items():
        if name in curves or (args.only and not any(name.startswith(prefix) for prefix in args.only)):
            continue
        curves[name] = json.loads(json.dumps(make()))  # step keys as in the saved file
        curves_file.write_text(json.dumps(curves, indent=1) + "\n", encoding="utf-8")
        print(f"[{(time.perf_counter() - start) / 60:.1f} min] {name} done", flush=True)
    write_plot(curves, experiment, RESULTS_DIR / "curves.png")
    for name, run in curves.items():
        probes = run.get("probe_test_accuracy")
        summary = (
            {step: {k: round(100 * v, 1) for k, v in accuracies.items()} for step, accuracies in probes.items()}
            if probes
            else {"test": round(100 * run["test_accuracy"], 1), "validation_curve": run["validation_curve"]}
        )
        print(name, json.dumps(summary))
    print("minutes:", round(statistics.fsum(run["seconds"] for run in curves.values()) / 60, 1))


if __name__ == "__main__":
    main()
