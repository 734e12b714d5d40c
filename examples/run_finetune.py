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
"""Fine-tune (or evaluate) ASDA / EAT audio classifiers with the official recipes.

    accelerate launch examples/run_finetune.py configuration/finetuning/as20k.json --model_name_or_path PRETRAINED \
        --train_file train.csv --eval_file eval.csv --label_file audioset_labels.csv --output_dir asda-as20k --do_train

A preset (`configuration/finetuning/{as2m,as20k,esc50,spc2}.json`, given first) holds a dataset's official values; the
flags after it override them. Data: `--dataset_name` (Hub), `--train_dir`/`--eval_dir` (`<dir>/<label>/<clip>`),
`--train_file`/`--eval_file` (csv/tsv with a header; multi-label rows join labels with `--label_separator`) or
`--train_shards`/`--eval_shards` (written by `asda-pack`; training shards are streamed, see docs/scaling.md).
With `--do_eval` alone, the model is evaluated like the official `eval.py`. The recipe is
`modeling_asda.training.finetuning`; see docs/finetuning.md.
"""

from modeling_asda.training.finetuning import parse_arguments, run


def main(argv: list[str] | None = None):
    """`[preset.json] [--flag value ...]` -> `run`'s result (metrics, output folder, Trainer)."""
    return run(*parse_arguments(argv))


if __name__ == "__main__":
    main()
