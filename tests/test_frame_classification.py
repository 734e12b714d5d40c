"""AsdaForAudioFrameClassification: loading any ASDA folder's encoder, the per-time-patch output and its loss."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForAudioFrameClassification

from modeling_asda import (
    AsdaConfig,
    AsdaForAudioClassification,
    AsdaForAudioFrameClassification,
    AsdaForPreTraining,
)


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 56,
        "decoder_hidden_size": 32, "max_time_patches": 16, "num_labels": 3}


def encoder_state(model) -> dict[str, torch.Tensor]:
    return {name: tensor for name, tensor in model.asda.state_dict().items()}


@pytest.mark.parametrize("source_class", [AsdaForAudioClassification, AsdaForPreTraining])
def test_loads_the_encoder_of_a_classifier_or_pretraining_folder_and_a_fresh_head(source_class, tmp_path):
    torch.manual_seed(0)
    source = source_class(AsdaConfig(**TINY))
    source.save_pretrained(tmp_path)
    model, info = AutoModelForAudioFrameClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert type(model) is AsdaForAudioFrameClassification
    loaded, expected = encoder_state(model), encoder_state(source)
    assert loaded.keys() == expected.keys()
    for name, tensor in expected.items():
        torch.testing.assert_close(loaded[name], tensor, atol=0, rtol=0, msg=name)
    assert set(info["missing_keys"]) == {
        "frame_classifier.bias", "frame_classifier.weight", "frame_norm.bias", "frame_norm.weight"
    }
    assert not info["unexpected_keys"] and not info["mismatched_keys"]


def test_a_saved_frame_classifier_round_trips_with_its_head(tmp_path):
    torch.manual_seed(0)
    model = AsdaForAudioFrameClassification(AsdaConfig(**TINY)).eval()
    model.save_pretrained(tmp_path)
    reloaded, info = AutoModelForAudioFrameClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    input_values = torch.randn(2, 64, 128)
    with torch.no_grad():
        torch.testing.assert_close(reloaded.eval()(input_values).logits, model(input_values).logits, atol=0, rtol=0)


def test_logits_are_the_head_over_the_frequency_mean_of_each_time_patch():
    torch.manual_seed(0)
    model = AsdaForAudioFrameClassification(AsdaConfig(**TINY)).eval()
    input_values = torch.randn(2, 96, 128)  # 6 time patches x 8 frequency patches
    with torch.no_grad():
        outputs = model(input_values, output_hidden_states=True)
        tokens = outputs.hidden_states[-1][:, 1:]
        # Time-major tokens: token t * 8 + f belongs to time patch t.
        expected = torch.stack([tokens[:, t * 8 : (t + 1) * 8].mean(dim=1) for t in range(6)], dim=1)
        expected = model.frame_classifier(model.frame_norm(expected))
    assert outputs.logits.shape == (2, 6, 3)
    torch.testing.assert_close(outputs.logits, expected, atol=1e-6, rtol=0)
    assert model.time_patch_seconds() == pytest.approx(0.16)
    per_frame = model.logits_per_frame(outputs.logits)
    assert per_frame.shape == (2, 96, 3)
    torch.testing.assert_close(per_frame[:, 16 * 4 : 16 * 5], outputs.logits[:, 4:5].expand(-1, 16, -1))


def test_loss_is_binary_cross_entropy_over_the_real_time_patches_only():
    torch.manual_seed(0)
    model = AsdaForAudioFrameClassification(AsdaConfig(**TINY)).eval()
    input_values = torch.randn(2, 96, 128)
    attention_mask = torch.ones(2, 96, dtype=torch.long)
    attention_mask[1, 40:] = 0  # clip 1: frames 0..39 are real, so time patches 0..2 are
    labels = torch.randint(0, 2, (2, 6, 3)).float()
    with torch.no_grad():
        outputs = model(input_values, attention_mask=attention_mask, labels=labels)
        flipped = labels.clone()
        flipped[1, 3:] = 1.0 - flipped[1, 3:]  # targets under padding must not matter
        loss_with_other_padding_targets = model(input_values, attention_mask=attention_mask, labels=flipped).loss
    real = torch.cat([outputs.logits[0], outputs.logits[1, :3]]), torch.cat([labels[0], labels[1, :3]])
    expected = F.binary_cross_entropy_with_logits(*real)
    torch.testing.assert_close(outputs.loss, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(loss_with_other_padding_targets, expected, atol=1e-6, rtol=0)
    # -100 targets are ignored: without a mask, marking clip 1's last patches so leaves them out of the loss.
    marked = labels.clone()
    marked[1, 3:] = -100
    with torch.no_grad():
        unmasked = model(input_values, labels=marked)
    kept = torch.cat([unmasked.logits[0], unmasked.logits[1, :3]]), torch.cat([labels[0], labels[1, :3]])
    torch.testing.assert_close(unmasked.loss, F.binary_cross_entropy_with_logits(*kept), atol=1e-6, rtol=0)


def test_labels_of_another_shape_are_rejected():
    model = AsdaForAudioFrameClassification(AsdaConfig(**TINY))
    with pytest.raises(ValueError, match=r"labels must have the logits' shape .* = \(1, 4, 3\), got \(1, 3\)"):
        model(torch.randn(1, 64, 128), labels=torch.zeros(1, 3))
