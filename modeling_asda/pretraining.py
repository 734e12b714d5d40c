"""Trainer pieces for ASDA pre-training: the EMA teacher update and the logging of the loss terms."""

import torch
from transformers import Trainer, TrainerCallback


def _unwrap(model):
    """The `AsdaForPreTraining` inside a DDP/FSDP/DeepSpeed wrapper (FSDP2 shards in place and needs none)."""
    while hasattr(model, "module"):
        model = model.module
    return model


class AsdaEmaCallback(TrainerCallback):
    """Move the teacher one EMA step towards the student after every optimiser update.

    `on_step_end` fires once per optimiser step, after gradient accumulation, with `state.global_step` already
    counting it: the official update numbering. The step comes from the Trainer state, which checkpoints save, so a
    resumed run continues the decay schedule where it stopped; the teacher itself is part of the model weights.
    Every process applies the same update to its replica (DDP) or to its own shards of teacher and student (FSDP),
    which are split alike.
    """

    def on_step_end(self, args, state, control, model=None, **kwargs):
        _unwrap(model).update_teacher(state.global_step)


class AsdaPretrainingTrainer(Trainer):
    """`Trainer` for `AsdaForPreTraining`: updates the EMA teacher and also logs the frame and utterance losses
    (averaged over the micro-batches since the last log and over processes) and the teacher's EMA decay."""

    LOGGED_TERMS = ("frame_loss", "utterance_loss")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(AsdaEmaCallback())
        self._term_totals = None
        self._term_count = 0

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            terms = torch.stack([outputs[name].detach() for name in self.LOGGED_TERMS])
            self._term_totals = terms if self._term_totals is None else self._term_totals + terms
            self._term_count += 1
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs, start_time=None):
        # `loss` marks the periodic training log, which every process reaches: gathering here is safe.
        if "loss" in logs and self._term_count:
            means = self.accelerator.gather((self._term_totals / self._term_count)[None]).mean(dim=0)
            logs.update(zip(self.LOGGED_TERMS, means.tolist()))
            logs["ema_decay"] = _unwrap(self.model).ema_decay(self.state.global_step)
            self._term_totals, self._term_count = None, 0
        super().log(logs, start_time)
