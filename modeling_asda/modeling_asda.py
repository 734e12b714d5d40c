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
"""PyTorch ASDA: a ViT-style audio-spectrogram encoder with differential attention (Wang et al., Interspeech 2025).

The path from spectrogram to logits:
    (batch, frames, mel) -> 16x16 patches, time-major -> + fixed 2-D sin-cos positions -> [CLS; patches] -> LayerNorm
    -> post-LayerNorm blocks (differential attention, GELU MLP) -> CLS -> LayerNorm -> Linear.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.masking_utils import create_bidirectional_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput, TokenClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import ModelOutput, TransformersKwargs
from transformers.utils.generic import can_return_tuple, merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_asda import AsdaConfig


@dataclass
class AsdaModelOutput(BaseModelOutputWithPooling):
    r"""
    last_hidden_state (`torch.FloatTensor` of shape `(batch_size, 1 + num_patches, hidden_size)`):
        Output of the last block: the CLS token, then the patch tokens in time-major order (index `t * 8 + f`).
    pooler_output (`torch.FloatTensor` of shape `(batch_size, hidden_size)`):
        The CLS token (`pooling_mode="cls"`) or the mean of the real patch tokens (`pooling_mode="mean"`).
    hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
        Output of the input LayerNorm, then of every block.
    attentions (`tuple(torch.FloatTensor)`, *optional*, returned with `output_attentions=True` and eager attention):
        Per block, the attention map that multiplies the values, of shape `(batch_size, num_heads, seq_len, seq_len)`:
        `softmax(Q1 K1^T) - lambda * softmax(Q2 K2^T)` for differential attention.
    ffn_hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_ffn_hidden_states=True`):
        Per block, the MLP output before the residual sum and the LayerNorm: the pre-training targets of data2vec/EAT.
    """

    ffn_hidden_states: tuple[torch.FloatTensor, ...] | None = None


@dataclass
class AsdaForPreTrainingOutput(ModelOutput):
    r"""
    loss (`torch.FloatTensor` of shape `()`):
        `frame_loss + utterance_loss`, the official objective (fairseq's loss divided by the masked-patch count).
    frame_loss (`torch.FloatTensor` of shape `()`):
        Frame term: mean over masked patches of `sum_c (prediction - target)^2 / sqrt(hidden_size)`, weighted.
    utterance_loss (`torch.FloatTensor` of shape `()`):
        Utterance term: `utterance_loss_weight` times the *sum* (`utterance_loss_reduction="sum"`, the official
        weighting, spec 3.4) or the *mean* (`"mean"`) over the `batch_size * clones` student rows of
        `sum_c (CLS - mean target)^2 / sqrt(hidden_size)`.
    logits (`torch.FloatTensor` of shape `(batch_size * clones, num_patches, hidden_size)`):
        The decoder's predictions at every patch (the loss uses the masked ones).
    targets (`torch.FloatTensor` of shape `(batch_size, num_patches, hidden_size)`):
        The teacher's targets: normalised MLP outputs of its layers, averaged, then LayerNorm-ed.
    mask (`torch.BoolTensor` of shape `(batch_size * clones, num_patches)`):
        True where a patch was hidden from the student.
    hidden_states, attentions: the student's, when requested.
    """

    loss: torch.FloatTensor | None = None
    frame_loss: torch.FloatTensor | None = None
    utterance_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    targets: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


def inverse_block_mask(
    batch_size: int,
    num_time_patches: int,
    num_frequency_patches: int,
    mask_ratio: float,
    block_size: int,
    prob_adjust: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    min_blocks: int = 0,
) -> torch.BoolTensor:
    """EAT's inverse block masking of a `(time, frequency)` patch grid; returns `(batch, T * F)`, True = masked.

    Per row: draw `max(min_blocks, int(L * (keep + prob_adjust) / block_size^2))` block centres uniformly with
    replacement, keep the `block_size` x `block_size` block around each (clipped at the grid border), then keep extra
    random patches or drop random block patches until exactly `int(L * keep)` are kept, `keep = 1 - mask_ratio`.
    With the official `min_blocks=0`, a grid of fewer than `block_size^2 / (keep + prob_adjust)` patches (93 with
    the official values: clips under ~1.9 s) gets no block, and the kept patches are scattered at random.
    """
    num_patches = num_time_patches * num_frequency_patches
    keep_ratio = 1.0 - mask_ratio
    num_kept = int(num_patches * keep_ratio)
    num_centres = max(min_blocks, int(num_patches * (keep_ratio + prob_adjust) / block_size**2))
    centres = torch.randint(0, num_patches, (batch_size, num_centres), generator=generator, device=device)
    offsets = torch.arange(block_size, device=device) - block_size // 2
    block_time = (centres[:, :, None] // num_frequency_patches + offsets).clamp(0, num_time_patches - 1)
    block_frequency = (centres[:, :, None] % num_frequency_patches + offsets).clamp(0, num_frequency_patches - 1)
    block_cells = block_time[:, :, :, None] * num_frequency_patches + block_frequency[:, :, None, :]
    in_block = torch.zeros(batch_size, num_patches, device=device)
    in_block.scatter_(1, block_cells.flatten(1), 1.0)
    # Block cells outrank all others, and random scores decide which block cells to drop or which others to add:
    # the top `num_kept` are exactly the official rule's uniform choices.
    priority = in_block + torch.rand(batch_size, num_patches, generator=generator, device=device)
    mask = torch.ones(batch_size, num_patches, dtype=torch.bool, device=device)
    mask.scatter_(1, priority.topk(num_kept, dim=1).indices, False)
    return mask


def sincos_position_table(num_time_patches: int, num_frequency_patches: int, dim: int) -> torch.Tensor:
    """Fixed 2-D sin-cos table of shape `(num_time_patches * num_frequency_patches, dim)`, rows in time-major order.

    As in the official (MAE-derived) code, the first `dim / 2` channels encode the frequency-patch index and the last
    `dim / 2` the time-patch index, each as `[sin(pos * w_i), cos(pos * w_i)]` with `w_i = 10000^(-i / (dim / 4))`.
    """
    quarter = dim // 4
    omega = 1.0 / 10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter)

    def encode(positions: torch.Tensor) -> torch.Tensor:
        angles = positions.float()[:, None] * omega[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=1)

    time_index = torch.arange(num_time_patches).repeat_interleave(num_frequency_patches)
    frequency_index = torch.arange(num_frequency_patches).repeat(num_time_patches)
    return torch.cat([encode(frequency_index), encode(time_index)], dim=1)


def init_bias_like_pytorch(layer: nn.Linear | nn.Conv2d):
    """PyTorch's default bias init of a linear layer or convolution: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = layer.weight[0].numel() ** -0.5
    init.uniform_(layer.bias, -bound, bound)


def drop_path(hidden_states: torch.Tensor, drop_prob: float, training: bool) -> torch.Tensor:
    """Stochastic depth: drop the whole residual branch of a sample with probability `drop_prob`."""
    if drop_prob == 0.0 or not training:
        return hidden_states
    keep_prob = 1.0 - drop_prob
    keep = hidden_states.new_empty((hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)).bernoulli_(keep_prob)
    return hidden_states * keep / keep_prob


class AsdaPatchEmbeddings(nn.Module):
    """Cut the `(batch, frames, mel)` spectrogram into non-overlapping square patches, flattened time-major."""

    def __init__(self, config: AsdaConfig):
        super().__init__()
        self.projection = nn.Conv2d(1, config.hidden_size, kernel_size=config.patch_size, stride=config.patch_size)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        # Time is the image height, so flattening (time, frequency) gives patch index t * num_frequency_patches + f.
        return self.projection(input_values.unsqueeze(1)).flatten(2).transpose(1, 2)


class AsdaEmbeddings(nn.Module):
    """Patch embeddings + fixed 2-D positions, the CLS token (which gets no position) and the input LayerNorm."""

    def __init__(self, config: AsdaConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = AsdaPatchEmbeddings(config)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        # A persistent buffer so that converted checkpoints keep the official table bit for bit.
        self.register_buffer("position_embeddings", self.position_table(config))
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    @staticmethod
    def position_table(config: AsdaConfig) -> torch.Tensor:
        table = sincos_position_table(config.max_time_patches, config.num_frequency_patches, config.hidden_size)
        return table.unsqueeze(0).to(torch.get_default_dtype())

    def forward(self, input_values: torch.Tensor, kept_patch_indices: torch.LongTensor | None = None) -> torch.Tensor:
        patches = self.patch_embeddings(input_values)
        patches = patches + self.position_embeddings[:, : patches.shape[1]]
        if kept_patch_indices is not None:
            # Row r of `kept_patch_indices` selects patches of clip r // clones (clones of a clip are adjacent).
            clones = kept_patch_indices.shape[0] // patches.shape[0]
            clip_of_row = torch.arange(patches.shape[0], device=patches.device).repeat_interleave(clones)
            patches = patches[clip_of_row[:, None], kept_patch_indices]
        cls_tokens = self.cls_token.expand(patches.shape[0], -1, -1)
        return self.layernorm(torch.cat([cls_tokens, patches], dim=1))


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = F.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
    attn_weights = F.dropout(attn_weights, p=dropout, training=module.training)
    attn_output = torch.matmul(attn_weights, value).transpose(1, 2).contiguous()
    return attn_output, attn_weights


class AsdaAttention(nn.Module):
    """Multi-head self-attention, differential (ASDA) or standard (EAT).

    Differential, per head h with value V_h:
        out_h = (softmax(Q1_h K1_h^T / sqrt(d)) - lambda * softmax(Q2_h K2_h^T / sqrt(d))) V_h
        out = o_proj(scale * LayerNorm(concat_h out_h))
    One projection gives `[Q1 | Q2 | K1 | K2 | V]`, i.e. 2H query/key heads and H value heads of size d = hidden / H.
    Both maps of a head read the same values, so each map is one call of the attention interface over the same V
    (any backend applies, with no attention matrix materialised outside eager, and no copy of V) and the difference
    is taken on the outputs: A1 V - lambda A2 V = (A1 - lambda A2) V.
    """

    def __init__(self, config: AsdaConfig):
        super().__init__()
        self.config = config
        self.is_causal = False
        self.num_heads = config.num_attention_heads
        self.head_dim = config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.is_differential = config.attention_type == "differential"
        self.maps_per_head = 2 if self.is_differential else 1
        self.qkv_proj = nn.Linear(
            config.hidden_size, (2 * self.maps_per_head + 1) * config.hidden_size, bias=config.qkv_bias
        )
        if self.is_differential:
            self.differential_lambda = config.differential_lambda
            self.output_scale = config.differential_output_scale
            self.head_norm = nn.LayerNorm(config.hidden_size, eps=config.differential_norm_eps)
        self.o_proj = nn.Linear(config.hidden_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        batch_size, seq_len, hidden_size = hidden_states.shape
        qkv = self.qkv_proj(hidden_states).view(batch_size, seq_len, -1, self.head_dim).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )

        def attend(query, key, value):
            return attention_interface(
                self,
                query,
                key,
                value,
                attention_mask,
                dropout=self.config.attention_probs_dropout_prob if self.training else 0.0,
                scaling=self.scaling,
                **kwargs,
            )

        if self.is_differential:
            query1, query2, key1, key2, value = qkv.chunk(5, dim=1)
            (first, first_map), (second, second_map) = attend(query1, key1, value), attend(query2, key2, value)
            attn_output = torch.sub(first, second, alpha=self.differential_lambda).reshape(batch_size, seq_len, -1)
            attn_output = self.scaled_head_norm(attn_output)
            attn_weights = None if first_map is None else first_map - self.differential_lambda * second_map
        else:
            attn_output, attn_weights = attend(*qkv.chunk(3, dim=1))
            attn_output = attn_output.reshape(batch_size, seq_len, hidden_size)
        return self.dropout(self.o_proj(attn_output)), attn_weights

    def scaled_head_norm(self, attn_output: torch.Tensor) -> torch.Tensor:
        """`head_norm(attn_output) * output_scale` in one pass: the scale folded into the LayerNorm's affine."""
        norm = self.head_norm
        weight, bias = norm.weight * self.output_scale, norm.bias * self.output_scale
        return F.layer_norm(attn_output, norm.normalized_shape, weight, bias, norm.eps)


class AsdaMLP(nn.Module):
    def __init__(self, config: AsdaConfig):
        super().__init__()
        self.fc1 = nn.Linear(config.hidden_size, config.intermediate_size)
        self.activation_fn = ACT2FN[config.hidden_act]
        self.activation_dropout = nn.Dropout(config.activation_dropout)
        self.fc2 = nn.Linear(config.intermediate_size, config.hidden_size)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_dropout(self.activation_fn(self.fc1(hidden_states)))
        return self.dropout(self.fc2(hidden_states))


class AsdaLayer(GradientCheckpointingLayer):
    """Post-LayerNorm block: `x = LN(x + attn(x)); x = LN(x + mlp(x))`. Also returns the MLP output (EAT's targets)."""

    def __init__(self, config: AsdaConfig, drop_path_rate: float = 0.0):
        super().__init__()
        self.attention = AsdaAttention(config)
        self.post_attention_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.mlp = AsdaMLP(config)
        self.post_mlp_layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.drop_path_rate = drop_path_rate

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        attn_output, _ = self.attention(hidden_states, attention_mask, **kwargs)
        hidden_states = self.post_attention_layernorm(
            hidden_states + drop_path(attn_output, self.drop_path_rate, self.training)
        )
        ffn_output = self.mlp(hidden_states)
        hidden_states = self.post_mlp_layernorm(
            hidden_states + drop_path(ffn_output, self.drop_path_rate, self.training)
        )
        return hidden_states, ffn_output


class AsdaDecoderLayer(nn.Module):
    """Grouped 2-D convolution over the patch grid -> LayerNorm over channels (no affine) -> activation."""

    def __init__(self, config: AsdaConfig, in_channels: int):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels,
            config.decoder_hidden_size,
            kernel_size=config.decoder_kernel_size,
            padding=config.decoder_kernel_size // 2,
            groups=config.decoder_groups,
        )
        self.norm_eps = config.decoder_norm_eps
        self.activation_fn = ACT2FN[config.hidden_act]

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        grid = self.conv(grid).permute(0, 2, 3, 1)
        grid = F.layer_norm(grid, grid.shape[-1:], eps=self.norm_eps).permute(0, 3, 1, 2)
        return self.activation_fn(grid)


class AsdaDecoder(nn.Module):
    """EAT's lightweight CNN decoder: residual conv layers over the (time, frequency) patch grid, then a linear map."""

    def __init__(self, config: AsdaConfig):
        super().__init__()
        in_channels = [config.hidden_size] + [config.decoder_hidden_size] * (config.decoder_num_layers - 1)
        self.layers = nn.ModuleList([AsdaDecoderLayer(config, channels) for channels in in_channels])
        self.proj = nn.Linear(config.decoder_hidden_size, config.hidden_size)

    def forward(self, patch_tokens: torch.Tensor, num_time_patches: int) -> torch.Tensor:
        batch_size, num_patches, hidden_size = patch_tokens.shape
        grid = patch_tokens.transpose(1, 2).reshape(batch_size, hidden_size, num_time_patches, -1)
        for layer in self.layers:
            output = layer(grid)
            grid = output + grid if output.shape == grid.shape else output
        return self.proj(grid.flatten(2).transpose(1, 2))


class AsdaPreTrainedModel(PreTrainedModel):
    config: AsdaConfig
    base_model_prefix = "asda"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["AsdaEmbeddings", "AsdaLayer", "AsdaDecoder"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    _can_compile_fullgraph = True
    _can_record_outputs = {
        "hidden_states": AsdaLayer,
        "attentions": AsdaAttention,
        "ffn_hidden_states": OutputRecorder(AsdaLayer, index=1),
    }
    _input_embed_layer = "patch_embeddings"

    def _init_weights(self, module: nn.Module):
        """BERT init (normal(0, `initializer_range`) weights, zero biases) of linear layers, ones/zeros LayerNorms,
        N(0, 1) CLS token and the fixed sin-cos positions.

        The model that owns a layer with another official init overrides this for that layer: `AsdaModel` (patch
        convolution), `AsdaForAudioClassification` (classifier), `AsdaForAudioFrameClassification` (frame classifier),
        `AsdaForPreTraining` (decoder). Those overrides key on the `Conv2d` / `Linear` itself: transformers skips this
        method for a custom-code module that owns no tensors of its own, such as `AsdaPatchEmbeddings` or
        `AsdaDecoder`.
        """
        super()._init_weights(module)
        if isinstance(module, AsdaEmbeddings):
            init.normal_(module.cls_token, std=1.0)
            init.copy_(module.position_embeddings, module.position_table(module.config))

    def freeze_feature_encoder(self):
        """Freeze the patch embedding (the only 'feature encoder' of a spectrogram transformer)."""
        self.base_model.embeddings.patch_embeddings.requires_grad_(False)

    def save_pretrained(self, save_directory, *args, **kwargs):
        """`PreTrainedModel.save_pretrained`, writing a Hub-ready folder: weights, config and this code.

        transformers names only the saved class in `config.auto_map`; every ASDA Auto class is named here (entries
        already present win, e.g. a pointer to a shared code repo), so that one folder loads through `AutoConfig`,
        `AutoModel`, `AutoModelForAudioClassification`, `AutoModelForAudioFrameClassification` and
        `AutoModelForPreTraining` with `trust_remote_code=True`.
        """
        self.config.auto_map = {**hub_auto_map(), **(getattr(self.config, "auto_map", None) or {})}
        return super().save_pretrained(save_directory, *args, **kwargs)


class AsdaModel(AsdaPreTrainedModel):
    # A pre-training folder holds the student under this model's prefix; its teacher and decoder are not needed here.
    _keys_to_ignore_on_load_unexpected = [r"^teacher\.", r"^decoder\."]

    def __init__(self, config: AsdaConfig):
        super().__init__(config)
        self.config = config
        self.embeddings = AsdaEmbeddings(config)
        # Stochastic depth rises linearly from 0 at the first block to drop_path_rate at the last.
        last = max(config.num_hidden_layers - 1, 1)
        self.layers = nn.ModuleList(
            [AsdaLayer(config, config.drop_path_rate * index / last) for index in range(config.num_hidden_layers)]
        )
        self.post_init()

    def get_input_embeddings(self) -> AsdaPatchEmbeddings:
        return self.embeddings.patch_embeddings

    def _init_weights(self, module: nn.Module):
        if module is self.embeddings.patch_embeddings.projection:
            # Official: Xavier-uniform over the kernel viewed as a (hidden_size, patch_size**2) matrix, default bias.
            fan_out, fan_in = module.weight.shape[0], module.weight[0].numel()
            bound = math.sqrt(6 / (fan_in + fan_out))
            init.uniform_(module.weight, -bound, bound)
            init_bias_like_pytorch(module)
        else:
            super()._init_weights(module)

    @merge_with_config_defaults
    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        kept_patch_indices: torch.LongTensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> AsdaModelOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Normalised log-mel spectrograms from [`AsdaFeatureExtractor`]. `num_frames` must be a multiple of
            `patch_size` (16) and at most `max_time_patches * patch_size`.
        attention_mask (`torch.LongTensor`, *optional*):
            1 for real, 0 for padding, per frame `(batch_size, num_frames)`, per patch `(batch_size, num_patches)`
            or per token `(batch_size, 1 + num_patches)` (CLS first). A time patch holding any real frame is attended
            to; the frame reading wins where two of these sizes coincide. Without a mask every patch is attended to,
            as in the official code.
        kept_patch_indices (`torch.LongTensor` of shape `(batch_size * clones, num_kept)`, *optional*):
            Run the encoder on these patches only (the pre-training student). Rows `c * k ... c * k + k - 1` read clip
            `c`, `k = rows / batch_size`; the rest of the patches are dropped.
        """
        self._check_input_values(input_values)
        hidden_states = self.embeddings(input_values, kept_patch_indices)

        token_mask = None
        if attention_mask is not None:
            if kept_patch_indices is not None:
                raise ValueError("attention_mask and kept_patch_indices cannot be combined.")
            token_mask = self._token_attention_mask(attention_mask, input_values)
        mask = create_bidirectional_mask(config=self.config, inputs_embeds=hidden_states, attention_mask=token_mask)

        for layer in self.layers:
            hidden_states, _ = layer(hidden_states, mask, **kwargs)

        if self.config.pooling_mode == "cls":
            pooled = hidden_states[:, 0]
        else:
            patch_tokens = hidden_states[:, 1:]
            if token_mask is None:
                pooled = patch_tokens.mean(dim=1)
            else:
                weights = token_mask[:, 1:, None].to(patch_tokens.dtype)
                pooled = (patch_tokens * weights).sum(dim=1) / weights.sum(dim=1)
        return AsdaModelOutput(last_hidden_state=hidden_states, pooler_output=pooled)

    def _check_input_values(self, input_values: torch.Tensor) -> None:
        if input_values.ndim != 3 or input_values.shape[-1] != self.config.num_mel_bins:
            raise ValueError(
                f"input_values must have shape (batch_size, num_frames, {self.config.num_mel_bins}), got "
                f"{tuple(input_values.shape)}. Use AsdaFeatureExtractor to turn audio into spectrograms."
            )
        num_frames = input_values.shape[1]
        if num_frames % self.config.patch_size or not 0 < num_frames <= self.config.max_frames:
            raise ValueError(
                f"input_values has {num_frames} frames; ASDA needs a positive multiple of patch_size "
                f"({self.config.patch_size}) up to {self.config.max_frames} frames (max_time_patches * patch_size). "
                "AsdaFeatureExtractor pads to a multiple of patch_size."
            )

    def _token_attention_mask(self, attention_mask: torch.Tensor, input_values: torch.Tensor) -> torch.Tensor:
        """Frame-, patch- or token-level padding mask -> `(batch, 1 + num_patches)` token mask."""
        batch_size, num_frames, _ = input_values.shape
        if attention_mask.ndim != 2 or attention_mask.shape[0] != batch_size:
            raise ValueError(
                f"attention_mask must have shape (batch_size={batch_size}, length) for input_values of shape "
                f"{tuple(input_values.shape)}, got {tuple(attention_mask.shape)}."
            )
        num_time_patches = num_frames // self.config.patch_size
        num_patches = num_time_patches * self.config.num_frequency_patches
        mask_length = attention_mask.shape[1]
        if mask_length == 1 + num_patches and mask_length != num_frames:
            return attention_mask.bool()
        if mask_length == num_frames:
            time_patch_is_real = attention_mask.bool().view(batch_size, num_time_patches, -1).any(dim=-1)
            patch_is_real = time_patch_is_real.repeat_interleave(self.config.num_frequency_patches, dim=1)
        elif mask_length == num_patches:
            patch_is_real = attention_mask.bool()
        else:
            raise ValueError(
                f"attention_mask must cover the {num_frames} frames, the {num_patches} patches or the "
                f"{1 + num_patches} tokens of input_values, got shape {tuple(attention_mask.shape)}."
            )
        cls_is_real = patch_is_real.new_ones(batch_size, 1)
        return torch.cat([cls_is_real, patch_is_real], dim=1)


class AsdaForAudioClassification(AsdaPreTrainedModel):
    """ASDA with the official classification head: pooled token (CLS) -> LayerNorm -> Linear."""

    # The loss is a per-micro-batch mean: let Trainer average it over gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: AsdaConfig):
        super().__init__(config)
        self.asda = AsdaModel(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.classifier_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        if module is self.classifier:
            # Official: trunc_normal(std 0.02) cut at +-2 (the PyTorch default bounds), zero bias.
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> SequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` of shape `(batch_size, num_labels)`, *optional*):
            Class indices (cross-entropy); or, as floats, multi-hot targets (binary cross-entropy, for
            `problem_type="multi_label_classification"`) or soft targets such as mixup's (cross-entropy).
        """
        outputs = self.asda(input_values, attention_mask=attention_mask, **kwargs)
        logits = self.classifier(self.fc_norm(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self.classification_loss(logits, labels)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def classification_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """The mean loss of the batch: binary cross-entropy over every (clip, class) entry for
        `problem_type="multi_label_classification"`, else cross-entropy per clip (class indices, -100 ignored, or soft
        targets). The official recipes normalise differently (per positive label, label smoothing): that is
        `AsdaFinetuningTrainer`'s loss, not the model's."""
        if self.config.problem_type is None:
            is_multi_hot = labels.is_floating_point()
            self.config.problem_type = "multi_label_classification" if is_multi_hot else "single_label_classification"
        logits = logits.float()
        if self.config.problem_type == "multi_label_classification":
            return F.binary_cross_entropy_with_logits(logits, labels.float())
        if labels.is_floating_point():
            return F.cross_entropy(logits, labels)
        return F.cross_entropy(logits, labels.view(-1))


class AsdaForAudioFrameClassification(AsdaPreTrainedModel):
    """ASDA with a per-time-step head for sound event detection: the patch tokens of each time patch (16 frames, 160 ms
    at the 10 ms frame shift) averaged over frequency -> LayerNorm -> Linear, giving logits of shape
    `(batch_size, num_time_patches, num_labels)`.

    It loads the encoder of any ASDA/EAT folder (pre-training, encoder, clip classifier); the head starts fresh.
    """

    # Pre-training folders carry a teacher and a decoder, clip classifiers a CLS head: none of them is used here.
    _keys_to_ignore_on_load_unexpected = [r"^teacher\.", r"^decoder\.", r"^fc_norm\.", r"^classifier\."]
    # The loss is a per-micro-batch mean: let Trainer average it over gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: AsdaConfig):
        super().__init__(config)
        self.asda = AsdaModel(config)
        self.frame_norm = nn.LayerNorm(config.hidden_size, eps=config.classifier_norm_eps)
        self.frame_classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        if module is self.frame_classifier:
            init.trunc_normal_(module.weight, std=self.config.initializer_range)
            init.zeros_(module.bias)
        else:
            super()._init_weights(module)

    def time_patch_seconds(self, frame_shift_seconds: float = 0.01) -> float:
        """Duration of one output step: `patch_size` spectrogram frames (0.16 s at the 10 ms frame shift)."""
        return self.config.patch_size * frame_shift_seconds

    def logits_per_frame(self, logits: torch.Tensor) -> torch.Tensor:
        """Repeat each time patch's logits over its `patch_size` spectrogram frames: `(batch, num_frames, labels)`."""
        return logits.repeat_interleave(self.config.patch_size, dim=1)

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> TokenClassifierOutput:
        r"""
        labels (`torch.FloatTensor` of shape `(batch_size, num_time_patches, num_labels)`, *optional*):
            Multi-hot (or soft, e.g. mixed) targets per time patch; -100 marks an entry to ignore (e.g. padding). The
            loss is the binary cross-entropy averaged over the other entries of the time patches that `attention_mask`
            marks as real (all of them without a mask).
        """
        outputs = self.asda(input_values, attention_mask=attention_mask, **kwargs)
        batch_size, num_frames, _ = input_values.shape
        num_time_patches = num_frames // self.config.patch_size
        patch_tokens = outputs.last_hidden_state[:, 1:].view(batch_size, num_time_patches, -1, self.config.hidden_size)
        logits = self.frame_classifier(self.frame_norm(patch_tokens.mean(dim=2)))
        loss = None
        if labels is not None:
            loss = self.frame_loss(logits, labels, self.time_patch_mask(attention_mask, input_values))
        return TokenClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def time_patch_mask(self, attention_mask: torch.Tensor | None, input_values: torch.Tensor) -> torch.Tensor | None:
        """`(batch, num_time_patches)`, True where a time patch holds real audio (the encoder's reading of the mask)."""
        if attention_mask is None:
            return None
        token_mask = self.asda._token_attention_mask(attention_mask, input_values)
        batch_size, num_frames, _ = input_values.shape
        return token_mask[:, 1:].view(batch_size, num_frames // self.config.patch_size, -1).any(dim=-1)

    def frame_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, time_patch_mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean binary cross-entropy over the entries of real time patches whose label is not -100."""
        if labels.shape != logits.shape:
            raise ValueError(
                "labels must have the logits' shape (batch_size, num_time_patches, num_labels) = "
                f"{tuple(logits.shape)}, got {tuple(labels.shape)}."
            )
        labels = labels.float()
        keep = labels != -100
        if time_patch_mask is not None:
            keep = keep & time_patch_mask[:, :, None]
        losses = F.binary_cross_entropy_with_logits(logits.float(), labels.clamp(min=0.0), reduction="none")
        return (losses * keep).sum() / keep.sum().clamp(min=1)


class AsdaForPreTraining(AsdaPreTrainedModel):
    """EAT's self-supervised teacher-student pre-training with ASDA encoders.

    The student sees `clone_batch` differently masked copies of each clip (inverse block masking keeps 20 % of the
    patches) and, through the CNN decoder, predicts the teacher's targets at the masked patches (frame loss) and
    their mean with its CLS token (utterance loss). The teacher, an EMA of the student, sees every clip once, whole.
    Call `update_teacher(step)` after every optimiser update (`AsdaEmaCallback` does it under Trainer).
    """

    # The loss is a per-micro-batch mean: let Trainer average it over gradient-accumulation steps.
    accepts_loss_kwargs = False

    def __init__(self, config: AsdaConfig):
        super().__init__(config)
        self.asda = AsdaModel(config)
        self.teacher = AsdaModel(config)
        self.teacher.requires_grad_(False)
        self.decoder = AsdaDecoder(config)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        if module is self.decoder.proj or any(module is layer.conv for layer in self.decoder.layers):
            # The official decoder keeps PyTorch's default init.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            init_bias_like_pytorch(module)
        else:
            super()._init_weights(module)

    def initialize_weights(self):
        """Initialise what was not loaded; a teacher tensor that was not loaded starts as a copy of the student's, as
        at the start of the official pre-training."""
        super().initialize_weights()
        for teacher_parameter, student_parameter in zip(self.teacher.parameters(), self.asda.parameters()):
            init.copy_(teacher_parameter, student_parameter)

    @torch.no_grad()
    def reset_teacher(self):
        """Make the teacher an exact copy of the student, as at the start of pre-training."""
        self.teacher.load_state_dict(self.asda.state_dict())

    def train(self, mode: bool = True):
        super().train(mode)
        self.teacher.eval()  # the teacher never drops anything
        return self

    def ema_decay(self, step: int) -> float:
        """EMA decay after `step` optimiser updates: linear from `ema_decay` to `ema_end_decay`, then constant."""
        progress = min(step / self.config.ema_anneal_end_step, 1.0) if self.config.ema_anneal_end_step > 0 else 1.0
        return self.config.ema_decay + (self.config.ema_end_decay - self.config.ema_decay) * progress

    @torch.no_grad()
    def update_teacher(self, step: int):
        """teacher <- decay * teacher + (1 - decay) * student, with the decay of update number `step` (1-based)."""
        if any(hasattr(parameter, "ds_id") for parameter in self.teacher.parameters()):
            raise RuntimeError(
                "DeepSpeed ZeRO-3 partitions the teacher and student parameters in a way the EMA update cannot follow: "
                "pre-train with DDP, DeepSpeed ZeRO-2 or FSDP."
            )
        weight = 1.0 - self.ema_decay(step)
        teacher_parameters = list(self.teacher.parameters())
        student_parameters = [parameter.detach() for parameter in self.asda.parameters()]
        torch._foreach_lerp_(teacher_parameters, student_parameters, weight)

    @staticmethod
    def _check_mask(mask: torch.BoolTensor, batch_size: int, num_patches: int) -> int:
        """The number of patches every row of a given mask keeps (read from the device once), or a clear error."""
        if mask.ndim != 2 or mask.shape[0] % batch_size or mask.shape[1] != num_patches:
            raise ValueError(
                f"mask must have shape (batch_size * clones, {num_patches}) for a batch of {batch_size} clips of "
                f"{num_patches} patches, got {tuple(mask.shape)}."
            )
        kept_counts = (~mask.bool()).sum(dim=1)
        if (kept_counts != kept_counts[0]).any():
            raise ValueError(
                f"every mask row must keep the same number of kept patches, got kept counts {kept_counts.tolist()}."
            )
        return int(kept_counts[0])

    @torch.no_grad()
    def teacher_targets(self, input_values: torch.Tensor) -> torch.Tensor:
        """Targets `(batch, num_patches, hidden)`: the teacher's per-layer MLP outputs (CLS dropped), each
        instance-normalised over the patches, averaged over the top `num_target_layers` layers, then LayerNorm-ed."""
        layer_outputs = self.teacher(input_values, output_ffn_hidden_states=True).ffn_hidden_states
        layer_outputs = layer_outputs[-(self.config.num_target_layers or len(layer_outputs)) :]
        eps = self.config.target_norm_eps
        targets = 0.0
        for layer_output in layer_outputs:
            layer_output = layer_output[:, 1:].float()
            if self.config.instance_norm_target_layers:
                layer_output = F.instance_norm(layer_output.transpose(1, 2), eps=eps).transpose(1, 2)
            targets = targets + layer_output
        targets = targets / len(layer_outputs)
        if self.config.layer_norm_targets:
            targets = F.layer_norm(targets, targets.shape[-1:], eps=eps)
        return targets

    @can_return_tuple
    def forward(
        self,
        input_values: torch.Tensor,
        mask: torch.BoolTensor | None = None,
        decoder_noise: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> AsdaForPreTrainingOutput:
        r"""
        input_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_mel_bins)`):
            Normalised log-mel spectrograms (unlabelled).
        mask (`torch.BoolTensor` of shape `(batch_size * clones, num_patches)`, *optional*):
            Precomputed masks, True = hidden from the student; the clones of a clip are adjacent rows and every row
            keeps the same number of patches. Drawn with `inverse_block_mask` (`clone_batch` clones) when omitted.
        decoder_noise (`torch.FloatTensor` of shape `(batch_size * clones, num_masked, hidden_size)`, *optional*):
            The vectors filling the masked positions of the decoder input, in ascending patch order. Drawn from
            N(0, decoder_noise_std^2) when omitted.
        """
        config = self.config
        batch_size, num_frames, _ = input_values.shape
        num_time_patches = num_frames // config.patch_size
        num_patches = num_time_patches * config.num_frequency_patches
        if mask is None:
            mask = inverse_block_mask(
                batch_size * config.clone_batch,
                num_time_patches,
                config.num_frequency_patches,
                config.mask_ratio,
                config.mask_block_size,
                config.mask_prob_adjust,
                device=input_values.device,
                min_blocks=config.mask_min_blocks,
            )
            num_kept = int(num_patches * (1.0 - config.mask_ratio))
        else:
            num_kept = self._check_mask(mask, batch_size, num_patches)
        num_rows, num_masked = mask.shape[0], num_patches - num_kept
        clones = num_rows // batch_size

        # Indices, not boolean indexing, so that no step waits for the device: per row, a stable sort puts the masked
        # patches first and the kept ones after them, each in ascending order.
        patch_order = mask.to(torch.uint8).argsort(dim=1, descending=True, stable=True)
        masked_patch_indices, kept_patch_indices = patch_order.split([num_masked, num_kept], dim=1)
        student = self.asda(input_values, kept_patch_indices=kept_patch_indices, **kwargs)
        student_tokens = student.last_hidden_state

        if decoder_noise is None:
            decoder_noise = torch.randn(
                num_rows, num_masked, config.hidden_size, device=input_values.device
            ) * config.decoder_noise_std
        ordered_tokens = torch.cat([decoder_noise.to(student_tokens.dtype), student_tokens[:, 1:]], dim=1)
        token_positions = patch_order[..., None].expand(-1, -1, config.hidden_size)
        decoder_input = ordered_tokens.new_empty(ordered_tokens.shape).scatter(1, token_positions, ordered_tokens)
        predictions = self.decoder(decoder_input, num_time_patches)

        targets = self.teacher_targets(input_values)
        clip_of_row = torch.arange(batch_size, device=targets.device).repeat_interleave(clones)
        scale = config.hidden_size**-0.5
        masked_predictions = predictions.gather(1, token_positions[:, :num_masked]).float()
        frame_errors = (masked_predictions - targets[clip_of_row[:, None], masked_patch_indices]).pow(2).sum(-1) * scale
        utterance_errors = (student_tokens[:, 0].float() - targets.mean(dim=1)[clip_of_row]).pow(2).sum(dim=-1) * scale
        frame_loss = config.frame_loss_weight * frame_errors.mean()
        reduce_clones = torch.sum if config.utterance_loss_reduction == "sum" else torch.mean
        utterance_loss = config.utterance_loss_weight * reduce_clones(utterance_errors)
        return AsdaForPreTrainingOutput(
            loss=frame_loss + utterance_loss,
            frame_loss=frame_loss,
            utterance_loss=utterance_loss,
            logits=predictions,
            targets=targets,
            mask=mask,
            hidden_states=student.hidden_states,
            attentions=student.attentions,
        )


# The transformers Auto class of every ASDA model class: `modeling_asda/__init__.py` registers them in-process and
# saved folders name them in `auto_map` for remote code. A new head needs one line here.
AUTO_CLASSES = {
    "AutoModel": AsdaModel,
    "AutoModelForAudioClassification": AsdaForAudioClassification,
    "AutoModelForAudioFrameClassification": AsdaForAudioFrameClassification,
    "AutoModelForPreTraining": AsdaForPreTraining,
}


def hub_auto_map() -> dict[str, str]:
    """`auto_map` entries (`"module.Class"`) for a folder holding this file and `configuration_asda.py`."""
    entries = {"AutoConfig": AsdaConfig, **AUTO_CLASSES}
    return {auto_class: f"{cls.__module__.rsplit('.', 1)[-1]}.{cls.__name__}" for auto_class, cls in entries.items()}


# `save_pretrained` copies the code of registered classes (this file and its siblings) next to the weights.
AsdaConfig.register_for_auto_class()
for auto_class_name, model_class in AUTO_CLASSES.items():
    model_class.register_for_auto_class(auto_class_name)


__all__ = [
    "AUTO_CLASSES",
    "AsdaForAudioClassification",
    "AsdaForAudioFrameClassification",
    "AsdaForPreTraining",
    "AsdaModel",
    "AsdaPreTrainedModel",
    "inverse_block_mask",
    "sincos_position_table",
]
