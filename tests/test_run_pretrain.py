"""examples/run_pretrain.py: a smoke run, an interrupted run resumed exactly, two-process DDP on CPU, and the
small-data path (presets merged with --config_overrides, the EMA schedule tied to the run, short clips reported)."""

import copy
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file

from modeling_asda import AsdaFeatureExtractor, AsdaForPreTraining, AsdaModel, inverse_block_mask
from modeling_asda.training import pretraining
from modeling_asda.training.pretraining import AsdaPretrainingTrainer


REPO_ROOT = Path(__file__).resolve().parents[1]


def pretrain(argv: list[str]):
    """What `examples/run_pretrain.py ARGV` runs."""
    return pretraining.run(*pretraining.parse_arguments(argv))


TINY_MODEL = (
    "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=112,"
    "decoder_hidden_size=32,decoder_num_layers=2,clone_batch=4"
)


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory):
    """Twelve short clips of harmonic tones in noise, at two sampling rates (the script resamples)."""
    folder = tmp_path_factory.mktemp("unlabelled")
    rng = np.random.default_rng(0)
    for index in range(12):
        rate = 16000 if index % 3 else 22050
        time = np.arange(int(rate * rng.uniform(1.2, 2.0))) / rate
        tone = sum(np.sin(2 * np.pi * (150 + 40 * index) * harmonic * time) / harmonic for harmonic in (1, 2, 3))
        soundfile.write(folder / f"clip{index:02d}.wav", 0.2 * tone + 0.02 * rng.standard_normal(len(time)), rate)
    return folder


PRESETS = REPO_ROOT / "configuration/pretraining"


def arguments(audio_dir, output_dir, *extra):
    return [
        str(REPO_ROOT / "configuration/pretraining/asda-tiny-smoke.json"),
        "--config_name", str(REPO_ROOT / "configuration/models/asda-tiny.json"),
        "--config_overrides", TINY_MODEL,
        "--train_dir", str(audio_dir),
        "--output_dir", str(output_dir),
        "--target_length", "128",
        "--logging_steps", "1",
        "--dataloader_num_workers", "0",
        *extra,
    ]  # fmt: skip


def logged_losses(output_dir) -> dict[int, dict]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return {entry["step"]: entry for entry in state["log_history"] if "loss" in entry}


@pytest.mark.parametrize("preset", ["asda-base-audioset", "eat-base-audioset"])
def test_gpu_presets_hold_the_official_optimisation(preset):
    """Spec 3.6: AdamW (0.9, 0.95), eps 1e-8, wd 0.05, peak lr 5e-4, clip 4.0, 12 clips per GPU, fp16; ASDA trains
    800k updates with 106,666 warm-up, EAT 400k with 53,333."""
    values = json.loads((REPO_ROOT / "configuration/pretraining" / f"{preset}.json").read_text())
    steps, warmup = (800_000, 106_666) if preset.startswith("asda") else (400_000, 53_333)
    expected = {"learning_rate": 5e-4, "adam_beta1": 0.9, "adam_beta2": 0.95, "adam_epsilon": 1e-8,
                "weight_decay": 0.05, "max_grad_norm": 4.0, "per_device_train_batch_size": 12, "fp16": True,
                "max_steps": steps, "warmup_steps": warmup, "lr_scheduler_type": "cosine", "target_length": 1024}  # fmt: skip
    assert {key: values.get(key) for key in expected} == expected
    assert not values.get("bf16", False)


def test_pretraining_run_logs_every_term_and_saves_the_student(audio_dir, tmp_path):
    output_dir = tmp_path / "run"
    model = pretrain(arguments(audio_dir, output_dir, "--max_steps", "24", "--warmup_steps", "2")).trainer.model
    logs = logged_losses(output_dir)
    assert sorted(logs) == list(range(1, 25))
    for entry in logs.values():
        assert {"loss", "frame_loss", "utterance_loss", "ema_decay", "learning_rate", "grad_norm"} <= set(entry)
        assert entry["loss"] == pytest.approx(entry["frame_loss"] + entry["utterance_loss"], rel=1e-5)
    assert logs[24]["ema_decay"] == pytest.approx(model.ema_decay(24))
    first, last = (np.mean([logs[step]["loss"] for step in steps]) for steps in (range(1, 5), range(21, 25)))
    assert last < first

    # The folder is the student encoder, with its feature extractor and a model card.
    encoder = AsdaModel.from_pretrained(output_dir)
    torch.testing.assert_close(encoder.state_dict(), model.asda.state_dict())
    assert json.loads((output_dir / "preprocessor_config.json").read_text())["max_length"] == 128
    assert "trust_remote_code" in (output_dir / "README.md").read_text()
    # The checkpoints keep everything needed to resume: student, teacher and decoder.
    checkpoint = load_file(output_dir / "checkpoint-24" / "model.safetensors")
    assert any(key.startswith("teacher.") for key in checkpoint) and any(key.startswith("decoder.") for key in checkpoint)


def test_weight_decay_applies_to_every_parameter_unless_exempted(audio_dir, tmp_path):
    model = pretraining.build_model(pretraining.ModelArguments(
        config_name=str(REPO_ROOT / "configuration/models/asda-tiny.json"), config_overrides=TINY_MODEL))
    names = [name for name, _ in model.named_parameters()]
    for exempt, expected in [(False, set(names)), (True, {n for n, p in model.named_parameters() if p.ndim > 1})]:
        args = pretraining.AsdaPretrainingArguments(output_dir=str(tmp_path), exempt_biases_and_1d_from_weight_decay=exempt)
        trainer = AsdaPretrainingTrainer(model=model, args=args)
        assert set(trainer.get_decay_parameter_names(model)) == expected


def test_interrupted_run_resumes_exactly(audio_dir, tmp_path, monkeypatch):
    steps = ["--max_steps", "8", "--save_steps", "4", "--warmup_steps", "2"]
    pretrain(arguments(audio_dir, tmp_path / "straight", *steps))

    # Kill the second run during step 6, after its step-4 checkpoint was written.
    training_step = AsdaPretrainingTrainer.training_step

    def killed_at_step_6(trainer, *args, **kwargs):
        if trainer.state.global_step == 5:
            raise KeyboardInterrupt("simulated kill")
        return training_step(trainer, *args, **kwargs)

    monkeypatch.setattr(AsdaPretrainingTrainer, "training_step", killed_at_step_6)
    with pytest.raises(KeyboardInterrupt):
        pretrain(arguments(audio_dir, tmp_path / "interrupted", *steps))
    monkeypatch.setattr(AsdaPretrainingTrainer, "training_step", training_step)
    checkpoint = tmp_path / "interrupted" / "checkpoint-4"
    resumed = pretrain(
        arguments(audio_dir, tmp_path / "interrupted", *steps, "--resume_from_checkpoint", str(checkpoint))
    )

    straight, after_resume = logged_losses(tmp_path / "straight"), logged_losses(tmp_path / "interrupted")
    for step in range(5, 9):
        for term in ("loss", "frame_loss", "utterance_loss"):
            assert after_resume[step][term] == pytest.approx(straight[step][term], abs=1e-6, rel=0), (step, term)
    final = load_file(tmp_path / "straight" / "checkpoint-8" / "model.safetensors")
    torch.testing.assert_close(resumed.trainer.model.state_dict(), final, atol=1e-6, rtol=0)


@pytest.mark.slow
def test_two_process_ddp_on_cpu(audio_dir, tmp_path):
    output_dir = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(REPO_ROOT / "examples/run_pretrain.py"),
        *arguments(audio_dir, output_dir, "--max_steps", "20", "--warmup_steps", "2", "--use_cpu", "True",
                   "--per_device_train_batch_size", "2"),
    ]  # fmt: skip
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    logs = logged_losses(output_dir)
    # 12 clips in batches of 2 per process: 3 steps per epoch with two processes (6 with one).
    assert logs[3]["epoch"] == pytest.approx(1.0)
    first, last = (np.mean([logs[step]["loss"] for step in steps]) for steps in (range(1, 5), range(17, 21)))
    assert last < first
    AsdaModel.from_pretrained(output_dir)


# ---------------------------------------------------------------------------------------------------------------------
# Small data on a CPU
# ---------------------------------------------------------------------------------------------------------------------


def test_config_overrides_on_the_command_line_add_to_the_preset(tmp_path):
    preset = tmp_path / "preset.json"
    preset.write_text(json.dumps({"config_name": str(REPO_ROOT / "configuration/models/asda-tiny.json"),
                                  "config_overrides": "clone_batch=4,hidden_size=64", "max_steps": 5}))  # fmt: skip
    model_args, _, training_args = pretraining.parse_arguments([
        str(preset), "--config_overrides", "hidden_size=32,num_hidden_layers=2", "--max_steps", "7",
        "--config_overrides=num_attention_heads=4", "--output_dir", "unused",
    ])  # fmt: skip
    # Fields add up, the later value wins for the same field; other options keep "last wins".
    assert model_args.config_overrides == "clone_batch=4,hidden_size=32,num_hidden_layers=2,num_attention_heads=4"
    assert training_args.max_steps == 7
    config = pretraining.build_config(model_args)
    sizes = (config.clone_batch, config.hidden_size, config.num_hidden_layers, config.num_attention_heads)
    assert sizes == (4, 32, 2, 4)
    with pytest.raises(SystemExit):  # argparse's usage error, not a traceback from update_from_string
        pretraining.parse_arguments([str(preset), "--config_overrides", "clone_batch", "--output_dir", "unused"])


def test_ema_schedule_tied_to_the_run_length(audio_dir, tmp_path, monkeypatch):
    """With --ema_anneal_to_max_steps the teacher's decay runs from ema_decay to ema_end_decay over this run: the EMA
    callback's updates 1..6 use exactly the linear schedule, the last one ema_end_decay."""
    used = {}
    update_teacher, lerp = AsdaForPreTraining.update_teacher, torch._foreach_lerp_

    def recording_update(model, step):
        weights = []
        with monkeypatch.context() as patch:  # the weight the EMA update really applies: 1 - decay
            patch.setattr(torch, "_foreach_lerp_", lambda *args: weights.append(args[2]) or lerp(*args))
            update_teacher(model, step)
        used[step] = 1 - weights[0]

    monkeypatch.setattr(AsdaForPreTraining, "update_teacher", recording_update)
    output_dir = tmp_path / "run"
    model = pretrain(arguments(
        audio_dir, output_dir, "--config_overrides", "ema_decay=0.9,ema_end_decay=0.99", "--ema_anneal_to_max_steps",
        "true", "--max_steps", "6", "--warmup_steps", "1", "--save_strategy", "no",
    )).trainer.model  # fmt: skip
    assert sorted(used) == list(range(1, 7))
    for step, decay in used.items():
        assert decay == pytest.approx(0.9 + 0.09 * step / 6, abs=1e-12), step
    assert used[6] == pytest.approx(0.99, abs=1e-12)
    assert model.ema_decay(0) == pytest.approx(0.9, abs=1e-12)
    assert model.config.hidden_size == 32  # the test model's overrides were kept (merged)
    assert json.loads((output_dir / "config.json").read_text())["ema_anneal_end_step"] == 6
    with pytest.raises(ValueError, match="--max_steps"):
        pretraining.parse_arguments(arguments(audio_dir, output_dir, "--ema_anneal_to_max_steps", "true",
                                               "--max_steps", "-1"))  # fmt: skip


def write_clips(folder: Path, count: int, rate: int, seconds: float, seed: int):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for index in range(count):
        soundfile.write(folder / f"{rate}hz_{index}.wav", 0.1 * rng.standard_normal(int(rate * seconds)), rate)


def test_short_clips_are_reported_and_an_all_short_dataset_is_an_error(tmp_path, caplog):
    """1-s clips at 8 kHz (8000 samples) are below the official 10,000-sample minimum: the script's logging must show
    that they were skipped, and refuse to train on nothing."""
    data = tmp_path / "clips"
    write_clips(data, 4, 16000, 1.0, seed=0)
    write_clips(data, 2, 8000, 1.0, seed=1)
    result = pretrain(arguments(data, tmp_path / "run", "--max_steps", "1", "--warmup_steps", "0",
                                "--save_strategy", "no"))  # fmt: skip
    assert len(result.trainer.train_dataset) == 4
    skipped = [record for record in caplog.records if "Skipped" in record.getMessage()]
    assert len(skipped) == 1 and skipped[0].levelno == logging.WARNING
    assert "Skipped 2 of 6 clips shorter than 10000 samples" in skipped[0].getMessage()
    assert "--min_length_samples" in skipped[0].getMessage()

    only_short = tmp_path / "short"
    write_clips(only_short, 3, 8000, 1.0, seed=2)
    with pytest.raises(ValueError, match="All 3 clips are shorter than 10000 samples.*--min_length_samples"):
        pretrain(arguments(only_short, tmp_path / "nothing", "--max_steps", "1"))


def test_small_data_cpu_preset():
    model_args, data_args, args = pretraining.parse_arguments(
        [str(PRESETS / "asda-small-data-cpu.json"), "--config_overrides", "attention_type=standard"]
    )
    config = pretraining.build_config(model_args)
    # asda-tiny (192 wide, 3 heads) with 4 blocks; the later override merged into the preset's.
    assert (config.hidden_size, config.num_attention_heads, config.num_hidden_layers) == (192, 3, 4)
    assert config.attention_type == "standard" and config.clone_batch == 16
    assert (config.utterance_loss_reduction, config.utterance_loss_weight) == ("mean", 0.5)
    assert (config.ema_decay, config.ema_end_decay, model_args.ema_anneal_to_max_steps) == (0.998, 0.9999, True)
    assert (args.max_steps, args.get_warmup_steps(args.max_steps), args.learning_rate) == (1600, 160, 5e-4)
    assert (args.per_device_train_batch_size, args.save_steps, args.dataloader_num_workers) == (12, 200, 0)
    assert args.use_cpu and args.lr_scheduler_type == "cosine"
    features = AsdaFeatureExtractor.from_preset(data_args.feature_preset, max_length=data_args.target_length)
    one_second = features(np.zeros(16000, np.float32), sampling_rate=16000, return_tensors="np")["input_values"]
    assert features.sampling_rate == 16000 and one_second.shape == (1, 128, 128)

    # "mean" at weight 0.5 is the weight the experiment used to compute by hand: 0.5 / (16 clones x 12 clips) on "sum".
    torch.manual_seed(0)
    model = AsdaForPreTraining(config)
    hand_weighted = copy.deepcopy(config)
    hand_weighted.utterance_loss_reduction = "sum"
    hand_weighted.utterance_loss_weight = 0.5 / (16 * 12)
    reference = AsdaForPreTraining(hand_weighted)
    reference.load_state_dict(model.state_dict())
    generator = torch.Generator().manual_seed(0)
    mask = inverse_block_mask(16 * 12, 8, 8, 0.8, 5, 0.07, generator=generator)
    inputs = {"input_values": torch.randn(12, 128, 128, generator=generator), "mask": mask,
              "decoder_noise": 0.01 * torch.randn(16 * 12, int(mask[0].sum()), 192, generator=generator)}  # fmt: skip
    with torch.no_grad():
        ours, theirs = model(**inputs), reference(**inputs)
    assert theirs.utterance_loss > 0.1 * theirs.frame_loss  # the term compared is not negligible
    torch.testing.assert_close(ours.utterance_loss, theirs.utterance_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(ours.loss, theirs.loss, rtol=1e-6, atol=0)
