"""Weight init of freshly built and partly loaded models against the official init (spec 2.2, 2.6 and 4.1).

Every parameter and buffer is assigned to one family and its statistics are checked against the distribution the
official code draws it from; a name that fits no family fails the test. Tolerances are five standard errors of the
statistic for the tensor's number of elements.
"""

import math
import re

import pytest
import torch

from modeling_asda import AsdaConfig, AsdaForAudioClassification, AsdaForPreTraining, AsdaModel


TWO_SIGMA_TAIL = math.erfc(math.sqrt(2))  # P(|z| > 2) for a standard normal: 4.55 %


def normal_problems(values: torch.Tensor, std: float) -> list[str]:
    """Mean 0, standard deviation `std` and the normal's 2-sigma tail mass, within 5 standard errors."""
    n = values.numel()
    problems = []
    if abs(values.mean()) > 5 * std / math.sqrt(n):
        problems.append(f"mean {values.mean():.2e}, expected 0 +- {5 * std / math.sqrt(n):.1e}")
    if abs(values.std() - std) > 5 * std / math.sqrt(2 * n):
        problems.append(f"std {values.std():.5f}, expected {std} +- {5 * std / math.sqrt(2 * n):.1e}")
    tail = (values.abs() > 2 * std).double().mean()
    tail_tolerance = 5 * math.sqrt(TWO_SIGMA_TAIL * (1 - TWO_SIGMA_TAIL) / n)
    if abs(tail - TWO_SIGMA_TAIL) > tail_tolerance:
        problems.append(f"{tail:.4f} of |w| beyond 2 std, expected {TWO_SIGMA_TAIL:.4f} +- {tail_tolerance:.4f}")
    return problems


def uniform_problems(values: torch.Tensor, bound: float) -> list[str]:
    """U(-bound, bound): max |w| in (0.95 bound, bound], mean 0 and std bound / sqrt(3) within 5 standard errors."""
    n = values.numel()
    problems = []
    largest = values.abs().max()
    if not 0.95 * bound < largest <= bound * (1 + 1e-6):
        problems.append(f"max |w| {largest:.5f}, expected in (0.95, 1] x bound {bound:.5f}")
    if abs(values.mean()) > 5 * bound / math.sqrt(3 * n):
        problems.append(f"mean {values.mean():.2e}, expected 0 +- {5 * bound / math.sqrt(3 * n):.1e}")
    std, std_tolerance = bound / math.sqrt(3), 5 * bound / math.sqrt(15 * n)  # sd of the sample std of a uniform
    if abs(values.std() - std) > std_tolerance:
        problems.append(f"std {values.std():.5f}, expected bound / sqrt(3) = {std:.5f} +- {std_tolerance:.1e}")
    return problems


def constant_problems(values: torch.Tensor, value: float) -> list[str]:
    if not torch.equal(values, torch.full_like(values, value)):
        return [f"expected all {value}, got values in [{values.min():.4g}, {values.max():.4g}]"]
    return []


def official_position_table(num_time_patches: int, num_frequency_patches: int, dim: int) -> torch.Tensor:
    """Spec 2.1 in float64: channels [sin(f w), cos(f w), sin(t w), cos(t w)], w_i = 10000^(-i / (dim / 4))."""
    omega = 10000.0 ** (-torch.arange(dim // 4, dtype=torch.float64) / (dim // 4))
    time, frequency = torch.meshgrid(
        torch.arange(num_time_patches, dtype=torch.float64),
        torch.arange(num_frequency_patches, dtype=torch.float64),
        indexing="ij",
    )  # row-major over (time, frequency): row t * F + f
    time_angles, frequency_angles = time.reshape(-1, 1) * omega, frequency.reshape(-1, 1) * omega
    return torch.cat([frequency_angles.sin(), frequency_angles.cos(), time_angles.sin(), time_angles.cos()], dim=1)


def position_problems(table: torch.Tensor, config: AsdaConfig) -> list[str]:
    expected = official_position_table(config.max_time_patches, config.num_frequency_patches, config.hidden_size)
    # float32 angles up to max_time_patches carry a rounding error of about eps * angle.
    tolerance = 4 * torch.finfo(torch.float32).eps * config.max_time_patches
    error = (table.detach().double().reshape(expected.shape) - expected).abs().max()
    return [] if error <= tolerance else [f"differs from the sin-cos formula by {error:.2e} > {tolerance:.1e}"]


def pytorch_default_bound(fan_in: int) -> float:
    """Bound of PyTorch's default Linear/Conv init: kaiming_uniform(a=sqrt(5)) weights and the bias both give
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return 1 / math.sqrt(fan_in)


def official_init_problems(name: str, tensor: torch.Tensor, config: AsdaConfig) -> list[str]:
    """Problems of one tensor of an encoder (`asda.` prefix dropped), the classification head or the decoder."""
    values = tensor.detach().double().flatten()
    patch_fan_in = config.patch_size**2
    decoder_conv_fan_in = config.decoder_hidden_size // config.decoder_groups * config.decoder_kernel_size**2
    families = [
        # Xavier-uniform over the (hidden, patch_size^2) view of the patch conv, PyTorch's default bias.
        (r"embeddings\.patch_embeddings\.projection\.weight",
         lambda: uniform_problems(values, math.sqrt(6 / (patch_fan_in + config.hidden_size)))),
        (r"embeddings\.patch_embeddings\.projection\.bias",
         lambda: uniform_problems(values, pytorch_default_bound(patch_fan_in))),
        (r"embeddings\.cls_token", lambda: normal_problems(values, 1.0)),
        (r"embeddings\.position_embeddings", lambda: position_problems(tensor, config)),
        # BERT init of every encoder linear; trunc_normal(std 0.02) of the classifier, truncated at +-2 (100 std).
        (r"layers\.\d+\.(attention\.(qkv|o)_proj|mlp\.fc[12])\.weight|classifier\.weight",
         lambda: normal_problems(values, config.initializer_range)),
        (r"layers\.\d+\.(attention\.(qkv|o)_proj|mlp\.fc[12])\.bias|classifier\.bias",
         lambda: constant_problems(values, 0.0)),
        (r"(embeddings\.layernorm|layers\.\d+\.(attention\.head_norm|post_attention_layernorm|post_mlp_layernorm)"
         r"|fc_norm)\.weight", lambda: constant_problems(values, 1.0)),
        (r"(embeddings\.layernorm|layers\.\d+\.(attention\.head_norm|post_attention_layernorm|post_mlp_layernorm)"
         r"|fc_norm)\.bias", lambda: constant_problems(values, 0.0)),
        # The pre-training decoder keeps PyTorch's default init.
        (r"decoder\.layers\.\d+\.conv\.(weight|bias)",
         lambda: uniform_problems(values, pytorch_default_bound(decoder_conv_fan_in))),
        (r"decoder\.proj\.(weight|bias)",
         lambda: uniform_problems(values, pytorch_default_bound(config.decoder_hidden_size))),
    ]
    matches = [check for pattern, check in families if re.fullmatch(pattern, name)]
    if len(matches) != 1:
        return [f"belongs to {len(matches)} init families, expected exactly one"]
    return matches[0]()


def init_report(model: torch.nn.Module, config: AsdaConfig) -> dict[str, list[str]]:
    """name -> problems for every parameter and buffer of the model; the teacher must equal the student exactly."""
    tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    report = {}
    for name, tensor in tensors.items():
        if name.startswith("teacher."):
            student = tensors["asda." + name.removeprefix("teacher.")]
            problems = [] if torch.equal(tensor, student) else ["differs from the student's"]
        else:
            problems = official_init_problems(name.removeprefix("asda."), tensor, config)
        if problems:
            report[name] = problems
    return report


def assert_official_init(model: torch.nn.Module, config: AsdaConfig, skip_prefix: str | None = None):
    report = {name: problems for name, problems in init_report(model, config).items()
              if skip_prefix is None or not name.startswith(skip_prefix)}
    assert not report, "not the official init:\n" + "\n".join(
        f"  {name}: {'; '.join(problems)}" for name, problems in report.items()
    )


def base_width_config(**overrides) -> AsdaConfig:
    # ASDA-base widths (768 channels, 16x16 patches, 48-channel decoder groups) give the official init bounds; one
    # block, a narrower MLP and a short position table keep the models small.
    values = {"num_hidden_layers": 1, "intermediate_size": 1024, "decoder_num_layers": 2, "max_time_patches": 64,
              "num_labels": 10}
    return AsdaConfig(**{**values, **overrides})


MODEL_CLASSES = [AsdaModel, AsdaForAudioClassification, AsdaForPreTraining]


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_fresh_model_has_the_official_init(model_class):
    config = base_width_config()
    torch.manual_seed(0)
    assert_official_init(model_class(config), config)


def test_fresh_standard_attention_encoder_has_the_official_init():
    config = base_width_config(attention_type="standard")
    torch.manual_seed(0)
    assert_official_init(AsdaModel(config), config)


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_weights_missing_from_the_checkpoint_get_the_official_init(model_class):
    config = base_width_config()
    torch.manual_seed(0)
    model = model_class.from_pretrained(None, config=config, state_dict={})
    assert_official_init(model, config)


SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 96,
         "decoder_hidden_size": 64, "decoder_num_layers": 2, "max_time_patches": 16, "num_labels": 5}


@pytest.mark.parametrize("model_class", MODEL_CLASSES)
def test_loading_a_saved_model_keeps_every_weight(model_class, tmp_path):
    torch.manual_seed(0)
    model = model_class(AsdaConfig(**SMALL))
    with torch.no_grad():  # as after training: no tensor holds its init, and the teacher differs from the student
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter))
    model.save_pretrained(tmp_path)
    torch.manual_seed(1)  # a re-init would draw different values
    loaded = model_class.from_pretrained(tmp_path).state_dict()
    changed = [name for name, tensor in model.state_dict().items() if not torch.equal(loaded[name], tensor)]
    assert not changed, f"changed when loaded: {changed}"


@pytest.mark.parametrize("head_class", [AsdaForAudioClassification, AsdaForPreTraining])
def test_heads_on_a_saved_encoder_init_only_what_is_missing(head_class, tmp_path):
    """Fine-tuning or continued pre-training from an encoder: the loaded encoder is untouched, the new head gets the
    official init, and a missing teacher starts as a copy of the loaded student."""
    config = base_width_config()
    torch.manual_seed(0)
    encoder = AsdaModel(config)
    encoder.save_pretrained(tmp_path)
    torch.manual_seed(1)
    model = head_class.from_pretrained(tmp_path)
    loaded = model.asda.state_dict()
    changed = [name for name, tensor in encoder.state_dict().items() if not torch.equal(loaded[name], tensor)]
    assert not changed, f"changed when loaded: {changed}"
    assert_official_init(model, model.config, skip_prefix="asda.")
