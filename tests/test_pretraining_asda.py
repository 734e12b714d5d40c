"""AsdaForPreTraining: golden parity with the official pre-training forward, masking and the EMA teacher."""

import copy
import json
import math
import os
import subprocess
import sys
import unittest
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from transformers_tests.test_modeling_common import ModelTesterMixin

from conftest import FIXTURES
from modeling_asda import AsdaConfig, AsdaForPreTraining, AsdaModel, inverse_block_mask
from modeling_asda.tools.convert_checkpoint import config_from_fairseq, convert_state_dict
from modeling_asda.training.pretraining import AsdaPretrainingArguments
from test_modeling_asda import AsdaModelTester


@pytest.fixture(scope="module")
def golden():
    meta = json.loads((FIXTURES / "tiny_meta.json").read_text())
    state_dict = load_file(FIXTURES / "tiny_pretrain_state_dict.safetensors")
    config = config_from_fairseq(meta["pretrain_model_cfg"], state_dict)
    converted, _ = convert_state_dict(state_dict, config, "pretraining")
    return {
        "config": config,
        "state_dict": converted,
        "inputs": load_file(FIXTURES / "tiny_inputs.safetensors"),
        "outputs": load_file(FIXTURES / "tiny_outputs.safetensors"),
    }


def official_model(golden, attn_implementation="sdpa"):
    model = AsdaForPreTraining(golden["config"])
    model.load_state_dict(golden["state_dict"], strict=True)
    model.set_attn_implementation(attn_implementation)
    return model.train()


def reorder(official, order):
    """Put the official per-clone rows (in the non-stable argsort order of `ids_shuffle`) in ascending patch order."""
    return torch.gather(official, 1, order.argsort(dim=1)[..., None].expand(-1, -1, official.shape[-1]))


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_teacher_targets_match_official(golden, attn_implementation):
    model = official_model(golden, attn_implementation)
    targets = model.teacher_targets(golden["inputs"]["source"][:, 0])
    # Instance-normalising channels of std ~0.014 amplifies float32 rounding: a 1e-7 change of the teacher's MLP
    # outputs moves the targets by ~2e-5. Computed from the official MLP outputs they agree exactly (next test).
    torch.testing.assert_close(targets, golden["outputs"]["pretrain.targets"], atol=1e-5, rtol=0)


def test_target_recipe_reproduces_official_from_teacher_layers(golden):
    layers = golden["outputs"]["pretrain.teacher_layer_ffn"]
    averaged = sum(F.instance_norm(layer.transpose(1, 2)).transpose(1, 2) for layer in layers) / len(layers)
    expected = golden["outputs"]["pretrain.targets"]
    torch.testing.assert_close(F.layer_norm(averaged, averaged.shape[-1:]), expected, atol=1e-6, rtol=0)
    model = official_model(golden)
    teacher = model.teacher(golden["inputs"]["source"][:, 0], output_ffn_hidden_states=True)
    ours = torch.stack([layer[:, 1:] for layer in teacher.ffn_hidden_states])
    torch.testing.assert_close(ours, layers, atol=1e-6, rtol=0)


@pytest.mark.parametrize("noise_run", ["pretrain_zero_noise", "pretrain_official_noise"])
def test_pretraining_forward_matches_official(golden, noise_run):
    model = official_model(golden)
    outputs_official = golden["outputs"]
    ids_shuffle = outputs_official["pretrain.ids_shuffle"]
    num_kept = int((~golden["inputs"]["masks"][0]).sum())
    if noise_run == "pretrain_zero_noise":
        noise = torch.zeros(4, 128 - num_kept, 64)
    else:  # noise vector j of clone s sits at patch ids_shuffle[s, num_kept + j]
        noise = reorder(outputs_official["pretrain_official_noise.decoder_noise"], ids_shuffle[:, num_kept:])

    outputs = model(
        golden["inputs"]["source"][:, 0],
        mask=golden["inputs"]["masks"].bool(),
        decoder_noise=noise,
        output_hidden_states=True,
    )
    student = outputs_official["pretrain.student_last_hidden_state"]
    torch.testing.assert_close(outputs.hidden_states[-1][:, 0], student[:, 0], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        outputs.hidden_states[-1][:, 1:], reorder(student[:, 1:], ids_shuffle[:, :num_kept]), atol=1e-5, rtol=0
    )
    torch.testing.assert_close(outputs.logits, outputs_official[f"{noise_run}.decoder_output"], atol=1e-5, rtol=0)
    for ours, theirs in [
        (outputs.loss, f"{noise_run}.loss"),
        (outputs.frame_loss, f"{noise_run}.frame_loss"),
        (outputs.utterance_loss, "pretrain.utterance_loss"),
    ]:
        torch.testing.assert_close(ours, outputs_official[theirs].squeeze(), rtol=1e-4, atol=0)


def test_loss_weighting_is_the_official_sum_over_clones(golden):
    # Spec 3.4: the utterance term is lambda_u times the SUM over clone-samples, not a mean.
    model = official_model(golden)
    outputs = model(golden["inputs"]["source"][:, 0], mask=golden["inputs"]["masks"].bool(),
                    decoder_noise=torch.zeros(4, 103, 64), output_hidden_states=True)
    cls = outputs.hidden_states[-1][:, 0]
    target = outputs.targets.mean(dim=1).repeat_interleave(2, dim=0)
    per_clone = ((cls - target) ** 2).sum(-1) / math.sqrt(64)
    torch.testing.assert_close(outputs.utterance_loss, 0.5 * per_clone.sum())
    torch.testing.assert_close(per_clone, golden["outputs"]["pretrain.utterance_error_per_clone"], atol=1e-4, rtol=0)


def test_mean_utterance_reduction_divides_the_official_sum_by_the_student_rows(golden):
    # 2 clips x 2 clones = 4 student rows. "sum" stays the official value; "mean" averages the same per-clone errors
    # and leaves the frame term alone.
    source, mask, noise = golden["inputs"]["source"][:, 0], golden["inputs"]["masks"].bool(), torch.zeros(4, 103, 64)
    summed = official_model(golden)(source, mask=mask, decoder_noise=noise, output_hidden_states=True)
    mean_config = copy.deepcopy(golden["config"])
    mean_config.utterance_loss_reduction = "mean"
    averaged = official_model({**golden, "config": mean_config})(source, mask=mask, decoder_noise=noise)

    cls = summed.hidden_states[-1][:, 0]
    per_clone = ((cls - summed.targets.mean(dim=1).repeat_interleave(2, dim=0)) ** 2).sum(-1) / math.sqrt(64)
    assert torch.equal(summed.utterance_loss, 0.5 * per_clone.sum())
    official = golden["outputs"]["pretrain.utterance_loss"].squeeze()
    torch.testing.assert_close(summed.utterance_loss, official, rtol=1e-6, atol=0)
    torch.testing.assert_close(averaged.utterance_loss, 0.5 * per_clone.sum() / 4, rtol=1e-7, atol=0)
    torch.testing.assert_close(averaged.utterance_loss, official / 4, rtol=1e-6, atol=0)
    assert torch.equal(averaged.frame_loss, summed.frame_loss)
    assert torch.equal(averaged.loss, averaged.frame_loss + averaged.utterance_loss)


def test_unknown_utterance_loss_reduction_is_rejected():
    with pytest.raises(ValueError, match="utterance_loss_reduction must be one of"):
        AsdaConfig(utterance_loss_reduction="median")


@pytest.mark.parametrize(("num_time_patches", "expected_kept"), [(64, 102), (32, 51), (8, 12), (16, 25)])
def test_inverse_block_mask_keeps_exactly_twenty_percent(num_time_patches, expected_kept):
    generator = torch.Generator().manual_seed(0)
    mask = inverse_block_mask(64, num_time_patches, 8, 0.8, 5, 0.07, generator=generator)
    assert mask.shape == (64, num_time_patches * 8)
    assert ((~mask).sum(dim=1) == expected_kept).all()


def test_inverse_block_mask_keeps_blocks_not_scattered_patches():
    # With 5 centres of 5x5 blocks on a 64x8 grid, kept patches form blocks: a kept patch has far more kept
    # neighbours than under uniformly random keeping (about 0.2 * 8 = 1.6 of its 8 neighbours).
    generator = torch.Generator().manual_seed(0)
    kept = (~inverse_block_mask(256, 64, 8, 0.8, 5, 0.07, generator=generator)).float().view(256, 1, 64, 8)
    neighbours = F.conv2d(kept, torch.ones(1, 1, 3, 3), padding=1) - kept
    mean_kept_neighbours = (neighbours * kept).sum() / kept.sum()
    assert mean_kept_neighbours > 4.0
    random_kept = (torch.rand(256, 1, 64, 8, generator=generator) < 0.2).float()
    random_neighbours = F.conv2d(random_kept, torch.ones(1, 1, 3, 3), padding=1) - random_kept
    assert (random_neighbours * random_kept).sum() / random_kept.sum() < 2.0


def test_inverse_block_mask_keeps_whole_blocks_when_few_centres():
    # One centre on a 16x8 grid: int(128 * 0.27 / 25) = 1. Its clipped 5x5 block (<= 25 cells) is kept whole and the
    # remaining kept patches are drawn elsewhere, so some 3x3 window is fully kept.
    generator = torch.Generator().manual_seed(1)
    kept = (~inverse_block_mask(32, 16, 8, 0.8, 5, 0.07, generator=generator)).float().view(32, 1, 16, 8)
    full_windows = F.conv2d(kept, torch.ones(1, 1, 3, 3)) == 9
    assert full_windows.flatten(1).any(dim=1).all()


def test_one_second_clips_get_scattered_patches_officially_and_a_block_with_mask_min_blocks():
    """An 8 x 8 grid (1-s clips) gets int(64 * 0.27 / 25) = 0 block centres from the official formula: its 12 kept
    patches are scattered as under uniform random keeping. `mask_min_blocks=1` keeps them inside one 5 x 5 block."""

    def kept_grid(min_blocks):
        generator = torch.Generator().manual_seed(0)
        mask = inverse_block_mask(512, 8, 8, 0.8, 5, 0.07, generator=generator, min_blocks=min_blocks)
        return (~mask).float().view(512, 1, 8, 8)

    def mean_kept_neighbours(kept):
        neighbours = F.conv2d(kept, torch.ones(1, 1, 3, 3), padding=1) - kept
        return float((neighbours * kept).sum() / kept.sum())

    scattered, blocked = kept_grid(0), kept_grid(1)
    assert (scattered.flatten(1).sum(1) == 12).all() and (blocked.flatten(1).sum(1) == 12).all()
    # Uniformly random keeping of 12 of 64 cells: each kept cell has 11/63 of its in-grid neighbours kept (< 1.3).
    assert mean_kept_neighbours(scattered) < 1.4
    assert mean_kept_neighbours(blocked) > 3.0
    # A border-clipped 5 x 5 block holds at least 3 x 3 = 9 cells, all kept (block cells rank first): some 5 x 5
    # window of every row holds >= 9 kept patches, which scattered keeping (about 12 * 25 / 64 = 4.7) rarely reaches.
    def best_window(kept):
        return F.conv2d(kept, torch.ones(1, 1, 5, 5), padding=2).flatten(1).max(dim=1).values

    assert (best_window(blocked) >= 9).all()
    assert (best_window(scattered) >= 9).float().mean() < 0.1


def test_clones_get_independent_masks():
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32, decoder_num_layers=2, clone_batch=16)
    model = AsdaForPreTraining(config)
    torch.manual_seed(0)
    outputs = model(torch.randn(2, 1024, 128))
    assert outputs.mask.shape == (32, 512)
    assert len({tuple(row.tolist()) for row in outputs.mask}) == 32


def test_mask_with_unequal_kept_counts_is_rejected():
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32, decoder_num_layers=2)
    mask = torch.ones(2, 16 * 8, dtype=torch.bool)
    mask[0, :25] = False
    mask[1, :20] = False
    with pytest.raises(ValueError, match="same number of kept patches"):
        AsdaForPreTraining(config)(torch.randn(1, 256, 128), mask=mask)


def test_ema_decay_schedule_matches_the_spec():
    model = AsdaForPreTraining(AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                          intermediate_size=64, decoder_hidden_size=32, decoder_num_layers=1))
    assert model.ema_decay(0) == pytest.approx(0.9998, abs=1e-12)
    assert model.ema_decay(50_000) == pytest.approx(0.999895, abs=1e-12)
    assert model.ema_decay(100_000) == pytest.approx(0.99999, abs=1e-12)
    assert model.ema_decay(400_000) == pytest.approx(0.99999, abs=1e-12)


def test_teacher_is_the_closed_form_ema_of_the_student_trajectory():
    config = AsdaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32, decoder_num_layers=2, clone_batch=2, max_time_patches=16,
                        ema_decay=0.9, ema_end_decay=0.99, ema_anneal_end_step=4)
    torch.manual_seed(0)
    model = AsdaForPreTraining(config)
    student_start = {name: value.clone() for name, value in model.asda.named_parameters()}
    torch.testing.assert_close(dict(model.teacher.named_parameters()), student_start)  # starts as a copy
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    trajectory = []
    for step in range(1, 7):
        optimizer.zero_grad()
        model(torch.randn(2, 64, 128)).loss.backward()
        optimizer.step()
        model.update_teacher(step)
        trajectory.append({name: value.detach().clone() for name, value in model.asda.named_parameters()})
    # teacher_k = prod(decay) * student_0 + sum_j (1 - d_j) * prod_{i > j} d_i * student_j
    decays = [model.ema_decay(step) for step in range(1, 7)]
    for name, teacher in model.teacher.named_parameters():
        expected = math.prod(decays) * student_start[name]
        for j, snapshot in enumerate(trajectory):
            expected = expected + (1 - decays[j]) * math.prod(decays[j + 1 :]) * snapshot[name]
        torch.testing.assert_close(teacher, expected, atol=1e-6, rtol=1e-5)
    # No gradient ever reaches the teacher.
    assert all(parameter.grad is None for parameter in model.teacher.parameters())


def tiny_pretraining_config(**overrides) -> AsdaConfig:
    return AsdaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                      decoder_hidden_size=32, decoder_num_layers=2, clone_batch=2, max_time_patches=16,
                      ema_decay=0.9, ema_end_decay=0.99, ema_anneal_end_step=4, **overrides)


def test_pretraining_forward_backward_and_ema_read_nothing_back_from_the_device():
    # A host sync (`.item()`, `nonzero`, boolean indexing) stalls a GPU step; the CPU profiler records the same ops.
    # (The optimiser is left out: CPU's fused AdamW kernel reads its step counter on the host, CUDA's does not.)
    model = AsdaForPreTraining(tiny_pretraining_config()).train()
    inputs = torch.randn(2, 64, 128)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        model(inputs).loss.backward()
        model.update_teacher(1)
    ops = {event.key for event in profiler.key_averages()}
    assert {"aten::convolution_backward", "aten::_foreach_lerp_"} <= ops  # the profile did record the step
    assert not ops & {"aten::_local_scalar_dense", "aten::item", "aten::is_nonzero", "aten::nonzero"}


def test_lean_step_matches_a_step_written_from_the_formulas():
    # Lean: the model's index-based loss, fused AdamW (the recipe's `adamw_torch_fused`), the foreach EMA update.
    # Reference: the loss at the boolean-masked patches, the per-tensor AdamW loop, the EMA formula per parameter.
    # No qkv bias: the key biases' gradients are rounding noise (softmax ignores them), which Adam scales up to lr.
    torch.manual_seed(0)
    lean = AsdaForPreTraining(tiny_pretraining_config(qkv_bias=False)).train()
    reference = copy.deepcopy(lean)
    optimizers = {
        model: torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, betas=(0.9, 0.95),
                                 weight_decay=0.05, **kw)
        for model, kw in [(lean, {"fused": True}), (reference, {"foreach": False})]
    }  # fmt: skip
    assert AsdaPretrainingArguments(output_dir="unused").optim == "adamw_torch_fused"
    generator = torch.Generator().manual_seed(1)
    for step in range(1, 4):
        inputs = torch.randn(2, 64, 128, generator=generator)
        mask = inverse_block_mask(4, 4, 8, 0.8, 5, 0.07, generator=generator)
        noise = 0.01 * torch.randn(4, int(mask[0].sum()), 32, generator=generator)

        lean_loss = lean(inputs, mask=mask, decoder_noise=noise).loss
        lean_loss.backward()
        optimizers[lean].step()
        optimizers[lean].zero_grad(set_to_none=True)
        lean.update_teacher(step)

        out = reference(inputs, mask=mask, decoder_noise=noise, output_hidden_states=True)
        clone_targets = out.targets.repeat_interleave(2, dim=0)
        frame = ((out.logits[mask] - clone_targets[mask]) ** 2).sum(-1).mean() / math.sqrt(32)
        utterance = ((out.hidden_states[-1][:, 0] - clone_targets.mean(1)) ** 2).sum(-1).sum() / math.sqrt(32)
        reference_loss = frame + 0.5 * utterance
        reference_loss.backward()
        optimizers[reference].step()
        optimizers[reference].zero_grad(set_to_none=True)
        decay = reference.ema_decay(step)
        with torch.no_grad():
            for teacher, student in zip(reference.teacher.parameters(), reference.asda.parameters()):
                teacher.copy_(decay * teacher + (1 - decay) * student)

        torch.testing.assert_close(lean_loss, reference_loss, rtol=1e-6, atol=0)
    torch.testing.assert_close(lean.state_dict(), reference.state_dict(), rtol=1e-5, atol=1e-6)


def test_student_is_loadable_as_an_encoder(tmp_path):
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32, decoder_num_layers=2, max_time_patches=16)
    model = AsdaForPreTraining(config)
    model.save_pretrained(tmp_path)
    encoder = AsdaModel.from_pretrained(tmp_path)
    torch.testing.assert_close(encoder.state_dict(), model.asda.state_dict())


class AsdaForPreTrainingTest(ModelTesterMixin, unittest.TestCase):
    """transformers' common tests on the pre-training model, with fixed masks and decoder noise."""

    all_model_classes = (AsdaForPreTraining,)
    test_resize_embeddings = False

    def setUp(self):
        self.model_tester = AsdaModelTester(self)
        # The student sees CLS + int(0.2 * 18) kept patches.
        self.model_tester.seq_length = 1 + int(0.2 * (self.model_tester.seq_length - 1))

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        batch_size = inputs_dict["input_values"].shape[0]
        generator = torch.Generator().manual_seed(0)
        mask = inverse_block_mask(batch_size * 2, self.model_tester.num_frames // self.model_tester.patch_size,
                                  self.model_tester.num_mel_bins // self.model_tester.patch_size, 0.8, 5, 0.07,
                                  generator=generator)
        num_masked = int(mask[0].sum())
        inputs_dict["mask"] = mask
        inputs_dict["decoder_noise"] = torch.randn(batch_size * 2, num_masked, self.model_tester.hidden_size,
                                                   generator=generator) * 0.01
        return inputs_dict

    @unittest.skip("ASDA reads spectrograms through a patch convolution: there are no input embeddings to feed.")
    def test_inputs_embeds(self):
        pass

    def test_model_get_set_embeddings(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        self.assertIsInstance(AsdaForPreTraining(config).get_input_embeddings().projection, torch.nn.Conv2d)

    @unittest.skip("The output carries a boolean mask, which the mixin compares by subtraction; the tuple/dict "
                   "equivalence is checked by test_tuple_output_equals_dict_output below.")
    def test_model_outputs_equivalence(self):
        pass

    def test_tuple_output_equals_dict_output(self):
        config, inputs = self.model_tester.prepare_config_and_inputs_for_common()
        inputs = self._prepare_for_class(inputs, AsdaForPreTraining)
        model = AsdaForPreTraining(config).eval()
        with torch.no_grad():
            as_dict = model(**inputs, output_hidden_states=True).to_tuple()
            as_tuple = model(**inputs, output_hidden_states=True, return_dict=False)
        self.assertEqual(len(as_dict), len(as_tuple))
        for from_dict, from_tuple in zip(as_dict, as_tuple):
            torch.testing.assert_close(from_dict, from_tuple, rtol=0, atol=0)

    def test_retain_grad_hidden_states_attentions(self):
        # As for AsdaModel: the reported differential map is not the operand of the value product.
        self.model_tester.attention_type = "standard"
        super().test_retain_grad_hidden_states_attentions()


@pytest.mark.slow
def test_ema_update_on_fsdp2_shards_matches_one_replica():
    worker = Path(__file__).with_name("fsdp_ema_worker.py")
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(worker)]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "max difference" in result.stdout


def test_ema_update_refuses_deepspeed_zero3_partitions():
    model = AsdaForPreTraining(AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                          intermediate_size=64, decoder_hidden_size=32, decoder_num_layers=1))
    next(model.teacher.parameters()).ds_id = 0  # what ZeRO-3 attaches to the parameters it partitions
    with pytest.raises(RuntimeError, match="ZeRO-3"):
        model.update_teacher(1)
