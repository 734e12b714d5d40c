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
from transformers.modeling_outputs import BaseModelOutputWithPooling, SequenceClassifierOutput
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs
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
    Both maps of a head read the same values, so the two softmaxes run as one attention call over 2H heads (any
    backend of the attention interface applies, with no attention matrix materialised outside eager) and the
    difference is taken on the outputs: A1 V - lambda A2 V = (A1 - lambda A2) V.
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
        qk_heads = self.maps_per_head * self.num_heads
        qkv = self.qkv_proj(hidden_states).view(batch_size, seq_len, -1, self.head_dim).transpose(1, 2)
        query, key, value = qkv.split([qk_heads, qk_heads, self.num_heads], dim=1)
        if self.is_differential:
            value = torch.cat([value, value], dim=1)

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        attn_output, attn_weights = attention_interface(
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
            first, second = attn_output.chunk(2, dim=2)
            attn_output = (first - self.differential_lambda * second).reshape(batch_size, seq_len, hidden_size)
            attn_output = self.head_norm(attn_output) * self.output_scale
            if attn_weights is not None:
                first_map, second_map = attn_weights.chunk(2, dim=1)
                attn_weights = first_map - self.differential_lambda * second_map
        else:
            attn_output = attn_output.reshape(batch_size, seq_len, hidden_size)
        return self.dropout(self.o_proj(attn_output)), attn_weights


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


class AsdaPreTrainedModel(PreTrainedModel):
    config: AsdaConfig
    base_model_prefix = "asda"
    main_input_name = "input_values"
    input_modalities = ("audio",)
    supports_gradient_checkpointing = True
    _no_split_modules = ["AsdaEmbeddings", "AsdaLayer"]
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
        """Official init: BERT normal(0, 0.02) linears, Xavier patch conv, N(0, 1) CLS, fixed sin-cos positions."""
        super()._init_weights(module)
        if isinstance(module, AsdaPatchEmbeddings):
            weight = module.projection.weight
            # `init` guards act on the tensor they get: check the flag before viewing the conv as a matrix.
            if not getattr(weight, "_is_hf_initialized", False):
                init.xavier_uniform_(weight.view(weight.shape[0], -1))
        elif isinstance(module, AsdaEmbeddings):
            init.normal_(module.cls_token, std=1.0)
            init.copy_(module.position_embeddings, module.position_table(module.config))


class AsdaModel(AsdaPreTrainedModel):
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
            token_mask = self._token_attention_mask(attention_mask, input_values.shape[1])
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

    def _token_attention_mask(self, attention_mask: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Frame-, patch- or token-level padding mask -> `(batch, 1 + num_patches)` token mask."""
        num_time_patches = num_frames // self.config.patch_size
        num_patches = num_time_patches * self.config.num_frequency_patches
        batch_size, mask_length = attention_mask.shape
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

    def __init__(self, config: AsdaConfig):
        super().__init__(config)
        self.asda = AsdaModel(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.classifier_norm_eps)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def _init_weights(self, module: nn.Module):
        super()._init_weights(module)
        if module is self.classifier:
            init.trunc_normal_(module.weight, std=self.config.initializer_range)

    def freeze_feature_encoder(self):
        """Freeze the patch embedding (the only 'feature encoder' of a spectrogram transformer)."""
        self.asda.embeddings.patch_embeddings.requires_grad_(False)

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
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        outputs = self.asda(input_values, attention_mask=attention_mask, **kwargs)
        logits = self.classifier(self.fc_norm(outputs.pooler_output))
        loss = None
        if labels is not None:
            loss = self._classification_loss(logits, labels, num_items_in_batch)
        return SequenceClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )

    def _classification_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None
    ) -> torch.Tensor:
        """Mean loss over the batch.

        Trainer passes `num_items_in_batch`, the number of label entries over all gradient-accumulation steps and
        processes; dividing the summed loss by it gives the exact mean of the global batch, whatever the
        accumulation and world size. It counts every entry of a `(batch, num_labels)` target, so the per-sample
        soft cross-entropy divides it by `num_labels` first.
        """
        if self.config.problem_type is None:
            is_multi_hot = labels.is_floating_point()
            self.config.problem_type = "multi_label_classification" if is_multi_hot else "single_label_classification"
        logits = logits.float()
        entries_per_term = 1
        if self.config.problem_type == "multi_label_classification":
            total = F.binary_cross_entropy_with_logits(logits, labels.float(), reduction="sum")
            num_entries = labels.numel()
        elif labels.is_floating_point():
            total = -(labels * logits.log_softmax(dim=-1)).sum()
            num_entries, entries_per_term = labels.numel(), labels.shape[-1]
        else:
            total = F.cross_entropy(logits, labels.view(-1), ignore_index=-100, reduction="sum")
            num_entries = (labels != -100).sum()
        if num_items_in_batch is not None:
            num_entries = num_items_in_batch
        return total / (num_entries / entries_per_term)


__all__ = ["AsdaModel", "AsdaForAudioClassification", "AsdaPreTrainedModel", "sincos_position_table"]
