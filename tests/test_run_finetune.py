"""examples/run_finetune.py end to end on generated audio: fine-tuning, the pipeline, evaluation-only mode, presets,
the manifest helpers, and (slow) multi-process training equal to single-process training."""

import csv
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
import torch
from huggingface_hub import ModelCard

from conftest import import_example
from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification, AsdaForPreTraining
from modeling_asda.data.labels import LabelVocabulary
from modeling_asda.training import finetuning


REPO = Path(__file__).resolve().parents[1]
PRESETS = REPO / "configuration" / "finetuning"
prepare_manifests = import_example("prepare_manifests")
run_esc50_folds = import_example("run_esc50_folds")  # imports prepare_manifests
write_tone_dataset = import_example("make_tone_dataset").write_tone_dataset


TINY_CONFIG = {"model_type": "asda", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64}  # fmt: skip
CPU_FLAGS = ["--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0"]


def finetune(argv: list[str]):
    """What `examples/run_finetune.py ARGV` runs."""
    return finetuning.run(*finetuning.parse_arguments(argv))


def tone_dataset(root: Path, classes: list[str], clips: dict[str, int], multi_label: bool, seed: int = 0) -> Path:
    write_tone_dataset(root, classes, clips, multi_label, seed)
    (root / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    return root


def finetune_flags(data: Path, output_dir: Path, *extra: str) -> list[str]:
    return [
        "--config_name", str(data / "tiny.json"), "--train_file", str(data / "train.csv"),
        "--eval_file", str(data / "eval.csv"), "--target_length", "128", "--output_dir", str(output_dir),
        "--do_train", *CPU_FLAGS, *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def two_class_data(tmp_path_factory):
    return tone_dataset(tmp_path_factory.mktemp("tones"), ["low", "high"], {"train": 16, "eval": 8}, False)


@pytest.fixture(scope="module")
def finetuned(two_class_data, tmp_path_factory):
    """A tiny ASDA trained from scratch for 40 steps with the default recipe (mixup, SpecAugment, roll + gain)."""
    output_dir = tmp_path_factory.mktemp("finetuned")
    flags = finetune_flags(
        two_class_data, output_dir, "--max_steps", "40", "--per_device_train_batch_size", "4", "--learning_rate",
        "1e-3", "--warmup_steps", "4", "--eval_strategy", "steps", "--eval_steps", "20", "--save_strategy", "steps",
        "--save_steps", "20", "--logging_steps", "10", "--seed", "0",
    )  # fmt: skip
    finetune(flags)
    return output_dir


def test_smoke_finetune_then_classify_through_the_pipeline(finetuned, two_class_data):
    results = json.loads((finetuned / "eval_results.json").read_text())
    assert results["eval_accuracy"] == 1.0
    config = json.loads((finetuned / "config.json").read_text())
    assert config["id2label"] == {"0": "high", "1": "low"} and config["problem_type"] == "single_label_classification"
    assert config["drop_path_rate"] == 0.1
    features = json.loads((finetuned / "preprocessor_config.json").read_text())
    assert features["max_length"] == 128 and features["mean"] == pytest.approx(-4.268)
    card = ModelCard.load(finetuned / "README.md")
    assert card.data.pipeline_tag == "audio-classification" and "## Fine-tuning" in card.text
    assert "| accuracy | 1.0000 |" in card.text and "trust_remote_code=True" in card.text

    # A fresh interpreter without this repository on its path: the folder alone must be enough (remote code).
    clips = [
        (str(two_class_data / row["audio"]), row["label"]) for row in csv.DictReader(open(two_class_data / "eval.csv"))
    ]
    script = (
        "import json, sys, soundfile\n"
        "from transformers import pipeline\n"
        f"classifier = pipeline('audio-classification', model={str(finetuned)!r}, trust_remote_code=True)\n"
        "assert 'modeling_asda' not in sys.modules\n"
        f"clips = {clips!r}\n"
        "print(json.dumps([classifier(soundfile.read(path, dtype='float32')[0])[0]['label'] for path, _ in clips]))\n"
    )
    environment = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    completed = subprocess.run(
        [sys.executable, "-c", script],
        cwd=finetuned.parent,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    predicted = json.loads(completed.stdout.strip().splitlines()[-1])
    assert predicted == [label for _, label in clips]


def test_evaluation_only_mode(finetuned, two_class_data, tmp_path, capsys):
    output_dir = tmp_path / "evaluation"
    finetune(
        ["--do_eval", "--model_name_or_path", str(finetuned), "--eval_file", str(two_class_data / "eval.csv"),
         "--output_dir", str(output_dir), *CPU_FLAGS]
    )  # fmt: skip
    assert "Accuracy on 8 clips: 1.0000" in capsys.readouterr().out
    trained = json.loads((finetuned / "eval_results.json").read_text())
    evaluated = json.loads((output_dir / "eval_results.json").read_text())
    assert evaluated["eval_accuracy"] == trained["eval_accuracy"]
    assert evaluated["eval_loss"] == pytest.approx(trained["eval_loss"], rel=1e-5)


def test_evaluation_only_mode_keeps_short_clips_unless_a_minimum_is_given(finetuned, two_class_data, tmp_path, capsys):
    """Official eval.py keeps every clip; the official SPC-2 numbers come from the training loader's filtered subset,
    which the spc2 preset reproduces with --min_length_samples 10000 (also in evaluation-only mode)."""
    rows = list(csv.DictReader(open(two_class_data / "eval.csv")))
    short = two_class_data / "audio" / "short.wav"
    waveform, sampling_rate = soundfile.read(two_class_data / rows[0]["audio"], dtype="float32")
    soundfile.write(short, waveform[:9_999], sampling_rate)
    manifest = tmp_path / "eval_with_short.csv"
    with open(manifest, "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["audio", "label"])
        writer.writeheader()
        writer.writerows([*({"audio": str(two_class_data / row["audio"]), "label": row["label"]} for row in rows),
                          {"audio": str(short), "label": rows[0]["label"]}])  # fmt: skip
    evaluate = ["--do_eval", "--model_name_or_path", str(finetuned), "--eval_file", str(manifest), *CPU_FLAGS]
    finetune([*evaluate, "--output_dir", str(tmp_path / "all")])
    assert f"Accuracy on {len(rows) + 1} clips" in capsys.readouterr().out
    finetune([*evaluate, "--output_dir", str(tmp_path / "filtered"), "--min_length_samples", "10000"])
    assert f"Accuracy on {len(rows)} clips" in capsys.readouterr().out
    _, data_args, _ = finetuning.parse_arguments([str(PRESETS / "spc2.json"), "--output_dir", "unused"])
    assert data_args.min_length_samples == 10_000


def test_multi_label_finetune_and_evaluation(tmp_path, capsys):
    data = tone_dataset(tmp_path / "data", ["low", "mid", "high"], {"train": 12, "eval": 9}, True)
    trained = tmp_path / "trained"
    finetune(finetune_flags(data, trained, "--max_steps", "3", "--per_device_train_batch_size", "4"))
    config = json.loads((trained / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert set(config["id2label"].values()) == {"low", "mid", "high"}
    output_dir = tmp_path / "evaluation"
    finetune(
        ["--do_eval", "--model_name_or_path", str(trained), "--eval_file", str(data / "eval.csv"),
         "--output_dir", str(output_dir), *CPU_FLAGS]
    )  # fmt: skip
    printed = capsys.readouterr().out
    per_class = list(csv.DictReader(open(output_dir / "eval_per_class_ap.tsv"), delimiter="\t"))
    assert [row["class"] for row in per_class] == [config["id2label"][str(index)] for index in range(3)]
    mean_ap = np.mean([float(row["AP"]) for row in per_class])
    assert f"mAP on 9 clips: {mean_ap:.4f}" in printed
    assert json.loads((output_dir / "eval_results.json").read_text())["eval_mAP"] == pytest.approx(mean_ap, abs=1e-6)


def test_hub_style_dataset_with_audio_and_class_label_columns(two_class_data, tmp_path):
    # A parquet dataset as on the Hub: embedded wav bytes in an `Audio` column, a `ClassLabel` column. Without
    # torchcodec the clips are decoded from their bytes with soundfile.
    names = ["high", "low"]
    features = datasets.Features({"audio": {"bytes": datasets.Value("binary"), "path": datasets.Value("string")},
                                  "label": datasets.ClassLabel(names=names)})  # fmt: skip
    for split, manifest in (("train", "train.csv"), ("validation", "eval.csv")):
        rows = list(csv.DictReader(open(two_class_data / manifest)))
        columns = {
            "audio": [{"bytes": (two_class_data / row["audio"]).read_bytes(), "path": row["audio"]} for row in rows],
            "label": [names.index(row["label"]) for row in rows],
        }
        dataset = datasets.Dataset.from_dict(columns, features=features)
        dataset = dataset.cast(datasets.Features({"audio": datasets.Audio(), "label": features["label"]}))
        dataset.to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    output_dir = tmp_path / "out"
    flags = [
        "--dataset_name", str(tmp_path / "hub"), "--config_name", str(two_class_data / "tiny.json"),
        "--target_length", "128", "--output_dir", str(output_dir), "--do_train", "--max_steps", "2",
        "--per_device_train_batch_size", "4", *CPU_FLAGS,
    ]  # fmt: skip
    trainer = finetune(flags).trainer
    assert trainer.model.config.id2label == {0: "high", 1: "low"}
    assert len(trainer.train_dataset) == 16 and trainer.train_dataset[0]["input_values"].shape == (128, 128)
    assert json.loads((output_dir / "eval_results.json").read_text())["eval_samples_per_second"] > 0


def test_fine_tuning_starts_from_the_pre_trained_student(tmp_path):
    # A pre-training folder holds the student (`asda.*`), the EMA teacher and the decoder; the official fine-tuning
    # starts from the student.
    config = AsdaConfig(
        **{key: value for key, value in TINY_CONFIG.items() if key != "model_type"}, decoder_hidden_size=32
    )
    pretrained = AsdaForPreTraining(config)
    with torch.no_grad():
        for param in pretrained.teacher.parameters():
            param.add_(1.0)
    pretrained.save_pretrained(tmp_path / "pretrained")
    model_args = finetuning.ModelArguments(model_name_or_path=str(tmp_path / "pretrained"))
    vocabulary = LabelVocabulary.from_names(["a", "b", "c"], multi_label=False)
    model = finetuning.load_model(model_args, vocabulary, "single_label_classification")
    assert isinstance(model, AsdaForAudioClassification) and model.config.drop_path_rate == 0.1
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    student = pretrained.asda.state_dict()
    for name, tensor in model.asda.state_dict().items():
        torch.testing.assert_close(tensor, student[name], msg=name)


def test_training_needs_evaluation_data(two_class_data, tmp_path):
    flags = finetune_flags(two_class_data, tmp_path, "--max_steps", "1")
    flags.remove("--eval_file")
    flags.remove(str(two_class_data / "eval.csv"))
    with pytest.raises(ValueError, match="No evaluation data"):
        finetune(flags)


def test_short_training_clips_are_reported_and_an_all_short_split_is_an_error(two_class_data, tmp_path, caplog):
    """1-s clips at 8 kHz (8000 samples) fall below the training default of 10,000 samples: the script's logging must
    show the skip (count, threshold, the flag), and a split left empty must stop the run naming the flag."""
    rows = list(csv.DictReader(open(two_class_data / "train.csv")))[:4]
    rng = np.random.default_rng(0)
    short = []
    for index in range(2):
        path = tmp_path / f"short{index}.wav"
        soundfile.write(path, 0.1 * rng.standard_normal(8000), 8000)
        short.append({"audio": str(path), "label": rows[index]["label"]})
    long = [{"audio": str(two_class_data / row["audio"]), "label": row["label"]} for row in rows]
    for name, manifest_rows in (("mixed", long + short), ("short", short)):
        with open(tmp_path / f"{name}.csv", "w", newline="") as handle:
            writer = csv.DictWriter(handle, ["audio", "label"])
            writer.writeheader()
            writer.writerows(manifest_rows)

    def flags(manifest: str, output: str) -> list[str]:
        return ["--config_name", str(two_class_data / "tiny.json"), "--train_file", str(tmp_path / manifest),
                "--target_length", "128", "--output_dir", str(tmp_path / output), "--do_train", "--max_steps", "1",
                "--per_device_train_batch_size", "2", "--eval_strategy", "no", "--save_strategy", "no",
                "--load_best_model_at_end", "false", *CPU_FLAGS]  # fmt: skip

    trainer = finetune(flags("mixed.csv", "mixed")).trainer
    assert len(trainer.train_dataset) == 4
    skipped = [record for record in caplog.records if "Skipped" in record.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert "Skipped 2 of 6 clips shorter than 10000 samples" in skipped[0].getMessage()
    assert "--min_length_samples" in skipped[0].getMessage()
    with pytest.raises(ValueError, match="All 2 clips are shorter than 10000 samples.*--min_length_samples"):
        finetune(flags("short.csv", "short"))


# Spec section 4.3 (the official finetuning_*.sh scripts): lr, updates, warm-up, batch, frames, mixup, SpecAugment ratio,
# noise augmentation, balanced sampling, label smoothing, loss, normalisation statistics.
OFFICIAL_RECIPES = {
    "as2m": (5e-5, 600_000, 60_000, 48, 1024, 0.8, 0.2, False, True, 0.0, "multi", -4.268, 4.569),
    "as20k": (5e-5, 60_000, 6_000, 32, 1024, 0.8, 0.2, False, False, 0.0, "multi", -4.268, 4.569),
    "esc50": (5e-5, 4_000, 400, 48, 512, 0.0, 0.4, False, False, 0.1, "single", -6.627, 5.359),
    "spc2": (2e-4, 80_000, 8_000, 256, 128, 0.8, 0.2, True, False, 0.0, "multi", -6.846, 5.565),
}


@pytest.mark.parametrize("preset", sorted(OFFICIAL_RECIPES))
def test_presets_hold_the_official_recipes(preset):
    lr, steps, warmup, batch, frames, mixup, spec_ratio, noise, balanced, smoothing, loss, mean, std = (
        OFFICIAL_RECIPES[preset]
    )
    model_args, data_args, args = finetuning.parse_arguments(
        [str(PRESETS / f"{preset}.json"), "--output_dir", "unused"]
    )
    assert (args.learning_rate, args.max_steps, args.warmup_steps, args.per_device_train_batch_size) == (
        lr,
        steps,
        warmup,
        batch,
    )
    assert (args.mixup_alpha, args.spec_augment_ratio, args.spectrogram_noise) == (mixup, spec_ratio, noise)
    assert (args.balanced_sampling, args.label_smoothing_factor) == (balanced, smoothing)
    assert model_args.problem_type == f"{loss}_label_classification"
    features = AsdaFeatureExtractor.from_preset(data_args.feature_preset)
    assert (features.max_length, features.mean, features.std) == (frames, mean, std)
    # shared by every recipe
    assert (
        args.roll_augment and args.mixup_prob == 0.9 and args.layer_decay == 0.65 and model_args.drop_path_rate == 0.1
    )
    assert (args.adam_beta1, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (0.9, 0.95, 0.05, 0.0)
    assert args.lr_scheduler_kwargs == {"min_lr": 1e-6} and args.official_lr_schedule and args.load_best_model_at_end
    assert not args.exempt_biases_and_1d_from_weight_decay  # what fairseq's composite optimiser did
    if balanced:
        assert args.balanced_samples_per_epoch == 200_000
    if loss == "multi":
        assert args.multilabel_loss_normalization == ("positives" if preset.startswith("as") else "samples")


def test_small_data_preset_is_the_documented_recipe():
    """docs/finetuning.md: cross-entropy without mixup, SPC-2 augmentations, 400 x 32 at 5e-4 (40 warm-up), layer decay
    0.75, drop-path 0.1, 1-s features, on the CPU."""
    model_args, data_args, args = finetuning.parse_arguments(
        [str(PRESETS / "small-data-cpu.json"), "--output_dir", "unused"]
    )
    assert model_args.problem_type == "single_label_classification" and model_args.drop_path_rate == 0.1
    augmentations = (args.mixup_alpha, args.spec_augment_ratio, args.roll_augment, args.spectrogram_noise)
    assert augmentations == (0.0, 0.2, True, True)
    schedule = (args.max_steps, args.per_device_train_batch_size, args.learning_rate, args.warmup_steps)
    assert schedule == (400, 32, 5e-4, 40)
    assert args.layer_decay == 0.75 and args.use_cpu and not args.fp16
    features = AsdaFeatureExtractor.from_preset(data_args.feature_preset, max_length=data_args.target_length)
    assert (features.max_length, features.mean, features.std) == (128, -6.846, 5.565)


def test_command_line_overrides_the_preset(tmp_path):
    preset = str(PRESETS / "esc50.json")
    _, _, args = finetuning.parse_arguments([preset, "--max_steps", "10", "--output_dir", "unused"])
    assert args.max_steps == 10 and args.spec_augment_ratio == 0.4
    (tmp_path / "typo.json").write_text(json.dumps({"mixup_alpah": 0.5}))
    with pytest.raises(ValueError, match="mixup_alpah"):
        finetuning.parse_arguments([str(tmp_path / "typo.json"), "--output_dir", "unused"])


# ---------------------------------------------------------------------------------------------------------------------
# Manifest helpers
# ---------------------------------------------------------------------------------------------------------------------


def test_esc50_fold_manifests_and_summary(tmp_path):
    root = tmp_path / "ESC-50-master"
    (root / "meta").mkdir(parents=True)
    rows = [(f"{fold}-{clip}.wav", fold, ["dog", "rain"][clip % 2]) for fold in range(1, 6) for clip in range(2)]
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        csv.writer(handle).writerows(
            [("filename", "fold", "target", "category"), *[(f, fold, 0, c) for f, fold, c in rows]]
        )
    manifests = prepare_manifests.esc50_manifests(root, tmp_path / "manifests")
    for fold, (train, evaluation) in manifests.items():
        train_rows = list(csv.DictReader(open(train)))
        eval_rows = list(csv.DictReader(open(evaluation)))
        assert len(train_rows) == 8 and len(eval_rows) == 2
        assert all(Path(row["audio"]).name.startswith(f"{fold}-") for row in eval_rows)
        assert not any(Path(row["audio"]).name.startswith(f"{fold}-") for row in train_rows)
    for fold, accuracy in zip(range(1, 6), [0.9, 0.95, 1.0, 0.85, 0.8]):
        (tmp_path / f"fold{fold}").mkdir()
        (tmp_path / f"fold{fold}" / "eval_results.json").write_text(json.dumps({"eval_accuracy": accuracy}))
    summary = run_esc50_folds.summarize(tmp_path)
    assert summary["mean_accuracy"] == pytest.approx(0.9)
    assert summary["std_accuracy"] == pytest.approx(np.std([0.9, 0.95, 1.0, 0.85, 0.8], ddof=1))
    command = run_esc50_folds.fold_command(["python"], Path("t.csv"), Path("e.csv"), Path("fold1"), ["--seed", "3"])
    assert command[2] == str(PRESETS / "esc50.json") and command[-2:] == ["--seed", "3"]


@pytest.mark.slow
def test_esc50_runner_end_to_end(two_class_data, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the fold runs are subprocesses
    root = tmp_path / "ESC-50-master"
    (root / "audio").mkdir(parents=True)
    clips = list(csv.DictReader(open(two_class_data / "train.csv")))
    rows = []
    for index, clip in enumerate(clips):
        name = f"{index % 5 + 1}-{index}.wav"
        (root / "audio" / name).write_bytes((two_class_data / clip["audio"]).read_bytes())
        rows.append((name, index % 5 + 1, 0, clip["label"]))
    (root / "meta").mkdir()
    with open(root / "meta" / "esc50.csv", "w", newline="") as handle:
        csv.writer(handle).writerows([("filename", "fold", "target", "category"), *rows])
    output_dir = tmp_path / "out"
    argv = ["--esc50_dir", str(root), "--output_dir", str(output_dir), "--folds", "1", "2", "--"]
    extra = ["--config_name", str(two_class_data / "tiny.json"), "--target_length", "128", "--max_steps", "2",
             "--per_device_train_batch_size", "4", "--fp16", "false", *CPU_FLAGS]  # fmt: skip
    summary = run_esc50_folds.main(argv + extra)
    accuracies = [
        json.loads((output_dir / f"fold{fold}" / "eval_results.json").read_text())["eval_accuracy"] for fold in (1, 2)
    ]
    assert summary["mean_accuracy"] == pytest.approx(np.mean(accuracies))
    assert json.loads((output_dir / "esc50_5fold_results.json").read_text()) == json.loads(json.dumps(summary))
    run_esc50_folds.main(argv + extra)
    assert capsys.readouterr().out.count("done already, skipped") == 2


def test_speech_commands_manifests(tmp_path):
    root = tmp_path / "speech_commands_v0.02"
    for relative in ("yes/a.wav", "yes/b.wav", "no/c.wav", "no/d.wav", "_background_noise_/noise.wav"):
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_bytes(b"")
    (root / "validation_list.txt").write_text("yes/b.wav\n")
    (root / "testing_list.txt").write_text("no/d.wav\n")
    manifests = prepare_manifests.speech_commands_manifests(root, tmp_path / "out")
    read = {
        split: [(Path(row["audio"]).name, row["label"]) for row in csv.DictReader(open(path))]
        for split, path in manifests.items()
    }
    assert read == {
        "train": [("c.wav", "no"), ("a.wav", "yes")],
        "validation": [("b.wav", "yes")],
        "test": [("d.wav", "no")],
    }


def test_audioset_manifest_from_the_official_fairseq_pair(tmp_path):
    (tmp_path / "eval.tsv").write_text("/data/audioset/eval\nYaa.wav\t320000\nYbb.wav\t299952\n")
    (tmp_path / "eval.lbl").write_text("Yaa\t/m/09x0r,/m/04rlf\nYbb\t/m/07pn_8q\n")
    path = prepare_manifests.audioset_manifest(tmp_path / "eval.tsv", tmp_path / "eval.lbl", tmp_path / "eval.csv")
    assert list(csv.DictReader(open(path))) == [
        {"audio": "/data/audioset/eval/Yaa.wav", "label": "/m/09x0r,/m/04rlf"},
        {"audio": "/data/audioset/eval/Ybb.wav", "label": "/m/07pn_8q"},
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Distributed: two CPU processes (gloo) must train exactly like one process on the same global batches
# ---------------------------------------------------------------------------------------------------------------------


def logged_history(output_dir: Path) -> tuple[list, list]:
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    steps = [(entry["step"], entry["loss"], entry["grad_norm"]) for entry in history if "loss" in entry]
    evaluations = [(entry["step"], entry["eval_loss"], entry["eval_mAP"]) for entry in history if "eval_mAP" in entry]
    return steps, evaluations


@pytest.mark.slow
def test_two_process_training_equals_single_process(tmp_path):
    data = tone_dataset(tmp_path / "data", ["low", "mid", "high"], {"train": 16, "eval": 8}, True, seed=1)
    # No randomness but the shared initialisation: augmentations and drop-path off, batches in file order. The
    # multi-label loss is divided by the number of positive targets of the *global* batch (the official AudioSet
    # normalisation), so an error in how the divisor is counted over processes or accumulation steps shows here.
    common = [
        "--max_steps", "4", "--logging_steps", "1", "--eval_strategy", "steps", "--eval_steps", "2",
        "--save_strategy", "no", "--load_best_model_at_end", "false", "--train_sampling_strategy", "sequential",
        "--roll_augment", "false", "--mixup_alpha", "0", "--spec_augment_ratio", "0", "--drop_path_rate", "0",
        "--learning_rate", "1e-3", "--warmup_steps", "1", "--multilabel_loss_normalization", "positives", "--seed", "0",
    ]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    script = str(REPO / "examples" / "run_finetune.py")
    runs = {
        "single process, batch 8": [sys.executable, script],
        "single process, batch 4 x 2 accumulation": [sys.executable, script],
        "accelerate launch (ddp.yaml), 2 x 4": [
            sys.executable, "-m", "accelerate.commands.launch", "--config_file",
            str(REPO / "configuration" / "accelerate" / "ddp.yaml"), "--num_processes", "2", script,
        ],
        "torchrun, 2 x 4": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", script],
    }  # fmt: skip
    # Global batches of 8 clips for training and evaluation alike: an eval loss divided by the positives of each global
    # eval batch depends on how many clips that batch holds.
    batch_flags = {
        "single process, batch 8": ["--per_device_train_batch_size", "8", "--per_device_eval_batch_size", "8"],
        "single process, batch 4 x 2 accumulation": [
            "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2", "--per_device_eval_batch_size", "8",
        ],
    }  # fmt: skip
    two_processes = ["--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"]
    histories = {}
    for name, command in runs.items():
        output_dir = tmp_path / name.replace(" ", "_").replace(",", "")
        flags = finetune_flags(data, output_dir, *common, *batch_flags.get(name, two_processes))
        subprocess.run([*command, *flags], cwd=REPO, env=environment, check=True, capture_output=True)
        histories[name] = logged_history(output_dir)
    reference_steps, reference_evaluations = histories["single process, batch 8"]
    assert [step for step, _, _ in reference_steps] == [1, 2, 3, 4] and len(reference_evaluations) == 2
    for name, (steps, evaluations) in histories.items():
        np.testing.assert_allclose(np.array(steps), np.array(reference_steps), rtol=1e-5, err_msg=name)
        np.testing.assert_allclose(np.array(evaluations), np.array(reference_evaluations), rtol=1e-5, err_msg=name)
