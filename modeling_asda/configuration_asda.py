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
"""ASDA model configuration."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig


ATTENTION_TYPES = ("differential", "standard")
POOLING_MODES = ("cls", "mean")
UTTERANCE_LOSS_REDUCTIONS = ("sum", "mean")
POSITIVE_SIZES = (
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "num_mel_bins",
    "patch_size",
    "max_time_patches",
    "mask_block_size",
    "clone_batch",
    "decoder_hidden_size",
    "decoder_num_layers",
    "decoder_kernel_size",
    "decoder_groups",
)


@strict
class AsdaConfig(PreTrainedConfig):
    r"""
    Configuration of an ASDA (Audio Spectrogram Differential Attention) encoder, its audio-classification head and its
    self-supervised pre-training (EAT's teacher-student recipe). The defaults are the values of the official code
    (github.com/MyParadise21/ASDA) for ASDA-base; `attention_type="standard"` with `intermediate_size=3072` and
    `utterance_loss_weight=1.0` is EAT-base.

    Encoder:
        hidden_size, num_hidden_layers, num_attention_heads, intermediate_size, hidden_act: ViT-B/16 sizes with the
            ASDA MLP ratio 3.5 (768 * 3.5 = 2688).
        hidden_dropout_prob: dropout on the attention output projection and the MLP output.
        attention_probs_dropout_prob: dropout on every softmax map.
        activation_dropout: dropout after the MLP activation.
        drop_path_rate: stochastic depth, rising linearly from 0 at the first block to this value at the last.
        layer_norm_eps: epsilon of the input LayerNorm and of the two post-LayerNorms of every block.
        initializer_range: standard deviation of the normal init of the encoder's linear layers (BERT init) and of
            the classifier.
        qkv_bias: whether the query/key/value projection has a bias.

    Input:
        num_mel_bins: mel bins of the log-mel spectrogram (the frequency axis).
        patch_size: side of the square, non-overlapping spectrogram patches.
        max_time_patches: time patches covered by the fixed 2-D sin-cos position table (768 x 16 frames = 2:03 min).

    Attention:
        attention_type: `"differential"` computes `softmax(Q1 K1^T) - lambda * softmax(Q2 K2^T)` per head, then one
            LayerNorm over all heads and a fixed output scale (ASDA); `"standard"` is plain softmax attention (EAT).
        differential_lambda: the constant lambda subtracting the second softmax map.
        differential_output_scale: the constant multiplying the normalised heads, `1 - lambda_init` in the
            Differential Transformer (0.95 in ASDA).
        differential_norm_eps: epsilon of the LayerNorm over the concatenated heads.

    Classification:
        pooling_mode: `"cls"` (official) or `"mean"` (mean of the patch tokens, padding excluded).
        classifier_norm_eps: epsilon of the LayerNorm before the classification layer.

    Pre-training (EAT recipe):
        mask_ratio: fraction of patches hidden from the student.
        mask_block_size: side of the square blocks of *kept* patches (inverse block masking).
        mask_prob_adjust: extra block centres drawn to compensate for overlapping blocks.
        mask_min_blocks: at least this many blocks per clone. The official formula draws none on grids under 93
            patches (clips under ~1.9 s), where the kept patches are then scattered at random; 0 is official.
        clone_batch: differently masked student copies of every clip.
        decoder_hidden_size, decoder_num_layers, decoder_kernel_size, decoder_groups: the CNN decoder.
        decoder_norm_eps: epsilon of the decoder's LayerNorms (over channels, no affine).
        decoder_noise_std: standard deviation of the Gaussian noise filling the masked positions of the decoder input.
        num_target_layers: teacher layers averaged into the targets (`None`: all layers).
        instance_norm_target_layers: instance-normalise every teacher layer over the patches before averaging.
        layer_norm_targets: LayerNorm (no affine) of the averaged targets.
        target_norm_eps: epsilon of those target normalisations.
        frame_loss_weight: weight of the frame (masked-patch) regression loss.
        utterance_loss_weight: weight of the utterance (CLS) regression loss: 0.5 in ASDA, 1.0 in EAT.
        utterance_loss_reduction: how the per-clone utterance errors of a step combine. `"sum"` (official, spec 3.4)
            weights the utterance term by the number of student clones in the batch (192 for 16 clones of 12 clips)
            against the frame term, a mean over masked patches; short runs on small data then pull every CLS token
            to one point. `"mean"` averages over the clones instead: `"mean"` with weight `w` equals `"sum"` with
            weight `w / (clone_batch * clips per forward pass)`.
        ema_decay, ema_end_decay, ema_anneal_end_step: the teacher's EMA decay rises linearly from `ema_decay` to
            `ema_end_decay` over `ema_anneal_end_step` optimiser updates.
    """

    model_type = "asda"

    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 2688
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.0
    attention_probs_dropout_prob: float | int = 0.0
    activation_dropout: float | int = 0.0
    drop_path_rate: float | int = 0.0
    layer_norm_eps: float = 1e-6
    initializer_range: float = 0.02
    qkv_bias: bool = True

    num_mel_bins: int = 128
    patch_size: int = 16
    max_time_patches: int = 768

    attention_type: str = "differential"
    differential_lambda: float | int = 0.1
    differential_output_scale: float | int = 0.95
    differential_norm_eps: float = 1e-5

    pooling_mode: str = "cls"
    classifier_norm_eps: float = 1e-6

    mask_ratio: float = 0.8
    mask_block_size: int = 5
    mask_prob_adjust: float = 0.07
    mask_min_blocks: int = 0
    clone_batch: int = 16
    decoder_hidden_size: int = 768
    decoder_num_layers: int = 6
    decoder_kernel_size: int = 3
    decoder_groups: int = 16
    decoder_norm_eps: float = 1e-5
    decoder_noise_std: float = 0.01
    num_target_layers: int | None = None
    instance_norm_target_layers: bool = True
    layer_norm_targets: bool = True
    target_norm_eps: float = 1e-5
    frame_loss_weight: float | int = 1.0
    utterance_loss_weight: float | int = 0.5
    utterance_loss_reduction: str = "sum"
    ema_decay: float = 0.9998
    ema_end_decay: float = 0.99999
    ema_anneal_end_step: int = 100000

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        # Raise the plain `ValueError` at construction; `@strict` re-runs the check when the config is saved.
        self.validate_architecture()

    @property
    def num_frequency_patches(self) -> int:
        return self.num_mel_bins // self.patch_size

    @property
    def max_frames(self) -> int:
        """Longest input, in spectrogram frames, that the position table covers."""
        return self.max_time_patches * self.patch_size

    def validate_architecture(self):
        """Check that the values fit together; raise a `ValueError` naming the problem otherwise."""
        super().validate_architecture()
        for size_name in POSITIVE_SIZES:
            if getattr(self, size_name) < 1:
                raise ValueError(f"{size_name} must be positive, got {getattr(self, size_name)}.")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(
                f"hidden_size ({self.hidden_size}) must be divisible by num_attention_heads "
                f"({self.num_attention_heads})."
            )
        if self.hidden_size % 4:
            raise ValueError(f"hidden_size ({self.hidden_size}) must be a multiple of 4 for the 2-D sin-cos positions.")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(f"attention_type must be one of {ATTENTION_TYPES}, got {self.attention_type!r}.")
        if self.pooling_mode not in POOLING_MODES:
            raise ValueError(f"pooling_mode must be one of {POOLING_MODES}, got {self.pooling_mode!r}.")
        if self.utterance_loss_reduction not in UTTERANCE_LOSS_REDUCTIONS:
            raise ValueError(
                f"utterance_loss_reduction must be one of {UTTERANCE_LOSS_REDUCTIONS}, "
                f"got {self.utterance_loss_reduction!r}."
            )
        if self.num_mel_bins % self.patch_size:
            raise ValueError(
                f"num_mel_bins ({self.num_mel_bins}) must be a multiple of patch_size ({self.patch_size})."
            )
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must lie strictly between 0 and 1, got {self.mask_ratio}.")
        if self.mask_min_blocks < 0:
            raise ValueError(f"mask_min_blocks must be non-negative, got {self.mask_min_blocks}.")
        if self.decoder_kernel_size % 2 == 0:
            raise ValueError(f"decoder_kernel_size must be odd to keep the patch grid, got {self.decoder_kernel_size}.")
        for size_name in ("hidden_size", "decoder_hidden_size"):
            if getattr(self, size_name) % self.decoder_groups:
                raise ValueError(
                    f"{size_name} ({getattr(self, size_name)}) must be divisible by decoder_groups "
                    f"({self.decoder_groups})."
                )
        if self.num_target_layers is not None and not 1 <= self.num_target_layers <= self.num_hidden_layers:
            raise ValueError(
                f"num_target_layers must lie in [1, num_hidden_layers={self.num_hidden_layers}], "
                f"got {self.num_target_layers}."
            )
        if not 0.0 <= self.ema_decay <= self.ema_end_decay <= 1.0:
            raise ValueError(
                f"EMA decays must satisfy 0 <= ema_decay <= ema_end_decay <= 1, got {self.ema_decay} and "
                f"{self.ema_end_decay}."
            )
        for rate_name in ("hidden_dropout_prob", "attention_probs_dropout_prob", "activation_dropout", "drop_path_rate"):
            if not 0.0 <= getattr(self, rate_name) < 1.0:
                raise ValueError(f"{rate_name} must lie in [0, 1), got {getattr(self, rate_name)}.")


__all__ = ["AsdaConfig"]
