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
"""ASDA feature extractor: raw audio -> normalised Kaldi log-mel spectrograms, as the official code computes them.

The path from sound to `input_values`, with the official (ASDA = EAT) values:
    mono waveform in [-1, 1] -> resample to 16 kHz -> subtract its mean -> 25 ms frames every 10 ms (snip edges)
    -> per-frame DC removal -> pre-emphasis 0.97 -> symmetric Hann window -> 512-point power spectrum
    -> 128 Kaldi mel bins (20 Hz - Nyquist) -> natural log floored at float32 eps
    -> zero-pad at the end / truncate from the start in the log-mel domain -> (x - mean) / (2 * std).
This is `torchaudio.compliance.kaldi.fbank(htk_compat=True, use_energy=False, window_type="hanning", dither=0.0,
num_mel_bins=128, frame_shift=10)`, computed with batched torch ops and no torchaudio.
"""

import errno
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from transformers.audio_utils import mel_filter_bank
from transformers.feature_extraction_sequence_utils import SequenceFeatureExtractor
from transformers.feature_extraction_utils import BatchFeature
from transformers.utils import PaddingStrategy, TensorType, logging, requires_backends
from transformers.utils.import_utils import is_soundfile_available


# soundfile, only needed to read files, is imported under `is_soundfile_available()` so that remote-code loading does
# not require it (transformers' `check_imports` skips such blocks).
if is_soundfile_available():
    import soundfile


logger = logging.get_logger(__name__)

# Normalisation statistics and clip length (frames) of the official recipes: AudioSet (pre-training, AS-2M, AS-20K),
# ESC-50 (5 s clips) and Speech Commands V2 (1 s clips).
PRESETS = {
    "audioset": {"mean": -4.268, "std": 4.569, "max_length": 1024},
    "esc50": {"mean": -6.627, "std": 5.359, "max_length": 512},
    "speech_commands": {"mean": -6.846, "std": 5.565, "max_length": 128},
}

# The official features were made at other rates by `torchaudio.functional.resample` with its defaults: a
# Hann-windowed sinc low-pass with 6 zero crossings on each side and its cutoff at 0.99 of the lower Nyquist rate.
RESAMPLING_LOWPASS_FILTER_WIDTH = 6
RESAMPLING_ROLLOFF = 0.99
# Resampling works through a clip in blocks of about this many input (or output, if more) samples, so that its
# memory does not grow with the clip.
RESAMPLING_BLOCK_SIZE = 2**18

# Sampling rates outside these bounds are mistakes, not audio. Below 1 kHz (a 500 Hz band, under most of the mel
# filters) a rate is almost always given in kHz (16 for 16000), and resampling it would multiply the clip's length by
# over 16; above 1 MHz, past ultrasonic recorders (up to 500 kHz) and the fastest audio converters (768 kHz), it is a
# sample count or a typo.
MIN_SAMPLING_RATE = 1_000
MAX_SAMPLING_RATE = 1_000_000

# Integer PCM that is scaled to [-1, 1) as soundfile reads it; other integer types are refused.
PCM_SCALES = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31}
# A float clip peaking above this (30 dB over full scale) holds unscaled integer PCM, not a waveform in [-1, 1].
MAX_FLOAT_AMPLITUDE = 32.0


def _check_sampling_rate(sampling_rate) -> int:
    """`sampling_rate` as an int number of Hz, or an error naming the likely mistake (a string, kHz, a fraction)."""
    if isinstance(sampling_rate, bool) or not isinstance(sampling_rate, numbers.Real):
        kind = type(sampling_rate).__name__
        message = f"sampling_rate must be an int number of Hz, not the {kind} {sampling_rate!r}"
        if isinstance(sampling_rate, str) and sampling_rate.strip().isdigit():
            message += f": pass {int(sampling_rate)}"
        raise TypeError(message + ".")
    if not sampling_rate > 0:
        raise ValueError(f"sampling_rate must be a positive number of Hz, got {sampling_rate}.")
    if sampling_rate < MIN_SAMPLING_RATE:
        in_hz = round(1000 * sampling_rate)
        if MIN_SAMPLING_RATE <= in_hz <= MAX_SAMPLING_RATE:
            raise ValueError(f"sampling_rate={sampling_rate} looks like kHz; pass {in_hz} (the rate in Hz).")
        raise ValueError(f"sampling_rate={sampling_rate} Hz is below the {MIN_SAMPLING_RATE} Hz minimum.")
    if not float(sampling_rate).is_integer():
        raise ValueError(f"sampling_rate must be a whole number of Hz, got {sampling_rate}.")
    if sampling_rate > MAX_SAMPLING_RATE:
        raise ValueError(
            f"sampling_rate={sampling_rate} Hz is above the {MAX_SAMPLING_RATE} Hz maximum: pass the number of "
            "samples per second (e.g. 16000), not a sample count."
        )
    return int(sampling_rate)


@lru_cache(maxsize=16)
def _polyphase_filters(orig_rate: int, new_rate: int) -> list[tuple[slice, int, torch.Tensor]]:
    """The official resampling filter by groups of output phases: `(phases, first input offset, conv1d weight)`.

    With the rates reduced by their gcd, output sample `q * new_rate + p` is `sum_m x[q * orig_rate + m] * k(t)` at
    `t = cutoff * (m / orig_rate - p / new_rate)`, `cutoff = rolloff * min(orig_rate, new_rate)`, for the windowed
    sinc `k(t) = sinc(t) * cos^2(pi t / (2 w)) * cutoff / orig_rate`, `|t| <= w` zero crossings (0 beyond): the
    kernel of `torchaudio.functional.resample`'s defaults. A group's weight `(phases, 1, span)` covers the input
    offsets `m` its phases reach; a group spans about twice one phase's reach, so weights stay small for any rates.
    """
    cutoff = RESAMPLING_ROLLOFF * min(orig_rate, new_rate)
    reach = RESAMPLING_LOWPASS_FILTER_WIDTH * orig_rate / cutoff  # input samples on each side of an output sample
    phases_per_group = max(1, min(new_rate, int(2 * reach * new_rate / orig_rate)))
    groups = []
    for first_phase in range(0, new_rate, phases_per_group):
        phases = np.arange(first_phase, min(first_phase + phases_per_group, new_rate))
        first_input = math.floor(phases[0] * orig_rate / new_rate - reach)
        inputs = np.arange(first_input, math.floor(phases[-1] * orig_rate / new_rate + reach) + 1)
        t = cutoff * (inputs / orig_rate - phases[:, None] / new_rate)
        window = np.cos(np.pi * t / (2 * RESAMPLING_LOWPASS_FILTER_WIDTH)) ** 2
        kernel = np.where(np.abs(t) <= RESAMPLING_LOWPASS_FILTER_WIDTH, np.sinc(t) * window, 0.0) * cutoff / orig_rate
        groups.append((slice(phases[0], phases[-1] + 1), first_input, torch.from_numpy(kernel[:, None]).float()))
    return groups


def _resampled_blocks(
    waveform: np.ndarray, orig_sampling_rate: int, target_sampling_rate: int
) -> Iterator[np.ndarray]:
    """The waveform resampled to `target_sampling_rate` (`ceil(len * target / orig)` samples), block after block.

    Each block is a strided `conv1d` per phase group over the input samples it reaches (zeros outside the clip),
    in float32 as the official pipeline resamples, so memory depends on the block size only.
    """
    divisor = math.gcd(orig_sampling_rate, target_sampling_rate)
    orig_rate, new_rate = orig_sampling_rate // divisor, target_sampling_rate // divisor
    groups = _polyphase_filters(orig_rate, new_rate)
    lead = groups[0][1]  # first input offset any phase reaches (negative)
    tail = groups[-1][1] + groups[-1][2].shape[-1]  # one past the last
    num_samples = -(-len(waveform) * new_rate // orig_rate)
    num_steps = -(-num_samples // new_rate)  # steps of orig_rate inputs -> new_rate outputs
    steps_per_block = max(1, RESAMPLING_BLOCK_SIZE // max(orig_rate, new_rate))
    for first_step in range(0, num_steps, steps_per_block):
        steps = min(steps_per_block, num_steps - first_step)
        start = first_step * orig_rate + lead
        stop = (first_step + steps - 1) * orig_rate + tail
        inputs = np.zeros(stop - start, np.float32)
        inputs[max(-start, 0) : len(waveform) - start] = waveform[max(start, 0) : stop]
        inputs = torch.from_numpy(inputs)[None, None]
        block = torch.empty(steps, new_rate)
        for phases, first_input, weight in groups:
            offset = first_input - lead
            group_inputs = inputs[..., offset : offset + (steps - 1) * orig_rate + weight.shape[-1]]
            block[:, phases] = F.conv1d(group_inputs, weight, stride=orig_rate)[0].T
        yield block.view(-1)[: num_samples - first_step * new_rate].numpy()


def resample_audio(waveform: np.ndarray, orig_sampling_rate: int, target_sampling_rate: int) -> np.ndarray:
    """Resample a 1-D waveform with the windowed-sinc filter of the official pipeline, in torch.

    Output length is `ceil(len * target / orig)`, the first sample stays aligned, and the result matches
    `torchaudio.functional.resample` (default arguments) to float32 rounding.
    """
    if orig_sampling_rate == target_sampling_rate:
        return waveform.astype(np.float32, copy=False)
    blocks = list(_resampled_blocks(waveform, orig_sampling_rate, target_sampling_rate))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def load_audio(path: str | os.PathLike, sampling_rate: int = 16000) -> np.ndarray:
    """Read an audio file with soundfile (WAV, FLAC, OGG, MP3, ...; no ffmpeg) as float32 mono at `sampling_rate`.

    Channels are averaged; other rates are resampled as the official pipeline does (see `resample_audio`).
    """
    sampling_rate = _check_sampling_rate(sampling_rate)
    waveform, file_sampling_rate = _read_audio(path)
    return resample_audio(waveform, file_sampling_rate, sampling_rate)


def _read_audio(path: str | os.PathLike) -> tuple[np.ndarray, int]:
    """An audio file as a float32 mono waveform (channels averaged) at its own sampling rate."""
    requires_backends(load_audio, ["soundfile"])
    path = os.fspath(path)
    # Opening it first turns a missing file, a folder or missing permissions into Python's error naming the path
    # (libsndfile says "System error" or "Format not recognised"); what libsndfile cannot decode, it names itself.
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, "Audio file not found", path)
    with open(path, "rb"):
        pass
    waveform, sampling_rate = soundfile.read(path, dtype="float32", always_2d=True)
    if not MIN_SAMPLING_RATE <= sampling_rate <= MAX_SAMPLING_RATE:
        raise ValueError(
            f"{path} declares a sampling rate of {sampling_rate} Hz, outside the {MIN_SAMPLING_RATE}-"
            f"{MAX_SAMPLING_RATE} Hz of audio (a corrupt header?)."
        )
    return waveform.mean(axis=1), sampling_rate


def _mel_filter_blocks(mel_filters: torch.Tensor, num_blocks: int = 8) -> list[tuple[slice, torch.Tensor]]:
    """Cut the `(fft_bins, mel_bins)` filter matrix into column blocks, each kept only over the FFT rows it uses.

    Kaldi's triangles are narrow (an FFT bin feeds at most two mel bins), so a dense product spends ~97% of its work on
    zeros; the block products give the same sums in about half the time.
    """
    blocks = []
    for columns in torch.arange(mel_filters.shape[1]).tensor_split(num_blocks):
        first, last = int(columns[0]), int(columns[-1]) + 1
        used_rows = (mel_filters[:, first:last] != 0).any(dim=1).nonzero()
        rows = slice(int(used_rows.min()), int(used_rows.max()) + 1) if len(used_rows) else slice(0, 0)
        blocks.append((rows, mel_filters[rows, first:last].contiguous()))
    return blocks


class AsdaFeatureExtractor(SequenceFeatureExtractor):
    r"""
    Turns raw audio into the normalised log-mel spectrograms that [`AsdaModel`] reads: the official Kaldi-compatible
    fbank of ASDA / EAT (see the module docstring), batched in torch, then `(x - mean) / (2 * std)`.

    The defaults are the official AudioSet values; [`~AsdaFeatureExtractor.from_preset`] gives the ESC-50 and Speech
    Commands ones. Audio at another rate is resampled with the official filter (see `resample_audio`).

    Args:
        num_mel_bins (`int`, *optional*, defaults to 128):
            Mel bins, the frequency axis of the spectrogram (the model's `num_mel_bins`).
        sampling_rate (`int`, *optional*, defaults to 16000):
            Rate, in Hz, of the waveforms the fbank is computed from.
        max_length (`int`, *optional*, defaults to 1024):
            Clip length in frames (1024 = 10.24 s). With `padding="max_length"` every clip is padded to it (log-mel
            zeros at the end) or cut to it (keeping its start); with `truncation=True` no clip keeps more frames.
        mean (`float`, *optional*, defaults to -4.268), std (`float`, *optional*, defaults to 4.569):
            Dataset statistics of the log-mel values; features are `(x - mean) / (2 * std)` (AudioSet values).
        do_normalize (`bool`, *optional*, defaults to `True`):
            Apply the normalisation; `False` returns log-mel energies, e.g. to compute a new dataset's statistics.
        frame_length (`int`, *optional*, defaults to 400), hop_length (`int`, *optional*, defaults to 160):
            Analysis window and frame shift in samples (25 ms and 10 ms at 16 kHz).
        fft_length (`int`, *optional*, defaults to 512):
            FFT size (the window zero-padded to a power of two, as Kaldi does).
        preemphasis (`float`, *optional*, defaults to 0.97):
            Pre-emphasis coefficient applied to every frame after its DC offset is removed.
        min_frequency (`float`, *optional*, defaults to 20.0), max_frequency (`float`, *optional*):
            Edges of the mel filter bank in Hz; `max_frequency` defaults to the Nyquist rate.
        mel_floor (`float`, *optional*, defaults to float32 eps):
            Mel energies are floored at this value before the log.
        pad_to_multiple_of (`int`, *optional*, defaults to 16):
            Padded lengths are rounded up to a multiple of this (the model's patch size).
        padding_value (`float`, *optional*):
            Value of padded frames in the output. Defaults to a log-mel value of 0 after normalisation
            (`-mean / (2 * std)`, about 0.467 for AudioSet): the official policy, also used by `pad`.
        return_attention_mask (`bool`, *optional*, defaults to `False`):
            Whether to return the frame-level `attention_mask` (1 = real frame) by default. Off as in the official
            recipe (and so that Trainer's default collator does not add one); the model understands it when given.
    """

    model_input_names = ["input_values", "attention_mask"]

    def __init__(
        self,
        num_mel_bins: int = 128,
        sampling_rate: int = 16000,
        max_length: int = 1024,
        mean: float = PRESETS["audioset"]["mean"],
        std: float = PRESETS["audioset"]["std"],
        do_normalize: bool = True,
        frame_length: int = 400,
        hop_length: int = 160,
        fft_length: int = 512,
        preemphasis: float = 0.97,
        min_frequency: float = 20.0,
        max_frequency: float | None = None,
        mel_floor: float = float(torch.finfo(torch.float32).eps),
        pad_to_multiple_of: int = 16,
        padding_value: float | None = None,
        return_attention_mask: bool = False,
        **kwargs,
    ):
        # `feature_size` is the base class's name for the mel bins; saved configs pass it back.
        feature_size = kwargs.pop("feature_size", num_mel_bins)
        if feature_size != num_mel_bins:
            raise ValueError(f"feature_size ({feature_size}) must equal num_mel_bins ({num_mel_bins}).")
        if std <= 0:
            raise ValueError(f"std must be positive, got {std}.")
        if padding_value is None:
            padding_value = -mean / (2 * std) if do_normalize else 0.0
        super().__init__(
            feature_size=num_mel_bins,
            sampling_rate=_check_sampling_rate(sampling_rate),
            padding_value=padding_value,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        self.num_mel_bins = num_mel_bins
        self.max_length = max_length
        self.mean = mean
        self.std = std
        self.do_normalize = do_normalize
        self.frame_length = frame_length
        self.hop_length = hop_length
        self.fft_length = fft_length
        self.preemphasis = preemphasis
        self.min_frequency = min_frequency
        self.max_frequency = max_frequency
        self.mel_floor = mel_floor
        self.pad_to_multiple_of = pad_to_multiple_of
        self._validate()

        # Kaldi's "hanning" is the symmetric Hann window; torch's float32 one is the window of the official features.
        self.window = torch.hann_window(frame_length, periodic=False)
        with warnings.catch_warnings():
            # With 128 bins over 257 FFT bins the lowest Kaldi filters hold no FFT bin: their log-energy is the floor,
            # in the official features as here, so transformers' warning about it is expected.
            warnings.filterwarnings("ignore", message="At least one mel filter has all zero values")
            mel_filters = mel_filter_bank(
                num_frequency_bins=fft_length // 2 + 1,
                num_mel_filters=num_mel_bins,
                min_frequency=min_frequency,
                max_frequency=self.sampling_rate / 2 if max_frequency is None else max_frequency,
                sampling_rate=self.sampling_rate,
                norm=None,
                mel_scale="kaldi",
                triangularize_in_mel_space=True,
            )
        self.mel_filter_blocks = _mel_filter_blocks(torch.from_numpy(mel_filters).float())

    def to_dict(self) -> dict:
        output = super().to_dict()  # drops `window`
        del output["mel_filter_blocks"]
        return output

    def _validate(self):
        if self.padding_side != "right":
            raise ValueError(
                f"AsdaFeatureExtractor pads the end of clips: padding_side must be 'right', got {self.padding_side!r}."
            )
        for name in ("num_mel_bins", "max_length", "frame_length", "hop_length", "pad_to_multiple_of"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}.")
        if self.fft_length < self.frame_length:
            raise ValueError(f"fft_length ({self.fft_length}) must be at least frame_length ({self.frame_length}).")
        nyquist = self.sampling_rate / 2
        max_frequency = nyquist if self.max_frequency is None else self.max_frequency
        if not 0 <= self.min_frequency < max_frequency <= nyquist:
            raise ValueError(
                f"Need 0 <= min_frequency < max_frequency <= sampling_rate / 2 = {nyquist}, got min_frequency "
                f"{self.min_frequency} and max_frequency {max_frequency}."
            )

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "AsdaFeatureExtractor":
        """The extractor of an official recipe: `"audioset"` (1024 frames), `"esc50"` (512) or `"speech_commands"`
        (128). `kwargs` override any value, e.g. `from_preset("esc50", return_attention_mask=True)`.
        """
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})

    def __call__(
        self,
        raw_speech,
        sampling_rate: int | None = None,
        padding: bool | str | PaddingStrategy = "max_length",
        max_length: int | None = None,
        truncation: bool = True,
        pad_to_multiple_of: int | None = None,
        return_attention_mask: bool | None = None,
        return_tensors: str | TensorType | None = None,
        **kwargs,
    ) -> BatchFeature:
        """
        Featurise one clip or a batch.

        Args:
            raw_speech:
                One clip or a list of clips. A clip is a 1-D float waveform in [-1, 1] (numpy array, torch tensor or
                list of floats; int16 / int32 PCM is scaled), a path to an audio file (read with [`load_audio`]),
                or a `{"array": ..., "sampling_rate": ...}` mapping such as a `datasets` audio row. Clips must be
                mono: average the channels of multi-channel audio first.
            sampling_rate (`int`, *optional*):
                Rate of the arrays in `raw_speech`; other rates than `self.sampling_rate` are resampled. Files and
                mappings carry their own rate.
            padding (`"max_length"`, `"longest"` or `False`, *optional*, defaults to `"max_length"`):
                `"max_length"`: every clip padded / truncated to `max_length` frames (the official policy).
                `"longest"` (or `True`): the batch is padded to its longest clip, rounded up to `pad_to_multiple_of`.
                `False`: no padding, one array per clip with its own frame count (pad later with `pad`).
            max_length (`int`, *optional*):
                Overrides `self.max_length`.
            truncation (`bool`, *optional*, defaults to `True`):
                Cut clips longer than `max_length` frames, keeping their start (the official policy).
            pad_to_multiple_of (`int`, *optional*):
                Overrides `self.pad_to_multiple_of`.
            return_attention_mask (`bool`, *optional*):
                Also return the frame-level `attention_mask` (1 for real frames). Defaults to
                `self.return_attention_mask`.
            return_tensors (`str` or [`~utils.TensorType`], *optional*):
                `"pt"` or `"np"` for a stacked batch; `None` gives a list of arrays.

        Returns:
            [`BatchFeature`] with `input_values` of shape `(batch, frames, num_mel_bins)` (float32) and, if asked,
            `attention_mask` of shape `(batch, frames)`.
        """
        if kwargs:
            raise TypeError(f"AsdaFeatureExtractor got unexpected arguments: {sorted(kwargs)}.")
        max_length = self.max_length if max_length is None else max_length
        if max_length < 1:
            raise ValueError(f"max_length must be a positive integer, got {max_length}.")
        multiple = self.pad_to_multiple_of if pad_to_multiple_of is None else pad_to_multiple_of
        if return_attention_mask is None:
            return_attention_mask = self.return_attention_mask
        padding = self._padding_mode(padding)

        # Truncation cuts the waveforms to the samples of their first `max_length` frames, which alone are computed.
        max_samples = self.frame_length + (max_length - 1) * self.hop_length if truncation else None
        waveforms = self._prepare_waveforms(raw_speech, sampling_rate, max_samples)
        log_mel, num_frames = self._log_mel(waveforms)
        if padding == PaddingStrategy.MAX_LENGTH:
            target_length = max_length
        else:
            target_length = int(num_frames.max())
        if padding != PaddingStrategy.DO_NOT_PAD:
            target_length = math.ceil(target_length / multiple) * multiple

        # Bring the frame axis to the target (a negative pad cuts), then set every frame past a clip's end (padding,
        # or frames of a shorter clip's zero-padded waveform) to padding_value.
        log_mel = F.pad(log_mel, (0, 0, 0, target_length - log_mel.shape[1]))
        if self.do_normalize:
            log_mel.sub_(self.mean).div_(2 * self.std)
        attention_mask = torch.arange(target_length) < num_frames[:, None]
        outputs = {"input_values": log_mel.masked_fill_(~attention_mask[..., None], self.padding_value)}
        if return_attention_mask:
            outputs["attention_mask"] = attention_mask.to(torch.int32)

        if padding == PaddingStrategy.DO_NOT_PAD:
            lengths = num_frames.tolist()
            outputs = {key: [row[:n].numpy() for row, n in zip(value, lengths)] for key, value in outputs.items()}
        elif return_tensors is None:
            outputs = {key: list(value.numpy()) for key, value in outputs.items()}
        return BatchFeature(outputs, tensor_type=return_tensors)

    @staticmethod
    def _padding_mode(padding) -> PaddingStrategy:
        if padding is True:
            return PaddingStrategy.LONGEST
        if padding is False:
            return PaddingStrategy.DO_NOT_PAD
        try:
            return PaddingStrategy(padding)
        except ValueError:
            raise ValueError(f"padding must be 'max_length', 'longest', True or False, got {padding!r}.") from None

    def _log_mel(self, waveforms: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Kaldi fbank of a batch of centred waveforms: `(batch, frames of the longest clip, num_mel_bins)` and every
        clip's frame count.

        Shorter clips are zero-padded in time; their frames past the end are garbage that the caller masks out.
        """
        lengths = torch.tensor([len(waveform) for waveform in waveforms])
        batch = torch.zeros(len(waveforms), int(lengths.max()))
        for row, waveform in zip(batch, waveforms):
            row[: len(waveform)] = torch.from_numpy(waveform)
        strided = batch.unfold(-1, self.frame_length, self.hop_length)  # snip_edges: only whole frames
        centered = strided - strided.mean(dim=-1, keepdim=True)
        # Pre-emphasised, windowed frames go straight into a zeroed FFT-length buffer, with torchaudio's order of
        # operations; Kaldi repeats a frame's first sample before it.
        padded_frames = strided.new_zeros(*strided.shape[:-1], self.fft_length)
        frames = padded_frames[..., : self.frame_length]
        torch.sub(centered[..., 1:], self.preemphasis * centered[..., :-1], out=frames[..., 1:])
        torch.sub(centered[..., :1], self.preemphasis * centered[..., :1], out=frames[..., :1])
        frames.mul_(self.window)
        spectrum = torch.fft.rfft(padded_frames)
        power = spectrum.real.square().add_(spectrum.imag.square())  # |X|^2, 3x faster than abs().pow(2)
        mel_energies = torch.cat([power[..., rows] @ filters for rows, filters in self.mel_filter_blocks], dim=-1)
        log_mel = mel_energies.clamp_min_(self.mel_floor).log_()
        num_frames = 1 + (lengths - self.frame_length) // self.hop_length
        return log_mel, num_frames

    def _prepare_waveforms(self, raw_speech, sampling_rate: int | None, max_samples: int | None) -> list[np.ndarray]:
        """Validate the input and bring every clip to a centred float32 mono waveform at `self.sampling_rate` (see
        `_centred_waveform`), cut to its first `max_samples` samples."""
        if sampling_rate is not None:
            sampling_rate = _check_sampling_rate(sampling_rate)
        if isinstance(raw_speech, (list, tuple)):
            if len(raw_speech) == 0:
                raise ValueError("Got an empty batch: pass at least one clip.")
            # A flat list of numbers is one clip (as in the other transformers feature extractors).
            is_one_clip = all(isinstance(value, (int, float, np.number)) for value in raw_speech)
            clips = [raw_speech] if is_one_clip else list(raw_speech)
        else:
            clips = [raw_speech]

        waveforms = []
        rate_missing = False
        for index, clip in enumerate(clips):
            clip_sampling_rate = sampling_rate
            if isinstance(clip, (str, os.PathLike)):
                clip, clip_sampling_rate = _read_audio(clip)
            elif isinstance(clip, Mapping):
                if "array" not in clip or "sampling_rate" not in clip:
                    raise ValueError(
                        f"Clip {index} is a mapping with keys {sorted(clip)}; it needs 'array' and 'sampling_rate' "
                        "(the layout of a `datasets` audio row)."
                    )
                clip, clip_sampling_rate = clip["array"], _check_sampling_rate(clip["sampling_rate"])
            waveform = self._as_float_waveform(clip, index)
            if clip_sampling_rate is None:
                rate_missing, clip_sampling_rate = True, self.sampling_rate
            waveform, length = self._centred_waveform(waveform, clip_sampling_rate, max_samples)
            if length < self.frame_length:
                raise ValueError(
                    f"Clip {index} has {length} samples at {self.sampling_rate} Hz "
                    f"({1000 * length / self.sampling_rate:.1f} ms), shorter than one analysis frame "
                    f"({self.frame_length} samples, {1000 * self.frame_length / self.sampling_rate:.0f} ms)."
                )
            waveforms.append(waveform)
        if rate_missing:
            logger.warning(
                f"It is strongly recommended to pass the `sampling_rate` argument to `{self.__class__.__name__}()`. "
                "Failing to do so can result in silent errors that might be hard to debug."
            )
        return waveforms

    def _centred_waveform(
        self, waveform: np.ndarray, sampling_rate: int, max_samples: int | None
    ) -> tuple[np.ndarray, int]:
        """The clip at `self.sampling_rate` minus its mean, cut to its first `max_samples` samples, and its length.

        The mean is over the whole (resampled) clip, as the official data loader removes it before the fbank, so
        truncation does not change the kept frames; the clip is resampled block by block, keeping only the blocks
        of the first `max_samples` samples, so memory does not grow with the clip.
        """
        if sampling_rate == self.sampling_rate:
            return waveform[:max_samples] - waveform.mean(dtype=np.float64).astype(np.float32), len(waveform)
        total, length, kept = 0.0, 0, []
        for block in _resampled_blocks(waveform, sampling_rate, self.sampling_rate):
            if max_samples is None or length < max_samples:
                kept.append(block)
            total += block.sum(dtype=np.float64)
            length += len(block)
        return np.concatenate(kept)[:max_samples] - np.float32(total / length), length

    @staticmethod
    def _as_float_waveform(clip, index: int) -> np.ndarray:
        """One clip as a finite 1-D float32 array in [-1, 1]-scale, or a `ValueError` saying what is wrong."""
        if isinstance(clip, torch.Tensor):
            clip = clip.detach().cpu()
            clip = clip.float() if clip.dtype == torch.bfloat16 else clip  # numpy has no bfloat16
        waveform = np.asarray(clip)
        if waveform.ndim != 1:
            raise ValueError(
                f"Clip {index} has shape {waveform.shape}; each clip must be a 1-D mono waveform. A 2-D array is "
                "ambiguous (a batch, or one multi-channel clip?): pass a batch as a list of 1-D arrays, and mix "
                "stereo / multi-channel audio down to mono first, e.g. `audio.mean(axis=1)` for the "
                "(samples, channels) arrays of soundfile, `audio.mean(axis=0)` for (channels, samples) as torchaudio "
                "and torchcodec return them, or read files with `load_audio`, which averages the channels."
            )
        if waveform.size == 0:
            raise ValueError(f"Clip {index} is empty (0 samples).")
        if waveform.dtype.kind in "iub":
            if waveform.dtype not in PCM_SCALES:
                raise ValueError(
                    f"Clip {index} holds {waveform.dtype} samples; ASDA expects float samples in [-1, 1]. int16 and "
                    "int32 PCM are scaled automatically; scale other integer audio yourself, e.g. `audio / 32768` "
                    "for 16-bit values stored in a wider integer type."
                )
            # Scaling by a power of two in float32 rounds as scaling in float64 would.
            scale = np.float32(1 / PCM_SCALES[waveform.dtype])
            return np.multiply(waveform, scale, dtype=np.float32)
        if waveform.dtype.kind != "f":
            raise ValueError(f"Clip {index} has dtype {waveform.dtype}; expected a real-valued float waveform.")
        waveform = waveform.astype(np.float32, copy=False)
        # The extremes are NaN or infinite if any sample is, and give the peak, without a copy of a long clip.
        lowest, highest = float(waveform.min()), float(waveform.max())
        if not math.isfinite(lowest + highest):
            num_bad = int((~np.isfinite(waveform)).sum())
            raise ValueError(f"Clip {index} contains {num_bad} non-finite samples (NaN or inf).")
        peak = max(highest, -lowest)
        if peak > MAX_FLOAT_AMPLITUDE:
            raise ValueError(
                f"Clip {index} peaks at {peak:.1f}, far outside [-1, 1]: it looks like integer PCM converted to float "
                "without scaling. Divide 16-bit values by 32768 (or pass the int16 array itself, which is scaled)."
            )
        return waveform


# `save_pretrained` copies this file next to `preprocessor_config.json` and names it in `auto_map`.
AsdaFeatureExtractor.register_for_auto_class()


__all__ = ["AsdaFeatureExtractor", "load_audio", "resample_audio"]
