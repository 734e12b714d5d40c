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
"""Self-supervised pre-training of ASDA (EAT's teacher-student recipe) with the Hugging Face Trainer.

    python examples/run_pretrain.py configuration/pretraining/asda-tiny-smoke.json --train_dir my_audio/
    python examples/run_pretrain.py configuration/pretraining/asda-small-data-cpu.json --train_dir my_1s_clips/
    accelerate launch --config_file configuration/accelerate/ddp.yaml examples/run_pretrain.py \
        configuration/pretraining/asda-base-audioset.json --train_file audioset_unbalanced.tsv

A preset (given first) holds the official values; the flags after it override them (`--config_overrides` adds to the
preset's). `asda-small-data-cpu.json` is a short run of a small model on a few hundred 1-s clips on a CPU. Unlabelled
audio comes from `--train_dir` (every audio file below it), `--train_file` (a csv/tsv manifest with a header and an
`audio` column of paths), `--dataset_name` (a `datasets` dataset with an audio column) or `--train_shards` (parquet
shards written by `asda-pack`, streamed; see docs/scaling.md). Spectrograms are computed on
the fly in the data-loader workers. The output folder holds the student encoder, which `AsdaModel.from_pretrained`
loads (with `--keep_pretraining_modules`, the whole `AsdaForPreTraining`); `checkpoint-*` folders resume a run
exactly (`--resume_from_checkpoint`). The recipe is `modeling_asda.training.pretraining`.
"""

from modeling_asda.training.pretraining import parse_arguments, run


def main(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> `run`'s result (metrics, output folder, Trainer)."""
    return run(*parse_arguments(argv))


if __name__ == "__main__":
    main()
