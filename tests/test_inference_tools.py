"""The user-facing tools: `asda-extract-embeddings` (modeling_asda/embeddings.py), `asda-classify`
(modeling_asda/classify.py) and examples/attention_maps.py, on tiny random models and real or generated audio."""

import configparser
import csv
import importlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
import torch
from matplotlib.image import imread
from safetensors.numpy import load_file
from scipy.stats import entropy

from conftest import import_example
from modeling_asda import (
    AsdaConfig,
    AsdaFeatureExtractor,
    AsdaForAudioClassification,
    AsdaForPreTraining,
    AsdaModel,
    load_audio,
)
from modeling_asda.tools import classify, embeddings


REPO = Path(__file__).resolve().parents[1]
attention_maps = import_example("attention_maps")


# max_time_patches 64: the position table covers 1024 frames (10.24 s), so that "too long" clips are short to make.
TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
        "max_time_patches": 64}  # fmt: skip
SAMPLING_RATE = 16000
CPU = ["--device", "cpu", "--num_workers", "0"]


def tiny_folder(path: Path, model_class=AsdaModel, **config) -> Path:
    torch.manual_seed(0)
    model_class(AsdaConfig(**{**TINY, **config})).save_pretrained(path)
    AsdaFeatureExtractor().save_pretrained(path)
    return path


def write_noise(path: Path, seconds: float, sampling_rate: int = SAMPLING_RATE, channels: int = 1, seed: int = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    waveform = 0.1 * np.random.default_rng(seed).standard_normal((int(seconds * sampling_rate), channels))
    soundfile.write(path, waveform.astype(np.float32), sampling_rate)
    return path


@pytest.fixture(scope="module")
def encoder(tmp_path_factory) -> Path:
    return tiny_folder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture(scope="module")
def audio_dir(tmp_path_factory, shared_dir) -> Path:
    """Clips of different lengths, rates and channel counts, one in a sub-folder, plus a real 32 kHz AudioSet clip."""
    root = tmp_path_factory.mktemp("audio")
    write_noise(root / "short.wav", 0.5, seed=1)
    write_noise(root / "odd_length.flac", 1.37, sampling_rate=44100, seed=2)
    write_noise(root / "sub" / "stereo.wav", 2.3, channels=2, seed=3)
    (root / "real.wav").write_bytes((shared_dir / "data" / "audioset_clip_a_32k.wav").read_bytes())
    return root


def reference_hidden_state(model: AsdaModel, path: Path, layer: int, **padding) -> torch.Tensor:
    """The hidden state `AsdaModel` gives one clip on its own: `(tokens, hidden)`."""
    feature_extractor = AsdaFeatureExtractor()
    inputs = feature_extractor(load_audio(path), sampling_rate=SAMPLING_RATE, return_tensors="pt", **padding)
    with torch.no_grad():
        return model(inputs["input_values"], output_hidden_states=True).hidden_states[layer][0]


# ---------------------------------------------------------------------------------------------------------------------
# Embeddings
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "granularity, layer, output_format, tokens",
    [
        ("all", -1, "npy", slice(None)),
        ("frame", 1, "safetensors", slice(1, None)),
        ("utterance", 0, "npy", 0),
        ("patch_statistics", -1, "npy", "statistics"),
    ],
)
def test_embeddings_equal_the_model_run_on_each_file_alone(
    encoder, audio_dir, tmp_path, granularity, layer, output_format, tokens
):
    output_dir = tmp_path / "out"
    status = embeddings.main(
        [str(audio_dir), "--model", str(encoder), "--output_dir", str(output_dir), "--granularity", granularity,
         "--layer", str(layer), "--output_format", output_format, "--batch_size", "3", *CPU]
    )  # fmt: skip
    assert status == 0
    if output_format == "npy":
        stored = {key: np.load(output_dir / f"{key}.npy") for key in ("short", "odd_length", "sub/stereo", "real")}
    else:
        index = json.loads((output_dir / "index.json").read_text())["clips"]
        stored = {key: load_file(output_dir / entry["shard"])[key] for key, entry in index.items()}
        assert index["real"]["num_frames"] == 998 and index["real"]["seconds"] == 10.0
    assert sorted(stored) == ["odd_length", "real", "short", "sub/stereo"]

    model = AsdaModel.from_pretrained(encoder).eval()
    for key, embedding in stored.items():
        path = next(audio_dir.glob(f"{key}.*"))
        hidden_state = reference_hidden_state(model, path, layer, padding="longest").numpy()
        if tokens == "statistics":  # each frequency patch's mean, then std, over the clip's time patches
            grid = hidden_state[1:].reshape(-1, model.config.num_frequency_patches, model.config.hidden_size)
            expected = np.concatenate([grid.mean(0), grid.std(0)], axis=-1).reshape(-1)
        else:
            expected = hidden_state[tokens]
        assert embedding.shape == expected.shape, key
        np.testing.assert_allclose(embedding, expected, atol=2e-5, err_msg=f"{key}: embedding differs from AsdaModel")
    # ~50 patch tokens per second: the 10 s clip has 998 frames -> 63 time patches -> 504 patch tokens.
    expected_rows = {"all": 505, "frame": 504, "utterance": 32, "patch_statistics": 512}
    assert stored["real"].shape[0] == expected_rows[granularity]


def test_max_length_reproduces_the_official_tool(encoder, audio_dir, tmp_path):
    """--max_length N: every clip padded/cut to N frames and embedded unmasked, every patch kept (feature_extract.py)."""
    status = embeddings.main(
        [str(audio_dir / "real.wav"), str(audio_dir / "short.wav"), "--model", str(encoder), "--output_dir",
         str(tmp_path), "--granularity", "frame", "--max_length", "1024", *CPU]
    )  # fmt: skip
    assert status == 0
    model = AsdaModel.from_pretrained(encoder).eval()
    for key in ("real", "short"):
        expected = reference_hidden_state(model, audio_dir / f"{key}.wav", -1, padding="max_length")[1:].numpy()
        assert expected.shape == (512, 32)
        np.testing.assert_allclose(np.load(tmp_path / f"{key}.npy"), expected, atol=2e-5)


def test_unreadable_short_and_too_long_clips_are_reported_and_the_rest_embedded(encoder, tmp_path):
    audio = tmp_path / "audio"
    write_noise(audio / "good.wav", 1.0)
    (audio / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    write_noise(audio / "tiny.wav", 0.01)  # 160 samples: shorter than one 25 ms frame
    write_noise(audio / "long.wav", 10.5)  # 1048 frames: past this model's 1024-frame position table
    output_dir = tmp_path / "out"
    status = embeddings.main([str(audio), "--model", str(encoder), "--output_dir", str(output_dir), *CPU])
    assert status == 1
    assert [path.name for path in output_dir.glob("*.npy")] == ["good.npy"]
    with open(output_dir / "errors.tsv", newline="") as handle:
        errors = {row["key"]: row for row in csv.DictReader(handle, delimiter="\t")}
    assert sorted(errors) == ["corrupt", "long", "tiny"]
    assert errors["corrupt"]["source"] == str(audio / "corrupt.wav")
    assert "LibsndfileError" in errors["corrupt"]["error"]
    assert "shorter than one analysis frame" in errors["tiny"]["error"]
    assert "10.50 s long (1048 frames)" in errors["long"]["error"] and "--max_length" in errors["long"]["error"]

    # Once the files are fixed, a rerun embeds them and clears the report.
    write_noise(audio / "corrupt.wav", 0.7)
    write_noise(audio / "tiny.wav", 0.2)
    (audio / "long.wav").unlink()
    assert embeddings.main([str(audio), "--model", str(encoder), "--output_dir", str(output_dir), *CPU]) == 0
    assert not (output_dir / "errors.tsv").exists()
    assert sorted(path.name for path in output_dir.glob("*.npy")) == ["corrupt.npy", "good.npy", "tiny.npy"]


class Interrupt(BaseException):
    """Stands for a Ctrl-C or a killed job."""


def interrupt_at_rename(monkeypatch, suffix: str, call: int):
    """Make the `call`-th rename onto a `*suffix` file raise, after its temporary file was written."""
    renames = []
    real_replace = os.replace

    def replace(source, target):
        if str(target).endswith(suffix):
            renames.append(target)
            if len(renames) == call:
                raise Interrupt
        return real_replace(source, target)

    monkeypatch.setattr(embeddings.os, "replace", replace)


@pytest.mark.parametrize("output_format, suffix", [("npy", ".npy"), ("safetensors", ".safetensors")])
def test_resuming_an_interrupted_run_gives_identical_files_without_redoing_finished_ones(
    encoder, tmp_path, monkeypatch, output_format, suffix
):
    audio = tmp_path / "audio"
    for index in range(7):
        write_noise(audio / f"clip{index}.wav", 0.3 + 0.1 * index, seed=index)
    # Two 32-float CLS embeddings (256 bytes) per shard.
    flags = ["--model", str(encoder), "--output_format", output_format, "--shard_size_mb", str(256 / 2**20),
             "--batch_size", "2", *CPU]  # fmt: skip
    fresh, resumed = tmp_path / "fresh", tmp_path / "resumed"
    assert embeddings.main([str(audio), "--output_dir", str(fresh), *flags]) == 0

    with monkeypatch.context() as patch:
        interrupt_at_rename(patch, suffix, call=3)
        with pytest.raises(Interrupt):
            embeddings.main([str(audio), "--output_dir", str(resumed), *flags])
    finished = sorted(resumed.glob(f"*{suffix}"))
    assert len(finished) == 2, "two files were finished before the interruption"
    assert not list(resumed.glob("*.tmp")), "the half-written file must not be left behind"
    finished_times = {path: path.stat().st_mtime_ns for path in finished}

    result = embeddings.embed(
        embeddings.EmbeddingArguments(model=str(encoder), output_dir=str(resumed), output_format=output_format,
                                      shard_size_mb=256 / 2**20, batch_size=2, device="cpu", num_workers=0),
        embeddings.collect_files([str(audio)]),
    )  # fmt: skip
    done_before = 2 if output_format == "npy" else 4
    assert result["skipped"] == done_before and result["embedded"] == 7 - done_before
    assert {path: path.stat().st_mtime_ns for path in finished} == finished_times, "finished files were rewritten"
    written = sorted(path.name for path in fresh.iterdir())
    assert written == sorted(path.name for path in resumed.iterdir())
    for name in written:
        assert (fresh / name).read_bytes() == (resumed / name).read_bytes(), f"{name} differs after resuming"


def test_a_rerun_with_other_settings_is_refused(encoder, audio_dir, tmp_path):
    flags = [str(audio_dir / "short.wav"), "--model", str(encoder), "--output_dir", str(tmp_path), *CPU]
    assert embeddings.main(flags) == 0
    with pytest.raises(ValueError, match=r"other settings \(different: granularity, layer\)"):
        embeddings.main([*flags, "--granularity", "frame", "--layer", "1"])


def test_manifests_datasets_and_folders_give_the_same_embeddings(encoder, audio_dir, tmp_path):
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"audio,comment\n{audio_dir / 'short.wav'},a\n{audio_dir / 'sub' / 'stereo.wav'},b\n")
    from_manifest = tmp_path / "manifest_out"
    assert embeddings.main([str(manifest), "--model", str(encoder), "--output_dir", str(from_manifest), *CPU]) == 0
    # Keys are paths relative to the files' common folder.
    assert sorted(p.relative_to(from_manifest).as_posix() for p in from_manifest.rglob("*.npy")) == [
        "short.npy", "sub/stereo.npy"
    ]  # fmt: skip

    saved = tmp_path / "dataset"
    rows = {"audio": [str(audio_dir / "short.wav"), str(audio_dir / "sub" / "stereo.wav")], "name": ["s", "st"]}
    datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio()).save_to_disk(saved)
    from_dataset = tmp_path / "dataset_out"
    flags = ["--dataset_name", str(saved), "--id_column", "name", "--model", str(encoder), "--num_workers", "1"]
    assert embeddings.main([*flags, "--output_dir", str(from_dataset), "--device", "cpu"]) == 0
    np.testing.assert_allclose(np.load(from_dataset / "s.npy"), np.load(from_manifest / "short.npy"), atol=1e-6)
    np.testing.assert_allclose(np.load(from_dataset / "st.npy"), np.load(from_manifest / "sub/stereo.npy"), atol=1e-6)


def test_clip_keys_must_be_unique(tmp_path):
    write_noise(tmp_path / "clip.wav", 0.1)
    write_noise(tmp_path / "clip.flac", 0.1)
    with pytest.raises(ValueError, match="would both be saved as 'clip'"):
        embeddings.collect_files([str(tmp_path)])


def child_pids(pid: int) -> list[int]:
    """The processes whose parent is `pid`, from /proc."""
    children = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            parent = next(line for line in status.read_text().splitlines() if line.startswith("PPid:"))
        except (OSError, StopIteration):
            continue  # ended while we looked
        if int(parent.split()[1]) == pid:
            children.append(int(status.parent.name))
    return children


def is_running(pid: int) -> bool:
    """Whether `pid` exists and is not a zombie (ended, waiting for its parent to collect its status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        state = next(line for line in status if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return state.split()[1] != "Z"


@pytest.mark.skipif(sys.platform != "linux", reason="reads processes from /proc")
def test_sigterm_stops_the_tool_and_its_workers_at_once_and_a_rerun_completes_the_embeddings(encoder, tmp_path):
    audio = tmp_path / "audio"
    for index in range(30):
        write_noise(audio / f"clip{index:02d}.wav", 0.25, seed=index)
    flags = [str(audio), "--model", str(encoder), "--batch_size", "1", "--device", "cpu"]
    interrupted, fresh = tmp_path / "interrupted", tmp_path / "fresh"
    command = [sys.executable, "-m", "modeling_asda.tools.embeddings", *flags, "--output_dir", str(interrupted),
               "--num_workers", "2"]  # fmt: skip
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    with open(tmp_path / "stderr.txt", "w") as stderr:
        tool = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
        deadline = time.monotonic() + 120  # the imports take a few seconds, more on a busy machine
        while not list(interrupted.glob("*.npy")):  # its data loader is running
            assert tool.poll() is None and time.monotonic() < deadline, "the tool did not start embedding"
            time.sleep(0.01)
        workers = child_pids(tool.pid)
        tool.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        status = tool.wait(timeout=30)
        seconds = time.monotonic() - sent
        survivors = [pid for pid in workers if is_running(pid)]
    finally:
        tool.kill()
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)

    assert len(workers) == 2, "--num_workers 2 starts two worker processes"
    assert not survivors, "data-loader workers outlived the tool"
    assert status == 130 and seconds < 15, f"exit status {status} after {seconds:.1f} s"
    written = list(interrupted.glob("*.npy"))
    assert 0 < len(written) < 30, "the run was stopped part way"
    assert not list(interrupted.glob(".*.tmp")), "no half-written file is left behind"
    report = (tmp_path / "stderr.txt").read_text()
    assert "Interrupted: the embeddings written so far are kept" in report and "Traceback" not in report

    assert embeddings.main([*flags, "--output_dir", str(interrupted), "--num_workers", "0"]) == 0
    assert embeddings.main([*flags, "--output_dir", str(fresh), "--num_workers", "0"]) == 0
    names = sorted(path.name for path in fresh.iterdir())
    assert len(names) == 31 and names == sorted(path.name for path in interrupted.iterdir())
    for name in names:
        assert (fresh / name).read_bytes() == (interrupted / name).read_bytes(), f"{name} differs after resuming"


# ---------------------------------------------------------------------------------------------------------------------
# Classification in windows
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    labels = {0: "hum", 1: "hiss", 2: "click"}
    return tiny_folder(
        tmp_path_factory.mktemp("classifier"),
        AsdaForAudioClassification,
        id2label=labels,
        label2id={name: index for index, name in labels.items()},
        problem_type="multi_label_classification",
    )


@pytest.fixture(scope="module")
def long_recording(tmp_path_factory) -> Path:
    """65 s: a hum, then hiss, then clicks, so that windows differ."""
    time = np.arange(65 * SAMPLING_RATE) / SAMPLING_RATE
    waveform = 0.3 * np.sin(2 * np.pi * 120 * time)
    waveform[20 * SAMPLING_RATE :] = 0.05 * np.random.default_rng(0).standard_normal(45 * SAMPLING_RATE)
    waveform[45 * SAMPLING_RATE :: 4000] = 0.9
    path = tmp_path_factory.mktemp("long") / "recording.wav"
    soundfile.write(path, waveform.astype(np.float32), SAMPLING_RATE)
    return path


def test_windows_of_a_65_s_recording_have_the_right_timestamps():
    feature_extractor = AsdaFeatureExtractor()
    num_samples = 65 * SAMPLING_RATE  # 6498 frames of 10 ms
    windows = classify.sliding_windows(num_samples, feature_extractor, window_frames=1024, hop_frames=1024)
    assert [(window.start, window.end) for window in windows] == [
        (0.0, 10.24), (10.24, 20.48), (20.48, 30.72), (30.72, 40.96), (40.96, 51.2), (51.2, 61.44), (61.44, 65.0)
    ]  # fmt: skip
    # Window k reads frames [1024 k, 1024 (k + 1)): samples from 163840 k to the end of its last 25 ms frame.
    assert windows[1].samples == slice(163840, 2 * 163840 - 160 + 400)
    assert windows[-1].samples == slice(6 * 163840, 6497 * 160 + 400)

    overlapping = classify.sliding_windows(num_samples, feature_extractor, window_frames=1000, hop_frames=500)
    assert [window.start for window in overlapping] == [5.0 * index for index in range(12)]
    assert overlapping[-2].end == 60.0 and overlapping[-1].end == 65.0
    short = classify.sliding_windows(3 * SAMPLING_RATE, feature_extractor, 1024, 1024)
    assert [(window.start, window.end) for window in short] == [(0.0, 3.0)]
    with pytest.raises(ValueError, match="hop <= window"):
        classify.sliding_windows(num_samples, feature_extractor, window_frames=500, hop_frames=1000)


def test_every_window_is_scored_like_the_same_frames_cut_from_the_whole_spectrogram(classifier, long_recording):
    """Independent route: the spectrogram of the whole recording, cut every 1024 frames, padded like a short clip."""
    model = AsdaForAudioClassification.from_pretrained(classifier).eval()
    feature_extractor = AsdaFeatureExtractor()
    waveform = load_audio(long_recording)
    windows = classify.sliding_windows(len(waveform), feature_extractor, 1024, 1024)
    scores = classify.classify_windows(model, feature_extractor, waveform, windows, 1024, batch_size=3)

    frames = feature_extractor(waveform, sampling_rate=SAMPLING_RATE, padding=False, truncation=False)["input_values"]
    assert len(frames[0]) == 6498
    pieces = [frames[0][start : start + 1024] for start in range(0, 6498, 1024)]
    inputs = feature_extractor.pad(
        {"input_values": pieces}, padding="max_length", max_length=1024, return_tensors="pt"
    )
    with torch.no_grad():
        expected = model(inputs["input_values"]).logits.sigmoid().numpy()
    assert scores.shape == (7, 3)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    assert np.abs(np.diff(scores, axis=0)).max() > 1e-4, "windows over different sounds should score differently"


def test_classify_cli_prints_one_row_per_window_and_reports_unreadable_files(
    classifier, long_recording, tmp_path, capsys
):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"garbage")
    status = classify.main(
        [str(corrupt), str(long_recording), "--model", str(classifier), "--top-k", "2", "--window_seconds", "10",
         "--hop_seconds", "5", "--output_format", "jsonl", "--device", "cpu"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1
    assert f"{corrupt}: LibsndfileError" in captured.err
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [(row["start"], row["end"]) for row in rows] == [(5.0 * k, 5.0 * k + 10) for k in range(11)] + [
        (55.0, 65.0)
    ]
    model = AsdaForAudioClassification.from_pretrained(classifier).eval()
    feature_extractor = AsdaFeatureExtractor()
    waveform = load_audio(long_recording)
    with torch.no_grad():
        last = feature_extractor(waveform[55 * SAMPLING_RATE :], sampling_rate=SAMPLING_RATE, return_tensors="pt")
        scores = model(**last).logits.sigmoid()[0]
    best = scores.argsort(descending=True)[:2]
    assert rows[-1]["labels"] == [model.config.id2label[int(index)] for index in best]
    np.testing.assert_allclose(rows[-1]["scores"], scores[best].numpy(), atol=1e-5)

    assert classify.main([str(long_recording), "--model", str(classifier), "--device", "cpu"]) == 0
    text_rows = capsys.readouterr().out.splitlines()
    assert len(text_rows) == 7
    assert text_rows[-1].split("\t")[1:3] == ["   61.44", "   65.00"]
    assert text_rows[0].count(" | ") == 2  # top 5 of 3 labels: all 3


def test_classify_reports_a_file_that_fails_by_name_and_classifies_the_files_after_it(classifier, tmp_path, capsys):
    first = write_noise(tmp_path / "first.wav", 1.0, seed=1)
    second = write_noise(tmp_path / "second.wav", 2.0, seed=2)
    waveform = load_audio(first)
    waveform[100] = np.nan
    broken = tmp_path / "broken.wav"
    soundfile.write(broken, waveform, SAMPLING_RATE, subtype="FLOAT")
    status = classify.main(
        [str(first), str(broken), str(second), "--model", str(classifier), "--output_format", "jsonl",
         "--device", "cpu"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert status == 1
    rows = [json.loads(line) for line in captured.out.splitlines()]
    assert [(row["file"], row["end"]) for row in rows] == [(str(first), 1.0), (str(second), 2.0)]
    assert f"{broken}: ValueError: Clip 0 contains 1 non-finite samples" in captured.err
    assert str(first) not in captured.err and str(second) not in captured.err


@pytest.mark.parametrize("model_class", [AsdaModel, AsdaForPreTraining])
def test_classify_refuses_a_checkpoint_without_a_trained_classification_head(model_class, tmp_path, capsys):
    folder = tiny_folder(tmp_path / "model", model_class)
    clip = write_noise(tmp_path / "clip.wav", 1.0)
    with pytest.raises(SystemExit) as exit_info:
        classify.main([str(clip), "--model", str(folder), "--device", "cpu"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and not captured.out
    assert f"error: argument --model: {folder} holds no trained classification head" in captured.err
    assert "classifier.weight" in captured.err and "fc_norm.weight" in captured.err
    assert "Fine-tune it" in captured.err and "asda-extract-embeddings" in captured.err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch_size", "0"], "argument --batch_size: must be a positive integer, got 0"),
        (["--top_k", "-1"], "argument --top_k: must be a positive integer, got -1"),
        (["--window_seconds", "0"], "argument --window_seconds: must be a positive number, got 0.0"),
        (["--hop_seconds", "-1"], "argument --hop_seconds: must be a positive number, got -1.0"),
        (["--window_seconds", "0.015"], "argument --window_seconds: must be a positive multiple of the 10 ms frame "
                                        "shift, got 0.015"),
        (["--window_seconds", "1", "--hop_seconds", "2"], "argument --hop_seconds: must be at most the window "
                                                          "(100 frames), got 2.0"),
        (["--output_format", "csv"], "argument --output_format: invalid choice: 'csv' (choose from text, jsonl, tsv)"),
        (["--output_format", "tsv"], "argument --output_format: 'tsv' lists events; it needs --events"),
        (["--events", "--threshold", "0"], "argument --threshold: must be a positive number, got 0.0"),
        (["--events", "--median_filter_seconds", "-1"], "argument --median_filter_seconds: must be a non-negative "
                                                        "number, got -1.0"),
        (["--events", "--backend", "onnx"], "argument --backend: --events runs frame classifiers on torch only, "
                                            "got onnx"),
    ],
)  # fmt: skip
def test_classify_reports_bad_arguments_as_usage_errors(classifier, tmp_path, capsys, flags, message):
    clip = write_noise(tmp_path / "clip.wav", 1.0)
    with pytest.raises(SystemExit) as exit_info:
        classify.main([str(clip), "--model", str(classifier), "--device", "cpu", *flags])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and not captured.out
    assert f"error: {message}" in captured.err


def test_classify_events_refuses_a_clip_classifier(classifier, tmp_path, capsys):
    clip = write_noise(tmp_path / "clip.wav", 1.0)
    with pytest.raises(SystemExit) as exit_info:
        classify.main([str(clip), "--model", str(classifier), "--device", "cpu", "--events"])
    captured = capsys.readouterr()
    assert exit_info.value.code == 2 and not captured.out
    assert f"error: argument --model: {classifier} holds no trained frame classification head" in captured.err
    assert "strong-labels.json" in captured.err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--batch_size", "0"], "argument --batch_size: must be a positive integer, got 0"),
        (["--num_workers", "-1"], "argument --num_workers: must be a non-negative integer, got -1"),
        (["--shard_size_mb", "0"], "argument --shard_size_mb: must be a positive number, got 0.0"),
        (["--max_length", "0"], "argument --max_length: must be a positive integer, got 0"),
        (["--max_length", "1000"], "argument --max_length: must be a multiple of 16 up to 1024, got 1000"),
        (["--layer", "3"], "argument --layer: must lie in [-3, 2] for 2 blocks, got 3"),
        (["--granularity", "token"], "argument --granularity: invalid choice: 'token' (choose from utterance, frame, "
                                     "all, patch_statistics)"),
    ],
)  # fmt: skip
def test_extract_embeddings_reports_bad_arguments_as_usage_errors(encoder, tmp_path, capsys, flags, message):
    clip = write_noise(tmp_path / "clip.wav", 1.0)
    output_dir = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        embeddings.main(
            [str(clip), "--model", str(encoder), "--output_dir", str(output_dir), "--device", "cpu", *flags]
        )
    assert exit_info.value.code == 2
    assert f"error: {message}" in capsys.readouterr().err
    assert not output_dir.exists(), "nothing is written before the arguments are checked"


def test_missing_files_are_reported_as_not_found_and_the_others_processed(classifier, encoder, tmp_path, capsys):
    good = write_noise(tmp_path / "audio" / "good.wav", 1.0)
    missing = tmp_path / "audio" / "missing.wav"
    assert classify.main([str(missing), str(good), "--model", str(classifier), "--device", "cpu"]) == 1
    captured = capsys.readouterr()
    assert f"{missing}: FileNotFoundError: [Errno 2] Audio file not found: '{missing}'" in captured.err
    assert [row.split("\t")[0] for row in captured.out.splitlines()] == [str(good)]

    listed = tmp_path / "audio" / "listed_in_manifest.wav"
    manifest = tmp_path / "clips.csv"
    manifest.write_text(f"audio\n{listed}\n")
    output_dir = tmp_path / "out"
    status = embeddings.main(
        [str(missing), str(good), str(manifest), "--model", str(encoder), "--output_dir", str(output_dir), *CPU]
    )
    assert status == 1
    assert [path.name for path in output_dir.glob("*.npy")] == ["good.npy"]
    with open(output_dir / "errors.tsv", newline="") as handle:
        errors = {row["key"]: (row["source"], row["error"]) for row in csv.DictReader(handle, delimiter="\t")}
    assert errors == {
        "missing": (str(missing), f"FileNotFoundError: [Errno 2] Audio file not found: '{missing}'"),
        "listed_in_manifest": (str(listed), f"FileNotFoundError: [Errno 2] Audio file not found: '{listed}'"),
    }


def test_console_scripts_point_at_callables():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert sorted(scripts) == ["asda-classify", "asda-export-onnx", "asda-extract-embeddings", "asda-pack"]
    for target in scripts.values():
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function))


# ---------------------------------------------------------------------------------------------------------------------
# Attention maps
# ---------------------------------------------------------------------------------------------------------------------


def test_attention_maps_png_and_statistics_for_differential_and_standard_models(shared_dir, tmp_path):
    clip = shared_dir / "data" / "audioset_clip_a_32k.wav"
    folders = [tiny_folder(tmp_path / kind, attention_type=kind) for kind in ("differential", "standard")]
    output = tmp_path / "maps" / "attention.png"
    summary = attention_maps.main([str(clip), "--models", *map(str, folders), "--output", str(output)])

    image = imread(output)
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.shape[0] > 500 and image.shape[1] > 800
    assert json.loads(output.with_suffix(".json").read_text()) == json.loads(json.dumps(summary))
    markdown = output.with_suffix(".md").read_text()
    assert markdown.count("| differential |") == 2 and markdown.count("| standard |") == 2

    # 998 real frames, padded to 1024: time patch 63 (frames 1008-1023) is all padding, 8 of the 512 patches.
    padding = np.zeros((64, 8), dtype=bool)
    padding[63:] = True
    log_mel = AsdaFeatureExtractor(do_normalize=False)(load_audio(clip), sampling_rate=SAMPLING_RATE)["input_values"][
        0
    ]
    patch_power = 10 * np.log10(np.exp(log_mel.astype(np.float64)).reshape(64, 16, 8, 16).mean(axis=(1, 3)))
    low_energy = ~padding & (patch_power < patch_power[~padding].max() - 30.0)
    for folder, model_summary in zip(folders, summary["models"]):
        assert model_summary["padding_share"] == 8 / 512
        assert model_summary["low_energy_share"] == pytest.approx(low_energy.mean())
        model = AsdaModel.from_pretrained(folder, attn_implementation="eager").eval()
        inputs = AsdaFeatureExtractor()(load_audio(clip), sampling_rate=SAMPLING_RATE, return_tensors="pt")
        with torch.no_grad():
            attentions = model(**inputs, output_attentions=True).attentions
        for layer, row in zip(attentions, model_summary["layers"]):
            cls_rows = layer[0, :, 0, 1:].double().numpy()
            if model.config.attention_type == "differential":
                # Rows of the combined map sum to 1 - lambda over all keys (CLS included).
                np.testing.assert_allclose(layer[0, :, 0].sum(-1), 0.9, atol=1e-5)
            positive = np.clip(cls_rows, 0, None)
            p = positive / positive.sum(-1, keepdims=True)
            np.testing.assert_allclose(row["per_head"]["entropy"], entropy(p, axis=-1) / np.log(512), atol=1e-6)
            np.testing.assert_allclose(row["per_head"]["padding_mass"], p[:, padding.ravel()].sum(-1), atol=1e-6)
            np.testing.assert_allclose(row["per_head"]["low_energy_mass"], p[:, low_energy.ravel()].sum(-1), atol=1e-6)
            assert row["entropy"] == pytest.approx(np.mean(row["per_head"]["entropy"]))
