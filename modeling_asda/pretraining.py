"""Trainer pieces for ASDA pre-training: the EMA teacher update and the logging of the loss terms."""

import torch
from transformers import Trainer, TrainerCallback

from .finetuning import is_weight_decayed


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


class DistinctMasksPerProcessCallback(TrainerCallback):
    """Give every process its own random stream, so that the masks and decoder noise drawn in the forward pass differ
    between processes (Trainer seeds them all alike). Process 0 keeps the run's seed; on resume, Trainer restores
    each process's saved stream after this."""

    def on_train_begin(self, args, state, control, **kwargs):
        torch.manual_seed(args.seed + args.process_index)


class AsdaPretrainingTrainer(Trainer):
    """`Trainer` for `AsdaForPreTraining`: updates the EMA teacher; logs the frame and utterance losses (averaged over
    the micro-batches since the last log and over processes) and the teacher's EMA decay; applies weight decay as the
    official runs did (see `is_weight_decayed`)."""

    LOGGED_TERMS = ("frame_loss", "utterance_loss")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(AsdaEmaCallback())
        self.add_callback(DistinctMasksPerProcessCallback())
        self._term_totals = None
        self._term_count = 0

    def get_decay_parameter_names(self, model) -> list[str]:
        exempt = getattr(self.args, "exempt_biases_and_1d_from_weight_decay", False)
        return [name for name, param in model.named_parameters() if is_weight_decayed(name, param, exempt)]

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
