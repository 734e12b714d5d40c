"""AsdaModel / AsdaForAudioClassification / AsdaForAudioFrameClassification: transformers' common tests, golden parity and padding behaviour."""

import inspect
import json
import re
import unittest

import pytest
import torch
from huggingface_hub.errors import StrictDataclassClassValidationError
from safetensors.torch import load_file
from transformers.models.auto import modeling_auto
from transformers_tests.test_configuration_common import ConfigTester
from transformers_tests.test_modeling_common import ModelTesterMixin, floats_tensor

from conftest import FIXTURES
from modeling_asda import AsdaConfig, AsdaForAudioClassification, AsdaForAudioFrameClassification, AsdaModel
from modeling_asda.tools.convert_checkpoint import config_from_fairseq, convert_state_dict


class AsdaModelTester:
    # 12 mel bins / patch 4 = 3 frequency patches: frame, patch and token counts (24, 18, 19) all differ.
    def __init__(self, parent, batch_size=2, num_frames=24, num_mel_bins=12, patch_size=4, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.num_frames = num_frames
        self.num_mel_bins = num_mel_bins
        self.patch_size = patch_size
        self.is_training = is_training
        self.hidden_size = 32
        self.num_hidden_layers = 2
        self.num_attention_heads = 4
        self.num_labels = 3
        self.attention_type = "differential"
        # CLS + (time patches x frequency patches)
        self.seq_length = 1 + (num_frames // patch_size) * (num_mel_bins // patch_size)

    def get_config(self, **overrides):
        values = {
            "hidden_size": self.hidden_size,
            "num_hidden_layers": self.num_hidden_layers,
            "num_attention_heads": self.num_attention_heads,
            "intermediate_size": 56,
            "num_mel_bins": self.num_mel_bins,
            "patch_size": self.patch_size,
            "max_time_patches": 8,
            "decoder_hidden_size": 32,
            "num_labels": self.num_labels,
            "attention_type": self.attention_type,
            "attn_implementation": "eager",
        }
        values.update(overrides)
        return AsdaConfig(**values)

    def prepare_config_and_inputs_for_common(self):
        input_values = floats_tensor([self.batch_size, self.num_frames, self.num_mel_bins])
        return self.get_config(), {"input_values": input_values}


class AsdaModelTest(ModelTesterMixin, unittest.TestCase):
    all_model_classes = (AsdaModel, AsdaForAudioClassification, AsdaForAudioFrameClassification)
    test_resize_embeddings = False
    has_attentions = True

    @classmethod
    def setUpClass(cls):
        # The mixin picks labels and training tests from the static name mappings, which `Auto*.register` does not
        # touch; add ASDA to them for this class only.
        modeling_auto.MODEL_MAPPING_NAMES["asda"] = "AsdaModel"
        modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES["asda"] = "AsdaForAudioClassification"
        modeling_auto.MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES["asda"] = "AsdaForAudioFrameClassification"

    @classmethod
    def tearDownClass(cls):
        modeling_auto.MODEL_MAPPING_NAMES.pop("asda")
        modeling_auto.MODEL_FOR_AUDIO_CLASSIFICATION_MAPPING_NAMES.pop("asda")
        modeling_auto.MODEL_FOR_AUDIO_FRAME_CLASSIFICATION_MAPPING_NAMES.pop("asda")

    def setUp(self):
        self.model_tester = AsdaModelTester(self)
        self.config_tester = ConfigTester(
            self, config_class=AsdaConfig, has_text_modality=False, hidden_size=32, num_attention_heads=4
        )

    def _prepare_for_class(self, inputs_dict, model_class, return_labels=False):
        # The mixin builds no labels for audio frame classifiers: give multi-hot targets per time patch.
        inputs_dict = super()._prepare_for_class(inputs_dict, model_class, return_labels)
        if return_labels and model_class is AsdaForAudioFrameClassification:
            tester = self.model_tester
            shape = (tester.batch_size, tester.num_frames // tester.patch_size, tester.num_labels)
            inputs_dict["labels"] = torch.zeros(shape)
        return inputs_dict

    def test_config(self):
        self.config_tester.run_common_tests()

    @unittest.skip("ASDA reads spectrograms through a patch convolution: there are no input embeddings to feed.")
    def test_inputs_embeds(self):
        pass

    def test_model_get_set_embeddings(self):
        # The mixin expects an nn.Embedding; ASDA's input embedding is the patch convolution, as in AST.
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            embeddings = model_class(config).get_input_embeddings()
            self.assertIsInstance(embeddings.projection, torch.nn.Conv2d)

    def test_retain_grad_hidden_states_attentions(self):
        # Differential attention reports A1 - lambda * A2 for inspection but weights the values as
        # A1 V - lambda * A2 V (the same result, one attention call for any backend), so the reported map is not on
        # the gradient path. Standard attention returns the map it uses: run the mixin check on it.
        self.model_tester.attention_type = "standard"
        super().test_retain_grad_hidden_states_attentions()

    def test_forward_signature(self):
        config, _ = self.model_tester.prepare_config_and_inputs_for_common()
        for model_class in self.all_model_classes:
            parameters = list(inspect.signature(model_class(config).forward).parameters)
            self.assertEqual(parameters[0], "input_values")


@pytest.fixture(scope="module")
def golden():
    meta = json.loads((FIXTURES / "tiny_meta.json").read_text())
    return {
        "meta": meta,
        "pretrain_state_dict": load_file(FIXTURES / "tiny_pretrain_state_dict.safetensors"),
        "classifier_state_dict": load_file(FIXTURES / "tiny_classifier_state_dict.safetensors"),
        "inputs": load_file(FIXTURES / "tiny_inputs.safetensors"),
        "outputs": load_file(FIXTURES / "tiny_outputs.safetensors"),
    }


def converted_encoder(golden, attn_implementation):
    config = config_from_fairseq(golden["meta"]["pretrain_model_cfg"], golden["pretrain_state_dict"])
    config._attn_implementation = attn_implementation
    state_dict, _ = convert_state_dict(golden["pretrain_state_dict"], config, "encoder")
    model = AsdaModel(config).eval()
    model.load_state_dict(state_dict, strict=True)
    return model


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_encoder_matches_official_outputs(golden, attn_implementation):
    model = converted_encoder(golden, attn_implementation)
    expected = golden["outputs"]
    with torch.no_grad():
        outputs = model(golden["inputs"]["source"][:, 0], output_hidden_states=True, output_ffn_hidden_states=True)
    torch.testing.assert_close(outputs.last_hidden_state, expected["features.last_hidden_state"], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.stack(outputs.hidden_states), expected["features.hidden_states"], atol=1e-5, rtol=0)
    torch.testing.assert_close(
        torch.stack(outputs.ffn_hidden_states), expected["features.layer_results"], atol=1e-5, rtol=0
    )
    torch.testing.assert_close(outputs.pooler_output, expected["classifier.cls_hidden"], atol=1e-5, rtol=0)


def test_eager_attention_maps_match_official_differential_maps(golden):
    model = converted_encoder(golden, "eager")
    with torch.no_grad():
        outputs = model(golden["inputs"]["source"][:, 0], output_attentions=True)
    combined = torch.stack(outputs.attentions)
    torch.testing.assert_close(combined, golden["outputs"]["features.attention_combined"], atol=1e-6, rtol=0)
    # The spec's sanity property: rows of softmax1 - 0.1 * softmax2 sum to 0.9 and never drop below -0.1.
    torch.testing.assert_close(combined.sum(-1), torch.full(combined.shape[:-1], 0.9), atol=1e-5, rtol=0)
    assert combined.min() >= -0.1


def test_classifier_matches_official_logits(golden):
    meta = golden["meta"]
    config = config_from_fairseq(meta["pretrain_model_cfg"], golden["pretrain_state_dict"], meta["classifier_cfg"])
    state_dict, dropped = convert_state_dict(golden["classifier_state_dict"], config, "classifier")
    assert dropped == []
    model = AsdaForAudioClassification(config).eval()
    model.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        logits = model(golden["inputs"]["source"][:, 0]).logits
    torch.testing.assert_close(logits, golden["outputs"]["classifier.logits"], atol=1e-5, rtol=0)
    assert config.problem_type == "multi_label_classification"  # the AS-20K recipe


def test_eager_and_sdpa_agree_on_a_padded_batch():
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=224,
                        max_time_patches=32, decoder_hidden_size=64)
    model = AsdaModel(config).eval()
    input_values = torch.randn(3, 256, 128)
    attention_mask = torch.ones(3, 256, dtype=torch.long)
    attention_mask[1, 100:] = 0
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model.set_attn_implementation(implementation)
        with torch.no_grad():
            outputs[implementation] = model(input_values, attention_mask=attention_mask).last_hidden_state
    torch.testing.assert_close(outputs["eager"], outputs["sdpa"], atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling_mode", ["cls", "mean"])
def test_padded_batch_pools_like_each_clip_alone(pooling_mode):
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=224,
                        max_time_patches=128, decoder_hidden_size=64, pooling_mode=pooling_mode)
    model = AsdaModel(config).eval()
    lengths = [96, 1024, 496]  # frames: multiples of 16 as AsdaFeatureExtractor pads them
    pad_value = 0.467  # a normalised zero, what the feature extractor pads with
    clips = [torch.randn(length, 128) for length in lengths]
    batch = torch.full((3, max(lengths), 128), pad_value)
    attention_mask = torch.zeros(3, max(lengths), dtype=torch.long)
    for row, clip in enumerate(clips):
        batch[row, : len(clip)] = clip
        attention_mask[row, : len(clip)] = 1
    with torch.no_grad():
        pooled = model(batch, attention_mask=attention_mask).pooler_output
        alone = torch.cat([model(clip[None]).pooler_output for clip in clips])
    torch.testing.assert_close(pooled, alone, atol=1e-5, rtol=0)


def test_patch_level_mask_equals_frame_level_mask():
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        max_time_patches=16, decoder_hidden_size=32)
    model = AsdaModel(config).eval()
    input_values = torch.randn(2, 160, 128)
    frame_mask = torch.ones(2, 160, dtype=torch.long)
    frame_mask[0, 70:] = 0  # frames 64..69 are real, so time patch 4 stays
    patch_mask = torch.ones(2, 10, 8, dtype=torch.long)
    patch_mask[0, 5:] = 0
    with torch.no_grad():
        by_frames = model(input_values, attention_mask=frame_mask).last_hidden_state
        by_patches = model(input_values, attention_mask=patch_mask.flatten(1)).last_hidden_state
    torch.testing.assert_close(by_frames, by_patches, atol=0, rtol=0)


@pytest.mark.parametrize("seconds", [1, 5, 10, 120])
def test_any_length_up_to_the_position_table(seconds):
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32)
    model = AsdaModel(config).eval()
    num_frames = -(-seconds * 100 // 16) * 16  # 100 frames per second, rounded up to whole patches
    with torch.no_grad():
        outputs = model(torch.randn(1, num_frames, 128))
    assert outputs.last_hidden_state.shape == (1, 1 + num_frames // 16 * 8, 32)


def tiny_encoder():
    return AsdaModel(AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                                decoder_hidden_size=32))


@pytest.mark.parametrize(
    ("shape", "message"),
    [((1, 1000, 128), "multiple of patch_size"), ((1, 1024, 64), "must have shape"), ((1, 12304, 128), "up to 12288")],
)
def test_bad_input_values_are_rejected_with_the_reason(shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_encoder()(torch.zeros(shape))


@pytest.mark.parametrize("mask_shape", [(3, 64), (1, 64), (64,), (2, 4, 16)])
def test_attention_mask_of_another_batch_or_rank_is_rejected_naming_both_shapes(mask_shape):
    # (3, 64) and (1, 64) used to be broadcast or silently accepted for a batch of 2.
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(batch_size=2, length\)") as error:
        tiny_encoder()(torch.zeros(2, 64, 128), attention_mask=torch.ones(mask_shape, dtype=torch.long))
    assert "input_values of shape (2, 64, 128)" in str(error.value)
    assert f"got {mask_shape}" in str(error.value)


def test_attention_mask_of_another_length_is_rejected():
    with pytest.raises(ValueError, match=re.escape("the 64 frames, the 32 patches or the 33 tokens of input_values, "
                                                   "got shape (2, 50)")):
        tiny_encoder()(torch.zeros(2, 64, 128), attention_mask=torch.ones(2, 50, dtype=torch.long))


def test_base_and_eat_parameter_counts_match_the_spec():
    with torch.device("meta"):
        asda = AsdaModel(AsdaConfig())
        eat = AsdaModel(AsdaConfig(attention_type="standard", intermediate_size=3072))
    # ASDA-base encoder 92.36M and EAT-base 85.25M (spec section 2.3); the buffer table is not a parameter.
    assert abs(sum(p.numel() for p in asda.parameters()) / 1e6 - 92.36) < 0.05
    assert abs(sum(p.numel() for p in eat.parameters()) / 1e6 - 85.25) < 0.05


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"hidden_size": 100}, "divisible by num_attention_heads"),
        ({"attention_type": "linear"}, "attention_type"),
        ({"pooling_mode": "max"}, "pooling_mode"),
        ({"num_mel_bins": 120}, "multiple of patch_size"),
        ({"mask_ratio": 1.0}, "mask_ratio"),
        ({"num_target_layers": 13}, "num_target_layers"),
        ({"ema_decay": 0.9999, "ema_end_decay": 0.999}, "EMA decays"),
        ({"decoder_kernel_size": 4}, "odd"),
        ({"hidden_size": 21, "num_attention_heads": 7, "decoder_hidden_size": 21, "decoder_groups": 7},
         "multiple of 4"),
        ({"num_attention_heads": 0}, "num_attention_heads must be positive, got 0"),
        ({"num_hidden_layers": 0}, "num_hidden_layers must be positive, got 0"),
        ({"hidden_size": -768}, "hidden_size must be positive, got -768"),
        ({"intermediate_size": 0}, "intermediate_size must be positive, got 0"),
        ({"num_mel_bins": 0}, "num_mel_bins must be positive, got 0"),
        ({"patch_size": 0}, "patch_size must be positive, got 0"),
        ({"max_time_patches": 0}, "max_time_patches must be positive, got 0"),
        ({"mask_block_size": 0}, "mask_block_size must be positive, got 0"),
        ({"clone_batch": 0}, "clone_batch must be positive, got 0"),
        ({"decoder_hidden_size": 0}, "decoder_hidden_size must be positive, got 0"),
        ({"decoder_num_layers": 0}, "decoder_num_layers must be positive, got 0"),
        ({"decoder_kernel_size": -1}, "decoder_kernel_size must be positive, got -1"),
        ({"decoder_groups": 0}, "decoder_groups must be positive, got 0"),
    ],
)
def test_inconsistent_config_raises_value_error(overrides, message):
    with pytest.raises(ValueError, match=message):
        AsdaConfig(**overrides)


def test_config_broken_after_construction_is_refused_by_the_strict_validation(tmp_path):
    # @strict runs `validate_architecture` again on `validate()`, which `save_pretrained` calls.
    config = AsdaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64,
                        decoder_hidden_size=32)
    config.num_attention_heads = 0
    message = re.escape("num_attention_heads must be positive, got 0.")
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        config.validate()
    with pytest.raises(StrictDataclassClassValidationError, match=message):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "config.json").exists()
