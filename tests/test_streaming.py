"""Audio shards: `asda-pack` (shard sizes, labels, events, the index and its checks), streaming split across processes
with uneven shards, pre-training and fine-tuning from streamed shards, and resumption at the same data position
(one process here; two processes killed and resumed in the slow test)."""

import csv
import hashlib
import io
import json
import os
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
from torchdata.stateful_dataloader import StatefulDataLoader

from conftest import import_example
from modeling_asda.data.labels import LabelVocabulary
from modeling_asda.data.shards import EndlessStream, load_shards, pack_shards, read_index, stream_shards
from modeling_asda.data.shards import main as pack_main
from modeling_asda.training import finetuning, pretraining
from modeling_asda.training.pretraining import AsdaPretrainingTrainer, SpectrogramTransform


REPO = Path(__file__).resolve().parents[1]
write_tone_dataset = import_example("make_tone_dataset").write_tone_dataset

TINY_PRETRAINING = (
    "hidden_size=32,num_hidden_layers=2,num_attention_heads=4,intermediate_size=112,"
    "decoder_hidden_size=32,decoder_num_layers=2,clone_batch=4"
)


def names_and_lengths(example_batch) -> dict:
    """A batch transform that keeps what identifies a clip: its file name and length."""
    return {"name": [audio["path"] for audio in example_batch["audio"]], "num_samples": example_batch["num_samples"]}


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    """Three-class multi-label tone clips (every third holds two tones) with csv manifests, and a DCASE events file."""
    root = write_tone_dataset(tmp_path_factory.mktemp("tones"), ["low", "mid", "high"], {"train": 10, "eval": 4}, True)
    with open(root / "events.tsv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t")
        writer.writerows([("filename", "onset", "offset", "event_label"), ("audio/train/0.wav", "0.1", "0.5", "low"),
                          ("audio/train/0.wav", "0.2", "0.9", "mid"), ("audio/train/4.wav", "", "", "")])  # fmt: skip
    return root


@pytest.fixture(scope="module")
def unlabelled(tmp_path_factory):
    """Twelve clips of 1.2-2 s at 16 and 22.05 kHz, packed into shards of 5, 5 and 2 clips (uneven)."""
    folder = tmp_path_factory.mktemp("unlabelled")
    rng = np.random.default_rng(0)
    for index in range(12):
        rate = 16000 if index % 3 else 22050
        time = np.arange(int(rate * rng.uniform(1.2, 2.0))) / rate
        tone = 0.2 * np.sin(2 * np.pi * (150 + 40 * index) * time) + 0.02 * rng.standard_normal(len(time))
        soundfile.write(folder / f"clip{index:02d}.wav", tone, rate)
    shards = folder.parent / f"{folder.name}-shards"
    pack_main(["--audio_dir", str(folder), "--unlabelled", "--output_dir", str(shards), "--clips_per_shard", "5"])
    return folder, shards


def test_pack_writes_fixed_size_shards_labels_events_and_a_checkable_index(tones, tmp_path):
    output = tmp_path / "shards"
    index = pack_main(["--manifest", str(tones / "train.csv"), "--events_file", str(tones / "events.tsv"),
                       "--output_dir", str(output), "--clips_per_shard", "4", "--seed", "3"])  # fmt: skip
    with open(tones / "train.csv", newline="") as handle:
        rows = {Path(row["audio"]).name: row["label"].split(",") for row in csv.DictReader(handle)}
    assert [shard["num_clips"] for shard in index["shards"]] == [4, 4, 2]
    assert index["num_clips"] == 10 and index["multi_label"] is True
    assert index["labels"] == dict(Counter(name for labels in rows.values() for name in labels))
    assert sorted(path.name for path in output.iterdir()) == sorted(
        ["index.json"] + [f"train-0000{shard}-of-00003.parquet" for shard in range(3)]
    )
    assert json.loads((output / "index.json").read_text()) == index

    # Every clip once, shuffled, as its original file bytes, with its labels, header facts and events.
    packed = load_shards(output)
    names = [audio["path"] for audio in packed["audio"]]
    assert sorted(names) == sorted(rows) and names != sorted(rows, key=lambda name: int(name.split(".")[0]))
    for shard in index["shards"]:
        clips = datasets.Dataset.from_parquet(str(output / shard["file"]))
        assert dict(Counter(name for labels in clips["label"] for name in labels)) == shard["labels"]
    for example in packed:
        name = example["audio"]["path"]
        assert example["audio"]["bytes"] == (tones / "audio" / "train" / name).read_bytes()
        assert sorted(example["label"]) == sorted(rows[name])
        info = soundfile.info(io.BytesIO(example["audio"]["bytes"]))
        assert (example["num_samples"], example["sampling_rate"]) == (info.frames, info.samplerate) == (16000, 16000)
        expected_events = {"0.wav": [("low", 0.1, 0.5), ("mid", 0.2, 0.9)]}.get(name, [])
        assert [event["event_label"] for event in example["events"]] == [event[0] for event in expected_events]
        times = [value for event in example["events"] for value in (event["onset"], event["offset"])]
        assert times == pytest.approx([value for event in expected_events for value in event[1:]])

    # The index checks the files: sizes always, contents (sha256) on request; nothing is overwritten.
    assert pack_main(["--check", str(output)])["num_clips"] == 10
    shard = output / index["shards"][2]["file"]
    assert hashlib.sha256(shard.read_bytes()).hexdigest() == index["shards"][2]["sha256"]
    shard.write_bytes(shard.read_bytes().replace(b"mid", b"MID"))
    read_index(output)
    with pytest.raises(ValueError, match="sha256"):
        read_index(output, verify=True)
    with pytest.raises(FileExistsError, match="never overwritten"):
        pack_main(["--manifest", str(tones / "train.csv"), "--output_dir", str(output)])
    (output / index["shards"][0]["file"]).unlink()
    with pytest.raises(FileNotFoundError, match="missing"):
        read_index(output)

    # A clip that is not audio stops the packing with its name, and leaves no folder behind.
    (tmp_path / "notes.wav").write_text("not audio")
    (tmp_path / "bad.csv").write_text("audio,label\nnotes.wav,low\n")
    with pytest.raises(ValueError, match="Cannot read clip notes.wav as audio"):
        pack_main(["--manifest", str(tmp_path / "bad.csv"), "--output_dir", str(tmp_path / "bad-shards")])
    assert not [path for path in tmp_path.iterdir() if "bad-shards" in path.name]


def test_pack_a_datasets_dataset_with_audio_and_class_label_columns(tones, tmp_path):
    """A `datasets` dataset (Audio feature, ClassLabel ids) packs like a manifest: class names, the files' bytes."""
    paths = [str(tones / "audio" / "eval" / f"{index}.wav") for index in range(4)]
    dataset = datasets.Dataset.from_dict({"audio": paths, "label": [0, 1, 1, 0]})
    dataset = dataset.cast_column("audio", datasets.Audio()).cast_column("label", datasets.ClassLabel(names=["a", "b"]))
    index = pack_shards(dataset, tmp_path / "shards", clips_per_shard=3, label_column="label", shuffle=False)
    assert [shard["num_clips"] for shard in index["shards"]] == [3, 1] and index["multi_label"] is False
    assert index["labels"] == {"a": 2, "b": 2} and index["shards"][1]["labels"] == {"a": 1}
    packed = load_shards(tmp_path / "shards")
    assert packed["label"] == ["a", "b", "b", "a"]
    assert [audio["bytes"] for audio in packed["audio"]] == [Path(path).read_bytes() for path in paths]


def test_uneven_shards_split_across_processes_stream_without_end(unlabelled):
    """5 + 5 + 2 clips over two processes: each reads whole shards of its own, the first passes together hold every
    clip once, and both streams keep going (a process with fewer clips starts its next pass, reshuffled)."""
    folder, shards = unlabelled
    clips = [f"clip{index:02d}.wav" for index in range(12)]
    first_passes, streams = [], []
    for rank in range(2):
        dataset = stream_shards(shards, rank=rank, world_size=2, seed=0, shuffle_buffer_size=1)
        first_passes.append([example["audio"]["path"] for example in dataset])
        streams.append([clip["name"] for clip in islice(EndlessStream(dataset, names_and_lengths), 60)])
    assert sorted(first_passes[0] + first_passes[1]) == clips
    assert {len(names) for names in first_passes} in ({5, 7}, {10, 2})
    for names, stream in zip(first_passes, streams):
        assert len(stream) == 60 and stream[: len(names)] == names and set(stream) <= set(clips)
        later_passes = [stream[start : start + len(names)] for start in range(len(names), 60 - len(names), len(names))]
        assert any(later != names for later in later_passes)  # every pass is shuffled anew

    # More processes than shards: one clip in `world_size` each, every clip once.
    split = [[example["audio"]["path"] for example in stream_shards(shards, rank, 5)] for rank in range(5)]
    assert sorted(sum(split, [])) == clips and max(map(len, split)) - min(map(len, split)) <= 1

    # Short clips are dropped by the stored length, without decoding.
    lengths = {path.name: soundfile.info(path).frames for path in folder.iterdir()}
    kept = {example["audio"]["path"] for example in stream_shards(shards, min_samples=28_000)}
    assert kept == {name for name, length in lengths.items() if length >= 28_000} and 0 < len(kept) < 12
    with pytest.raises(ValueError, match="at least 1"):
        stream_shards(shards, shuffle_buffer_size=0)


# With 2 workers the resumed loader restarts one worker's pass in some runs (docs/scaling.md, known issue): the
# parametrisation stays at one reader until that race is fixed.
@pytest.mark.parametrize("num_workers", [0])
def test_data_loader_state_resumes_the_stream(unlabelled, num_workers):
    """StatefulDataLoader over the endless stream, saved after 7 batches of 2 (past the end of the first pass of 12
    clips) and loaded into a new loader: the next 8 batches are the ones the first loader yields."""
    _, shards = unlabelled

    def loader():
        stream = EndlessStream(stream_shards(shards, seed=1, shuffle_buffer_size=1), names_and_lengths)
        return StatefulDataLoader(stream, batch_size=2, num_workers=num_workers, collate_fn=lambda batch: batch)

    first = loader()
    batches = iter(first)
    consumed = [next(batches) for _ in range(7)]
    state = first.state_dict()
    expected = [next(batches) for _ in range(8)]
    resumed = loader()
    resumed.load_state_dict(state)
    assert list(islice(resumed, 8)) == expected
    assert expected != consumed[:8]
    if num_workers == 0:  # one reader: 14 clips cover the first pass of all 12
        assert {clip["name"] for batch in consumed for clip in batch} == {f"clip{index:02d}.wav" for index in range(12)}


def pretraining_arguments(shards, output_dir, *extra):
    return [
        str(REPO / "configuration/pretraining/asda-tiny-smoke.json"),
        "--config_overrides", TINY_PRETRAINING,
        "--train_shards", str(shards), "--shuffle_buffer_size", "1",
        "--output_dir", str(output_dir), "--target_length", "128", "--logging_steps", "1",
        "--per_device_train_batch_size", "3", "--warmup_steps", "2", "--max_steps", "6", "--save_steps", "3",
        *extra,
    ]  # fmt: skip


def logged(output_dir) -> dict[int, dict]:
    state = json.loads((Path(output_dir) / "trainer_state.json").read_text())
    return {entry["step"]: entry for entry in state["log_history"] if "loss" in entry}


def test_streamed_pretraining_resumes_at_the_same_data_position(unlabelled, tmp_path, monkeypatch):
    """Killed in update 5 of 6 and resumed from the step-3 checkpoint (batches of 3 from 12 clips: 9 clips into the
    first pass, the resumed steps cross into the second): the resumed losses equal the uninterrupted run's, and the
    resumed run computed the spectrograms of its own 9 clips only (Trainer's replay of the consumed batches would
    have read 18). Restarting the stream instead (--ignore_data_skip) changes the losses."""
    _, shards = unlabelled
    pretraining.run(*pretraining.parse_arguments(pretraining_arguments(shards, tmp_path / "straight")))
    straight = logged(tmp_path / "straight")
    assert sorted(straight) == list(range(1, 7))

    training_step = AsdaPretrainingTrainer.training_step

    def killed_at_step_5(trainer, *args, **kwargs):
        if trainer.state.global_step == 4:
            raise KeyboardInterrupt("simulated kill")
        return training_step(trainer, *args, **kwargs)

    monkeypatch.setattr(AsdaPretrainingTrainer, "training_step", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        pretraining.run(*pretraining.parse_arguments(pretraining_arguments(shards, tmp_path / "killed")))
    monkeypatch.setattr(AsdaPretrainingTrainer, "training_step", training_step)
    checkpoint = tmp_path / "killed" / "checkpoint-3"
    assert (checkpoint / "data_state_0.pt").is_file() and not (tmp_path / "killed" / "checkpoint-6").exists()

    transformed, transform = [], SpectrogramTransform.__call__

    def counted_transform(self, batch):
        transformed.append(len(batch["audio"]))
        return transform(self, batch)

    monkeypatch.setattr(SpectrogramTransform, "__call__", counted_transform)
    for output, extra in (("killed", []), ("restarted", ["--ignore_data_skip", "true"])):
        if output == "restarted":
            (tmp_path / "restarted").mkdir()
            os.symlink(checkpoint, tmp_path / "restarted" / "checkpoint-3")
        resume = ["--resume_from_checkpoint", str(tmp_path / output / "checkpoint-3")]
        pretraining.run(*pretraining.parse_arguments(pretraining_arguments(shards, tmp_path / output, *resume, *extra)))
        if output == "killed":
            assert sum(transformed) == 3 * 3
    resumed, restarted = logged(tmp_path / "killed"), logged(tmp_path / "restarted")
    for step in range(4, 7):
        for term in ("loss", "frame_loss", "utterance_loss"):
            assert resumed[step][term] == pytest.approx(straight[step][term], abs=1e-6, rel=0), (step, term)
        assert resumed[step]["epoch"] == pytest.approx(step / 6)
    assert max(abs(restarted[step]["loss"] - straight[step]["loss"]) for step in range(4, 7)) > 1e-3


def test_streamed_finetuning_from_packed_shards(tones, tmp_path):
    """Pack -> stream -> fine-tune (multi-label, labels read from the index), evaluated on packed eval shards; the
    stream refuses class-balanced sampling, which the map-style reading of the same shards keeps."""
    shards = {}
    for split in ("train", "eval"):
        shards[split] = tmp_path / f"{split}-shards"
        pack_main(["--manifest", str(tones / f"{split}.csv"), "--output_dir", str(shards[split]),
                   "--clips_per_shard", "3", "--split", split])  # fmt: skip
    (tmp_path / "tiny.json").write_text(json.dumps({"model_type": "asda", "hidden_size": 32, "num_hidden_layers": 2,
                                                    "num_attention_heads": 2, "intermediate_size": 64}))  # fmt: skip
    flags = [
        str(REPO / "configuration/finetuning/as20k.json"), "--config_name", str(tmp_path / "tiny.json"),
        "--train_shards", str(shards["train"]), "--eval_shards", str(shards["eval"]), "--target_length", "128",
        "--per_device_train_batch_size", "4", "--max_steps", "5", "--warmup_steps", "1", "--eval_strategy", "no",
        "--save_strategy", "no", "--load_best_model_at_end", "false", "--logging_steps", "1", "--use_cpu",
        "--report_to", "none", "--dataloader_num_workers", "0", "--do_train", "--output_dir",
    ]  # fmt: skip
    result = finetuning.run(*finetuning.parse_arguments([*flags, str(tmp_path / "run")]))
    assert result.trainer.state.global_step == 5
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["id2label"] == {"0": "high", "1": "low", "2": "mid"}
    assert config["problem_type"] == "multi_label_classification"
    assert result.metrics["eval_mAP"] > 0 and np.isfinite(result.metrics["eval_loss"])
    vocabulary = LabelVocabulary.from_values(["high", "low", "mid"], multi_label=True)
    assert vocabulary.names == [config["id2label"][str(index)] for index in range(3)]

    with pytest.raises(ValueError, match="--streaming false"):
        finetuning.run(*finetuning.parse_arguments([*flags, str(tmp_path / "balanced"), "--balanced_sampling", "true"]))
    map_style = finetuning.run(*finetuning.parse_arguments(
        [*flags, str(tmp_path / "balanced"), "--balanced_sampling", "true", "--balanced_samples_per_epoch", "8",
         "--streaming", "false"]))  # fmt: skip
    assert len(map_style.trainer.train_dataset) == 10 and map_style.trainer.state.global_step == 5


@pytest.mark.slow
def test_two_process_run_killed_and_resumed_equals_an_uninterrupted_one(unlabelled, tmp_path):
    """Two CPU processes on uneven shards (5, 5 and 2 clips): an uninterrupted run; the same run SIGKILLed in update 5;
    its resumption from the step-3 checkpoint. Both finish all 6 updates on both processes (no hang at the end of
    a process's shards: with 18 clips each, both pass their 5 to 10 clips at least once) and the resumed losses
    (averaged over both processes) equal the uninterrupted ones."""
    _, shards = unlabelled
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "KILL_AFTER_STEP": "4"}

    def launch(script, output, *extra):
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script),
                   *pretraining_arguments(shards, tmp_path / output, "--use_cpu", "true", *extra)]  # fmt: skip
        return subprocess.run(command, capture_output=True, text=True, env=environment, timeout=600)

    straight = launch(REPO / "examples/run_pretrain.py", "straight")
    assert straight.returncode == 0, straight.stderr[-4000:]
    killed = launch(Path(__file__).with_name("stream_kill_worker.py"), "killed")
    assert killed.returncode != 0 and not (tmp_path / "killed" / "checkpoint-6").exists()
    checkpoint = tmp_path / "killed" / "checkpoint-3"
    assert sorted(path.name for path in checkpoint.glob("data_state_*.pt")) == ["data_state_0.pt", "data_state_1.pt"]
    resumed = launch(REPO / "examples/run_pretrain.py", "killed", "--resume_from_checkpoint", str(checkpoint))
    assert resumed.returncode == 0, resumed.stderr[-4000:]

    straight_logs, resumed_logs = logged(tmp_path / "straight"), logged(tmp_path / "killed")
    assert sorted(straight_logs) == sorted(resumed_logs) == list(range(1, 7))
    for step in range(4, 7):
        for term in ("loss", "frame_loss", "utterance_loss"):
            assert resumed_logs[step][term] == pytest.approx(straight_logs[step][term], abs=1e-6, rel=0), (step, term)
