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
"""Training from streamed shards (`--train_shards`): the stream both recipes build, and the Trainer mixin that feeds
it through torchdata's `StatefulDataLoader` and saves its position in every checkpoint.

Each process reads its own shards (`stream_shards` splits them before the Trainer sees the data, so Accelerate's
loader, which would either dispatch every batch from process 0 or split the data again, is not used for training).
The stream is endless (`EndlessStream`): every process draws `max_steps` x accumulation batches however uneven its
share, so no process waits for another at the end of a pass. A checkpoint holds each process's data-loader state
(`data_state_<process>.pt`); resuming loads it instead of Trainer's replay of the consumed batches, which would read
and decode every clip again. The position is exact; only the clips then waiting in a shuffle buffer are not seen in
that pass (datasets drops the buffer on resume): `--shuffle_buffer_size 1` makes a resumed run repeat an uninterrupted
one exactly.
"""

import logging
import os

import torch
from torchdata.stateful_dataloader import StatefulDataLoader
from transformers import TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

from ..data.shards import EndlessStream, read_index, stream_shards


logger = logging.getLogger(__name__)

DATA_STATE_NAME = "data_state_{}.pt"


def stream_training_clips(data_args, training_args, transform, min_samples: int, encode=None) -> EndlessStream:
    """This process's endless stream of `--train_shards`, clips passed through `encode` (one example -> new columns,
    e.g. label ids) and then `transform` (a batch function -> model inputs)."""
    if training_args.max_steps <= 0:
        raise ValueError("Streaming --train_shards has no epoch length: give the run length with --max_steps.")
    others = [source for source in (data_args.train_file, data_args.train_dir, data_args.dataset_name) if source]
    if others:
        raise ValueError(f"Give one training source: --train_shards or {others[0]}, not both.")
    if data_args.max_train_samples is not None:
        raise ValueError("--max_train_samples selects from map-style data; pack fewer clips into the shards instead.")
    if "epoch" in (training_args.save_strategy, training_args.eval_strategy):
        logger.warning(
            "A stream has no epochs: Trainer's epoch is the whole run, so an 'epoch' save or eval strategy acts only "
            "at its end. Use --save_strategy steps --save_steps N (and --eval_strategy steps --eval_steps N)."
        )
    dataset = stream_shards(
        data_args.train_shards,
        rank=training_args.process_index,
        world_size=training_args.world_size,
        seed=training_args.data_seed if training_args.data_seed is not None else training_args.seed,
        shuffle_buffer_size=data_args.shuffle_buffer_size,
        min_samples=min_samples,
    )
    if encode is not None:
        dataset = dataset.map(encode)
    return EndlessStream(dataset, transform, read_index(data_args.train_shards)["num_clips"])


class StreamStateCallback(TrainerCallback):
    """Write this process's data-loader state into each checkpoint; keep the logged epoch the fraction of the run
    (Trainer counts a stream's batches from 0 again after a resume)."""

    def on_save(self, args, state, control, train_dataloader=None, **kwargs):
        if isinstance(train_dataloader, StatefulDataLoader):
            folder = os.path.join(args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}")
            os.makedirs(folder, exist_ok=True)
            torch.save(train_dataloader.state_dict(), os.path.join(folder, DATA_STATE_NAME.format(args.process_index)))

    def on_step_end(self, args, state, control, **kwargs):
        state.epoch = state.global_step / state.max_steps


class StreamingTrainerMixin:
    """Trainer mixin (listed before `Trainer`) that trains from an `EndlessStream` with a `StatefulDataLoader` and
    resumes it from the state saved in the checkpoint. Other training data goes through Trainer unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._data_checkpoint = None
        self._data_state_loaded = False
        if isinstance(self.train_dataset, EndlessStream):
            self.add_callback(StreamStateCallback())

    def train(self, resume_from_checkpoint=None, *args, **kwargs):
        if resume_from_checkpoint is True:
            resume_from_checkpoint = get_last_checkpoint(self.args.output_dir)
            if resume_from_checkpoint is None:
                raise ValueError(f"No checkpoint found in {self.args.output_dir} to resume from.")
        self._data_checkpoint = resume_from_checkpoint or None
        return super().train(resume_from_checkpoint, *args, **kwargs)

    def get_train_dataloader(self):
        if not isinstance(self.train_dataset, EndlessStream):
            return super().get_train_dataloader()
        workers = self.args.dataloader_num_workers
        loader = StatefulDataLoader(
            self.train_dataset,
            batch_size=self._train_batch_size,
            collate_fn=self.data_collator,
            num_workers=workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers and workers > 0,
            prefetch_factor=self.args.dataloader_prefetch_factor if workers > 0 else None,
            # Its own generator: starting the iterator draws the workers' seed from it, not from the global stream
            # that Trainer restores on resume (the pre-training masks are drawn from that one).
            generator=torch.Generator().manual_seed(self.args.seed + self.args.process_index),
        )
        self._data_state_loaded = False
        if self._data_checkpoint is not None and not self.args.ignore_data_skip:
            path = os.path.join(self._data_checkpoint, DATA_STATE_NAME.format(self.args.process_index))
            if not os.path.isfile(path):
                raise FileNotFoundError(
                    f"{path} is missing: the checkpoint was not written by a streaming run with "
                    f"{self.args.world_size} process(es). Pass --ignore_data_skip true to restart the stream."
                )
            loader.load_state_dict(torch.load(path, weights_only=True))
            self._data_state_loaded = True
        return loader

    def _init_training_state(self, *args, **kwargs):
        # The loader resumes from its saved state: Trainer must not skip the consumed batches on top of it.
        epochs_trained, steps_trained_in_current_epoch = super()._init_training_state(*args, **kwargs)
        return epochs_trained, 0 if self._data_state_loaded else steps_trained_in_current_epoch


__all__ = ["StreamingTrainerMixin", "StreamStateCallback", "stream_training_clips"]
