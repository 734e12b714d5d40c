"""The user-facing tools: `asda-extract-embeddings` (modeling_asda/embeddings.py), `asda-classify`
(modeling_asda/classify.py) and examples/attention_maps.py, on tiny random models and real or generated audio."""

import configparser
import csv
import importlib
import json
import os
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile
import torch
from matplotlib.image import imread
from safetensors.numpy import load_file
from scipy.stats import entropy

from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification, AsdaModel, load_audio
from modeling_asda import classify, embeddings


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "examples"))

import attention_maps  # noqa: E402


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
        expected = reference_hidden_state(model, path, layer, padding="longest")[tokens].numpy()
        assert embedding.shape == expected.shape, key
        np.testing.assert_allclose(embedding, expected, atol=2e-5, err_msg=f"{key}: embedding differs from AsdaModel")
    # ~50 patch tokens per second: the 10 s clip has 998 frames -> 63 time patches -> 504 patch tokens.
    assert stored["real"].shape[0] == {"all": 505, "frame": 504, "utterance": 32}[granularity]


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


def test_console_scripts_point_at_callables():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    scripts = dict(
        line.split(" = ") for line in config["options.entry_points"]["console_scripts"].strip().splitlines()
    )
    assert sorted(scripts) == ["asda-classify", "asda-extract-embeddings"]
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
