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
"""The optimiser rule of the official recipes: which parameters get weight decay, the layer-wise lr decay groups of
fine-tuning, and fairseq's cosine schedule run once per group."""

import math
from dataclasses import dataclass, field

import torch
from torch import nn


@dataclass
class WeightDecayArguments:
    """The weight-decay flag both recipes' `TrainingArguments` share (see `is_weight_decayed`)."""

    exempt_biases_and_1d_from_weight_decay: bool = field(
        default=False,
        metadata={
            "help": "Skip weight decay on biases and 1-D tensors. The official code tags them so, but fairseq's "
            "composite optimiser never applies the tag, so the official runs decay every parameter (the default)."
        },
    )



def is_weight_decayed(name: str, param: torch.Tensor, exempt_biases_and_1d: bool) -> bool:
    """Whether a parameter gets weight decay: always in the official runs (fairseq never applies the code's
    exemption tags), or, with `exempt_biases_and_1d`, unless it is a bias or a 1-D tensor, as the code intends."""
    # DeepSpeed ZeRO-3 empties partitioned tensors and keeps their shape in `ds_shape`.
    shape = getattr(param, "ds_shape", param.shape)
    return not exempt_biases_and_1d or (len(shape) > 1 and not name.endswith(".bias"))


def layer_decay_parameter_groups(
    model: nn.Module,
    learning_rate: float,
    weight_decay: float,
    layer_decay: float,
    exempt_biases_and_1d: bool = False,
) -> list[dict]:
    """Optimizer groups of the official fine-tuning: encoder block i (0-based) of L gets `lr * layer_decay^(L - i)`;
    every other parameter (patch embedding, CLS token, input LayerNorm, classifier) the full lr. With
    `exempt_biases_and_1d`, biases and 1-D tensors get no weight decay. Each group carries its `lr_scale`."""
    encoder = model.base_model
    num_layers = len(encoder.layers)
    block_of = {id(param): block for block, layer in enumerate(encoder.layers) for param in layer.parameters()}
    groups = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        block = block_of.get(id(param))
        lr_scale = 1.0 if block is None else layer_decay ** (num_layers - block)
        decay = is_weight_decayed(name, param, exempt_biases_and_1d)
        group = groups.setdefault(
            (lr_scale, decay),
            {
                "params": [],
                "lr": learning_rate * lr_scale,
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": lr_scale,
            },
        )
        group["params"].append(param)
    return list(groups.values())


def official_cosine_schedule(
    optimizer: torch.optim.Optimizer, num_warmup_steps: int, num_training_steps: int, min_lr: float
) -> torch.optim.lr_scheduler.LambdaLR:
    """fairseq's `cosine` scheduler run once per optimiser group, as the official composite optimiser does: a group
    with peak lr `p` (its `lr`) starts at `floor = min(min_lr, p)`, rises linearly to `p` over the warm-up, then
    follows `floor + (p - floor) * (1 + cos(pi * progress)) / 2` to `floor` at the last step. Groups whose layer-decayed
    peak is below `min_lr` thus stay at their peak."""

    def schedule(peak: float):
        floor = min(min_lr, peak)

        def factor(step: int) -> float:
            if step < num_warmup_steps:
                lr = floor + step * (peak - floor) / num_warmup_steps
            else:
                progress = (step - num_warmup_steps) / max(1, num_training_steps - num_warmup_steps)
                lr = floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * min(progress, 1.0)))
            return lr / peak

        return factor

    return torch.optim.lr_scheduler.LambdaLR(optimizer, [schedule(group["lr"]) for group in optimizer.param_groups])


__all__ = ["WeightDecayArguments", "is_weight_decayed", "layer_decay_parameter_groups", "official_cosine_schedule"]
