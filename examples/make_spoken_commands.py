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
"""Synthesise a keyword-spotting corpus (Speech-Commands style) with espeak-ng and sox, deterministic from a seed.

    apt-get install -y espeak-ng sox          # Debian packages; espeak-ng 1.51 and SoX 14.4 were used
    python examples/make_spoken_commands.py --output_dir outputs/spoken_commands [--seed 0]

A *voice* is an espeak-ng voice variant (timbre: m1..m8, f1..f5, klatt, ...); a *speaker* is a variant spoken
with one of several English accents. The variants are split into disjoint train / validation / test groups, so the
held-out splits are spoken in voices the model never heard. Every clip is 1 s at 16 kHz: one word at a random speed
and pitch, trimmed of espeak's silence by sox, shifted to a random place in the second, with white, pink or brown
noise at a random SNR. The labelled splits hold the command words; the unlabelled pool (for pre-training) holds other
words and short phrases, spoken by the training voices only.

Written: `{train,validation,test}.csv` (`audio,label,speaker` columns), `pool.csv` (`audio,speaker`), `audio/...`
and `corpus.json` (the arguments, the voice split and the counts). The same seed writes the same files.
"""

import argparse
import csv
import json
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile


SAMPLING_RATE = 16000
COMMANDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]  # Speech Commands' ten keywords
POOL_TEXTS = [
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "zero", "one", "forward", "backward", "follow", "learn", "visual",
    "water", "music",
    "window", "paper", "river", "orange", "yellow", "table", "garden", "little", "morning", "people", "number",
    "open the door", "good night", "come here", "thank you", "not now", "maybe later", "over there", "very good",
    "how are you", "see you soon",
]  # fmt: skip
ACCENTS = ["en", "en-us", "en-gb-scotland", "en-gb-x-rp", "en-gb-x-gbclan", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "klatt4", "adam", "Andy", "boris", "david", "ed", "john", "linda", "max", "Mike", "paul", "robert", "steph",
    "travis",
]  # fmt: skip
NOISE_COLOURS = {"white": 0.0, "pink": 1.0, "brown": 2.0}  # exponent of the 1/f^k power spectrum
SNR_DB = [10.0, 20.0, 30.0, 40.0]


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides one clip, drawn up front so the corpus does not depend on rendering order."""

    path: str
    text: str
    speaker: str
    words_per_minute: int
    pitch: int
    offset_fraction: float
    gain: float
    noise: str
    snr_db: float
    noise_seed: int


def split_voices(rng: np.random.Generator, validation: int, test: int) -> dict[str, list[str]]:
    variants = list(rng.permutation(VARIANTS))
    return {
        "test": sorted(variants[:test]),
        "validation": sorted(variants[test : test + validation]),
        "train": sorted(variants[test + validation :]),
    }


def draw_clip(rng: np.random.Generator, path: str, text: str, speaker: str) -> ClipSpec:
    return ClipSpec(
        path=path,
        text=text,
        speaker=speaker,
        words_per_minute=int(rng.integers(140, 221)),
        pitch=int(rng.integers(10, 91)),
        offset_fraction=float(rng.uniform()),
        gain=float(rng.uniform(0.3, 0.9)),
        noise=str(rng.choice(list(NOISE_COLOURS))),
        snr_db=float(rng.choice(SNR_DB)),
        noise_seed=int(rng.integers(2**31)),
    )


def speak(text: str, speaker: str, words_per_minute: int, pitch: int) -> np.ndarray:
    """espeak-ng at 22.05 kHz -> sox (no dither, so the output is deterministic): 16 kHz mono, leading and trailing
    silence removed -> float32 in [-1, 1]."""
    speech = subprocess.run(
        ["espeak-ng", "-v", speaker, "-s", str(words_per_minute), "-p", str(pitch), "--stdout", text],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    trimmed = subprocess.run(
        ["sox", "-D", "-t", "wav", "-", "-t", "raw", "-e", "signed", "-b", "16", "-r", str(SAMPLING_RATE), "-c", "1",
         "-", "silence", "1", "0.02", "1%", "reverse", "silence", "1", "0.02", "1%", "reverse"],
        input=speech, check=True, capture_output=True,
    ).stdout  # fmt: skip
    return np.frombuffer(trimmed, dtype=np.int16).astype(np.float32) / 32768.0


def coloured_noise(rng: np.random.Generator, num_samples: int, exponent: float) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(num_samples))
    frequencies = np.fft.rfftfreq(num_samples)
    frequencies[0] = frequencies[1]
    noise = np.fft.irfft(spectrum / frequencies ** (exponent / 2), n=num_samples)
    return noise / noise.std()


def render(spec: ClipSpec, root: Path) -> None:
    """One 1-s clip: the spoken text at its offset (cropped around its middle if longer), plus noise at the SNR."""
    speech = speak(spec.text, spec.speaker, spec.words_per_minute, spec.pitch)
    if speech.size == 0:
        raise RuntimeError(f"espeak-ng produced no sound for {spec.text!r} with voice {spec.speaker}.")
    if speech.size > SAMPLING_RATE:
        start = (speech.size - SAMPLING_RATE) // 2
        speech = speech[start : start + SAMPLING_RATE]
    speech = speech.astype(np.float64) * (spec.gain / max(np.abs(speech).max(), 1e-6))
    clip = np.zeros(SAMPLING_RATE)
    offset = int(spec.offset_fraction * (SAMPLING_RATE - speech.size))
    clip[offset : offset + speech.size] = speech
    noise = coloured_noise(np.random.default_rng(spec.noise_seed), SAMPLING_RATE, NOISE_COLOURS[spec.noise])
    clip += noise * np.sqrt(np.mean(speech**2) / 10 ** (spec.snr_db / 10))  # SNR over the spoken part
    clip /= max(1.0, np.abs(clip).max() / 0.99)
    target = root / spec.path
    target.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(target, clip.astype(np.float32), SAMPLING_RATE, subtype="PCM_16")


def write_corpus(
    root: Path,
    seed: int = 0,
    takes_per_word: dict[str, int] | None = None,
    pool_clips: int = 4000,
    validation_voices: int = 5,
    test_voices: int = 5,
    workers: int = 4,
) -> dict:
    """Write the corpus under `root`; returns what `corpus.json` records."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: apt-get install -y espeak-ng sox")
    takes_per_word = takes_per_word or {"train": 1, "validation": 1, "test": 1}
    rng = np.random.default_rng(seed)
    voices = split_voices(rng, validation_voices, test_voices)
    speakers = {split: [f"{accent}+{v}" for v in variants for accent in ACCENTS] for split, variants in voices.items()}

    splits: dict[str, list[ClipSpec]] = {}
    for split in ("train", "validation", "test"):
        splits[split] = [
            draw_clip(rng, f"audio/{split}/{word}/{speaker.replace('+', '_')}_{take}.wav", word, speaker)
            for speaker in speakers[split]
            for word in COMMANDS
            for take in range(takes_per_word[split])
        ]
    pool_speakers = rng.choice(speakers["train"], pool_clips)
    pool_texts = rng.choice(POOL_TEXTS, pool_clips)
    splits["pool"] = [
        draw_clip(rng, f"audio/pool/{index:05d}.wav", str(text), str(speaker))
        for index, (text, speaker) in enumerate(zip(pool_texts, pool_speakers))
    ]

    with ThreadPoolExecutor(workers) as executor:  # the work is in the espeak-ng and sox processes
        list(executor.map(lambda spec: render(spec, root), [spec for specs in splits.values() for spec in specs]))

    for split, specs in splits.items():
        columns = ["audio", "speaker"] if split == "pool" else ["audio", "label", "speaker"]
        with open(root / f"{split}.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for spec in specs:
                writer.writerow([spec.path, spec.speaker] if split == "pool" else [spec.path, spec.text, spec.speaker])
    summary = {
        "seed": seed,
        "commands": COMMANDS,
        "voices": voices,
        "accents": ACCENTS,
        "clips": {split: len(specs) for split, specs in splits.items()},
        "takes_per_word": takes_per_word,
        "snr_db": SNR_DB,
        "noise": list(NOISE_COLOURS),
    }
    (root / "corpus.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    with open(root / "clips.jsonl", "w", encoding="utf-8") as handle:
        for specs in splits.values():
            handle.writelines(json.dumps(asdict(spec)) + "\n" for spec in specs)
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train_takes", type=int, default=2, help="renditions of each word per training speaker")
    parser.add_argument("--eval_takes", type=int, default=1, help="the same for validation and test speakers")
    parser.add_argument("--pool_clips", type=int, default=4000, help="unlabelled clips for pre-training")
    parser.add_argument("--workers", type=int, default=4)
    args = parser.parse_args()
    takes = {"train": args.train_takes, "validation": args.eval_takes, "test": args.eval_takes}
    summary = write_corpus(args.output_dir, args.seed, takes, args.pool_clips, workers=args.workers)
    print(json.dumps(summary["clips"]), "->", args.output_dir)


if __name__ == "__main__":
    main()
