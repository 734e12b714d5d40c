"""Run by tests/test_pretraining_asda.py under torchrun: FSDP2-sharded pre-training steps with the EMA update on
sharded parameters, compared with the same steps on one unsharded replica."""

import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

from modeling_asda import AsdaConfig, AsdaForPreTraining


def main():
    dist.init_process_group("gloo")
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32, decoder_num_layers=2, clone_batch=2, max_time_patches=16)
    reference = AsdaForPreTraining(config)
    sharded = AsdaForPreTraining(config)
    sharded.load_state_dict(reference.state_dict())
    mesh = init_device_mesh("cpu", (dist.get_world_size(),))
    for layer in [*sharded.asda.layers, *sharded.teacher.layers]:
        fully_shard(layer, mesh=mesh)
    fully_shard(sharded, mesh=mesh)

    inputs = torch.randn(2, 64, 128, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(4, 32, dtype=torch.bool)
    mask[:, :: 5] = False
    noise = torch.zeros(4, int(mask[0].sum()), 32)
    for model in (sharded, reference):
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
        for step in range(1, 4):
            model(inputs, mask=mask, decoder_noise=noise).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            model.update_teacher(step)

    gathered = {name: getattr(value, "full_tensor", lambda v=value: v)() for name, value in sharded.state_dict().items()}
    assert type(next(sharded.teacher.parameters())).__name__ == "DTensor"
    difference = max((gathered[name] - value).abs().max().item() for name, value in reference.state_dict().items())
    if dist.get_rank() == 0:
        print(f"max difference {difference:.3g}")
    dist.destroy_process_group()
    sys.exit(0 if difference < 1e-6 else 1)


if __name__ == "__main__":
    main()
