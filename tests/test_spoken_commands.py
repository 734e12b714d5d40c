"""examples/make_spoken_commands.py: the synthetic keyword-spotting corpus of the end-to-end experiment."""

import csv
import hashlib
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from conftest import import_example


make_spoken_commands = import_example("make_spoken_commands")


ALL_COMMANDS = list(make_spoken_commands.COMMANDS)  # before the fixture narrows them


@pytest.fixture(autouse=True)
def speech_tools():
    missing = [tool for tool in ("espeak-ng", "sox") if shutil.which(tool) is None]
    if missing:
        message = f"{' and '.join(missing)} not installed (apt-get install -y espeak-ng sox)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture
def small_corpus(monkeypatch):
    """Two command words and one accent: every voice variant still speaks, in a few seconds."""
    monkeypatch.setattr(make_spoken_commands, "COMMANDS", ["yes", "stop"])
    monkeypatch.setattr(make_spoken_commands, "ACCENTS", ["en-us"])

    def write(root: Path, seed: int) -> dict:
        return make_spoken_commands.write_corpus(root, seed=seed, pool_clips=12, workers=2)

    return write


def read_rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def digests(root: Path) -> dict[str, str]:
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def test_the_same_seed_writes_the_same_files_and_another_seed_does_not(small_corpus, tmp_path):
    small_corpus(tmp_path / "a", seed=3)
    small_corpus(tmp_path / "b", seed=3)
    small_corpus(tmp_path / "c", seed=4)
    first = digests(tmp_path / "a")
    assert len([name for name in first if name.endswith(".wav")]) == 30 * 2 + 12
    assert first == digests(tmp_path / "b")
    assert first != digests(tmp_path / "c")


def test_splits_are_spoken_by_disjoint_voices_and_the_pool_holds_no_command(small_corpus, tmp_path):
    summary = small_corpus(tmp_path, seed=0)
    voices = summary["voices"]
    assert [len(voices[split]) for split in ("train", "validation", "test")] == [20, 5, 5]
    assert sorted(sum(voices.values(), [])) == sorted(make_spoken_commands.VARIANTS)

    def variants(rows):
        return {row["speaker"].split("+")[1] for row in rows}

    for split in ("train", "validation", "test"):
        rows = read_rows(tmp_path / f"{split}.csv")
        assert variants(rows) == set(voices[split])
        assert {row["label"] for row in rows} == {"yes", "stop"}
        assert all(row["audio"].startswith(f"audio/{split}/{row['label']}/") for row in rows)
    pool = read_rows(tmp_path / "pool.csv")
    assert len(pool) == 12 and variants(pool) <= set(voices["train"])
    pool_texts = {json.loads(line)["text"] for line in (tmp_path / "clips.jsonl").read_text().splitlines()
                  if json.loads(line)["path"].startswith("audio/pool/")}  # fmt: skip
    assert pool_texts and not pool_texts & set(ALL_COMMANDS)


def test_clips_are_one_second_16k_mono_with_speech_above_the_noise(small_corpus, tmp_path):
    small_corpus(tmp_path, seed=0)
    clips = [json.loads(line) for line in (tmp_path / "clips.jsonl").read_text().splitlines()]
    quiet = [clip for clip in clips if clip["snr_db"] >= 20]
    assert quiet, "the seed drew no clip at 20 dB or more"
    for clip in quiet:
        waveform, rate = soundfile.read(tmp_path / clip["path"])
        assert rate == 16000 and waveform.shape == (16000,)
        frame_energy = (waveform[: 16000 // 160 * 160].reshape(-1, 160) ** 2).mean(axis=1)
        # The word occupies a stretch of the second: its loudest frames stand far above the quietest (noise only).
        assert frame_energy.max() > 30 * np.quantile(frame_energy, 0.05), clip


@pytest.mark.parametrize("colour, slope", [("white", 0.0), ("pink", -1.0), ("brown", -2.0)])
def test_noise_power_spectrum_falls_as_one_over_f_to_the_k(colour, slope):
    noise = make_spoken_commands.coloured_noise(
        np.random.default_rng(0), 2**16, make_spoken_commands.NOISE_COLOURS[colour]
    )
    power = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(noise.size)
    band = (frequencies > 1e-3) & (frequencies < 0.4)
    fitted = np.polyfit(np.log(frequencies[band]), np.log(power[band]), 1)[0]
    assert abs(fitted - slope) < 0.1
    assert noise.std() == pytest.approx(1.0)
