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
"""Write `run_finetune.py` manifests (csv: audio,label) from the official datasets' release layouts.

python examples/prepare_manifests.py esc50 --root ESC-50-master --output_dir manifests/esc50
    fold{1..5}_train.csv and fold{1..5}_eval.csv: each fold evaluated, the four others trained on.
python examples/prepare_manifests.py speech_commands --root speech_commands_v0.02 --output_dir manifests/spc2
    train.csv, validation.csv, test.csv: the 35 words, split by the release's validation/testing lists.
python examples/prepare_manifests.py audioset --tsv train.tsv --lbl train.lbl --output manifests/as20k/train.csv
    one csv from an official fairseq manifest pair (tsv: audio root, then path<TAB>samples; lbl: id<TAB>mids).
"""

import argparse
import csv
from pathlib import Path

from modeling_asda.tools.files import write_atomically


ESC50_FOLDS = (1, 2, 3, 4, 5)
SPEECH_COMMANDS_NOISE = "_background_noise_"


def write_manifest(path: Path, rows: list[tuple[str, str]]):
    """Write `audio,label` rows to `path` atomically, so an interrupted run never leaves half a file."""

    def write(temporary):
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["audio", "label"])
            writer.writerows(rows)

    write_atomically(path, write)


def esc50_manifests(root: Path, output_dir: Path) -> dict[int, tuple[Path, Path]]:
    """ESC-50 (`meta/esc50.csv` + `audio/`): per fold, (train manifest, eval manifest)."""
    with open(root / "meta" / "esc50.csv", newline="", encoding="utf-8") as handle:
        clips = [
            (str((root / "audio" / row["filename"]).resolve()), row["category"], int(row["fold"]))
            for row in csv.DictReader(handle)
        ]
    manifests = {}
    for fold in ESC50_FOLDS:
        train, evaluation = output_dir / f"fold{fold}_train.csv", output_dir / f"fold{fold}_eval.csv"
        write_manifest(train, [(path, label) for path, label, clip_fold in clips if clip_fold != fold])
        write_manifest(evaluation, [(path, label) for path, label, clip_fold in clips if clip_fold == fold])
        manifests[fold] = (train, evaluation)
    return manifests


def speech_commands_manifests(root: Path, output_dir: Path) -> dict[str, Path]:
    """Speech Commands v0.02: clips listed in `validation_list.txt` / `testing_list.txt` go there, the rest to train."""
    listed = {split: set((root / f"{split}_list.txt").read_text().split()) for split in ("validation", "testing")}
    rows = {"train": [], "validation": [], "test": []}
    for path in sorted(root.glob("*/*.wav")):
        label = path.parent.name
        if label == SPEECH_COMMANDS_NOISE:
            continue
        relative = f"{label}/{path.name}"
        split = (
            "validation" if relative in listed["validation"] else "test" if relative in listed["testing"] else "train"
        )
        rows[split].append((str(path.resolve()), label))
    manifests = {}
    for split, split_rows in rows.items():
        manifests[split] = output_dir / f"{split}.csv"
        write_manifest(manifests[split], split_rows)
    return manifests


def audioset_manifest(tsv: Path, lbl: Path, output: Path) -> Path:
    """An official fairseq AudioSet manifest pair -> one csv of absolute paths and comma-joined mids."""
    lines = tsv.read_text().splitlines()
    root = Path(lines[0].strip())
    labels = dict(line.split("\t") for line in lbl.read_text().splitlines() if line.strip())
    rows = []
    for line in lines[1:]:
        if not line.strip():
            continue
        relative = line.split("\t")[0]
        clip_id = Path(relative).stem
        if clip_id not in labels:
            raise ValueError(f"{lbl} has no labels for {clip_id} ({relative} in {tsv}).")
        rows.append((str(root / relative), labels[clip_id]))
    write_manifest(output, rows)
    return output


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="dataset", required=True)
    for name in ("esc50", "speech_commands"):
        command = commands.add_parser(name)
        command.add_argument("--root", type=Path, required=True, help="the extracted release")
        command.add_argument("--output_dir", type=Path, required=True)
    audioset = commands.add_parser("audioset")
    audioset.add_argument("--tsv", type=Path, required=True)
    audioset.add_argument("--lbl", type=Path, required=True)
    audioset.add_argument("--output", type=Path, required=True)
    args = parser.parse_args()
    if args.dataset == "esc50":
        written = [path for pair in esc50_manifests(args.root, args.output_dir).values() for path in pair]
    elif args.dataset == "speech_commands":
        written = list(speech_commands_manifests(args.root, args.output_dir).values())
    else:
        written = [audioset_manifest(args.tsv, args.lbl, args.output)]
    for path in written:
        print(path)


if __name__ == "__main__":
    main()
