"""AsdaFeatureExtractor: parity with the official Kaldi features, resampling, length policy, bad input, HF mixins."""

import math
import os
import random
import re
import subprocess
import sys
import textwrap
import unittest
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from safetensors.torch import load_file
from transformers.testing_utils import CaptureLogger
from transformers.utils import logging
from transformers_tests.test_sequence_feature_extraction_common import SequenceFeatureExtractionTestMixin

from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification, load_audio
from modeling_asda import feature_extraction_asda
from modeling_asda.tools.convert_checkpoint import classifier_task
from modeling_asda.feature_extraction_asda import resample_audio


REPO = Path(__file__).resolve().parents[1]
CLIPS = ("clip_a", "clip_b")
# The official features floor log-mel energies at log(float32 eps).
LOG_FLOOR = math.log(torch.finfo(torch.float32).eps)


def floats_list(shape, scale=1.0, rng=random.Random(0)):
    return [[rng.random() * scale for _ in range(shape[1])] for _ in range(shape[0])]


class AsdaFeatureExtractionTester:
    """Spectrogram-shaped inputs `(frames, num_mel_bins)`, the layout `pad` and the collator see.

    The mixin checks the padded values against `padding_value` (non-zero here) assuming the longest input has
    `max_seq_length + seq_length_diff` frames, so the lengths run from `min_seq_length` up to exactly that.
    """

    def __init__(self, batch_size=7, min_seq_length=40, seq_length_diff=26, num_mel_bins=24):
        self.batch_size = batch_size
        self.min_seq_length = min_seq_length
        self.seq_length_diff = seq_length_diff
        self.max_seq_length = min_seq_length + (batch_size - 2) * seq_length_diff
        self.feature_size = num_mel_bins

    def prepare_feat_extract_dict(self):
        return {"num_mel_bins": self.feature_size, "max_length": 64, "mean": -5.0, "std": 4.0, "sampling_rate": 16000}

    def prepare_inputs_for_common(self, equal_length=False, numpify=False):
        if equal_length:
            lengths = [self.max_seq_length] * self.batch_size
        else:
            lengths = [self.min_seq_length + index * self.seq_length_diff for index in range(self.batch_size)]
        inputs = [floats_list((length, self.feature_size)) for length in lengths]
        return [np.asarray(x) for x in inputs] if numpify else inputs


class AsdaFeatureExtractionTest(SequenceFeatureExtractionTestMixin, unittest.TestCase):
    feature_extraction_class = AsdaFeatureExtractor

    def setUp(self):
        self.feat_extract_tester = AsdaFeatureExtractionTester()


@pytest.fixture(scope="module")
def golden(shared_dir):
    return load_file(shared_dir / "golden" / "clip_features.safetensors")


@pytest.fixture(scope="module")
def log_mel_extractor():
    """Un-normalised, unpadded log-mel energies: what `fbank_raw` holds."""
    return AsdaFeatureExtractor(do_normalize=False)


def log_mel(extractor, audio, **kwargs):
    out = extractor(audio, padding=False, truncation=False, **kwargs)["input_values"]
    return torch.from_numpy(out[0])


def sine(frequency, seconds, sampling_rate, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * frequency * np.arange(int(seconds * sampling_rate)) / sampling_rate)).astype(
        np.float32
    )


# ---------------------------------------------------------------------------------------------------------------------
# Parity with the official features (golden tensors made by torchaudio's kaldi.fbank and resample)


@pytest.mark.parametrize("clip", CLIPS)
def test_fbank_matches_official_fbank_of_the_16k_waveform(golden, log_mel_extractor, clip):
    features = log_mel(log_mel_extractor, golden[f"{clip}.wave_16k"].numpy(), sampling_rate=16000)
    reference = golden[f"{clip}.fbank_raw"]
    assert features.shape == reference.shape == (998, 128)
    # The golden README measures up to 3.4e-5 between thread counts; the mel filters here are transformers' float64
    # Kaldi filters, torchaudio's are computed in float32 (1.5e-4 at most on these clips).
    torch.testing.assert_close(features, reference, atol=2e-4, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_32k_clip_matches_official_features(golden, shared_dir, log_mel_extractor, clip):
    path = shared_dir / "data" / f"audioset_clip_{clip[-1]}_32k.wav"
    pcm, sampling_rate = soundfile.read(path, dtype="int16")
    assert sampling_rate == 32000
    reference = golden[f"{clip}.fbank_raw"]
    for audio, kwargs in ((path, {}), (pcm, {"sampling_rate": 32000})):
        features = log_mel(log_mel_extractor, audio, **kwargs)
        assert features.shape == (998, 128)
        error = (features - reference).abs()
        # float32 rounding of the resampled waveform (1 ulp, see the load_audio test) moves log energies near the
        # floor by up to ~1.1e-3 (the reference itself moves by 1.2e-3 when its fbank is recomputed in float64);
        # away from the floor the features agree to better than 1e-3.
        assert error[reference > LOG_FLOOR + 4].max() <= 1e-3
        assert error.max() <= 1.5e-3
        assert error.mean() <= 1e-5

    normalised = AsdaFeatureExtractor()(path, return_tensors="pt")["input_values"][0]
    torch.testing.assert_close(normalised, golden[f"{clip}.fbank_norm_1024"], atol=2e-4, rtol=0)
    short = AsdaFeatureExtractor(max_length=256)(path, return_tensors="pt")["input_values"][0]
    torch.testing.assert_close(short, golden[f"{clip}.fbank_norm_256"], atol=2e-4, rtol=0)


@pytest.mark.parametrize("clip", CLIPS)
def test_load_audio_reproduces_official_resampling(golden, shared_dir, clip):
    waveform = load_audio(shared_dir / "data" / f"audioset_clip_{clip[-1]}_32k.wav")
    assert waveform.dtype == np.float32 and waveform.shape == (160000,)
    # torchaudio resampled in float32; one float32 ulp at these peaks is 6e-8.
    np.testing.assert_allclose(waveform, golden[f"{clip}.wave_16k"].numpy(), atol=2.5e-7, rtol=0)


def windowed_sinc_reference(waveform, orig, new, outputs=None, width=6, rolloff=0.99):
    """Direct sums y[n] = sum_j x[j] k(j / orig - n / new) of torchaudio's documented default resampling kernel, for
    the output indices `outputs` (default: all `ceil(len * new / orig)`)."""
    cutoff = rolloff * min(orig, new)
    if outputs is None:
        outputs = np.arange(math.ceil(len(waveform) * new / orig))
    t = cutoff * (np.arange(len(waveform))[None, :] / orig - outputs[:, None] / new)
    kernel = np.where(np.abs(t) <= width, np.sinc(t) * np.cos(np.pi * t / (2 * width)) ** 2, 0.0) * cutoff / orig
    return kernel @ waveform


# From the 1 kHz to the 1 MHz bound; 11127 Hz (old Macintosh audio) shares no factor with 16 kHz but 1: its 16000
# filter phases, a second of output, are computed in 942 groups.
@pytest.mark.parametrize("orig", [1000, 8000, 11127, 22050, 32000, 44100, 48000, 1_000_000])
@pytest.mark.parametrize("block_size", [None, 100], ids=["one block", "small blocks"])
def test_resampling_equals_the_windowed_sinc_formula(orig, block_size, monkeypatch):
    if block_size is not None:
        monkeypatch.setattr(feature_extraction_asda, "RESAMPLING_BLOCK_SIZE", block_size)
    rng = np.random.default_rng(orig)
    # At least 20 ms, and every output phase: a step of orig / gcd input samples.
    waveform = rng.uniform(-0.5, 0.5, max(orig // 50, orig // math.gcd(orig, 16000) + 50)).astype(np.float32)
    resampled = resample_audio(waveform, orig, 16000)
    assert resampled.dtype == np.float32 and resampled.shape == (math.ceil(len(waveform) * 16000 / orig),)
    # Both edges, where the filter reaches past the clip, and samples in between.
    num_out = len(resampled)
    outputs = np.unique(np.r_[np.arange(20), rng.choice(num_out, 400), np.arange(num_out - 20, num_out)])
    reference = windowed_sinc_reference(waveform.astype(np.float64), orig, 16000, outputs)
    np.testing.assert_allclose(resampled[outputs], reference, atol=1e-6, rtol=0)


NO_SCIPY_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.modules["scipy"] = None  # as in a venv with only torch, transformers and soundfile
    from modeling_asda import AsdaFeatureExtractor
    from safetensors.torch import load_file

    wave_path, golden_path = sys.argv[1:]
    features = AsdaFeatureExtractor()(wave_path, return_tensors="pt")["input_values"][0]
    error = (features - load_file(golden_path)["clip_a.fbank_norm_1024"]).abs().max().item()
    assert error < 2e-4, error
    """
)


def test_32k_clip_is_featurised_without_scipy(shared_dir):
    result = subprocess.run(
        [sys.executable, "-c", NO_SCIPY_SCRIPT, str(shared_dir / "data" / "audioset_clip_a_32k.wav"),
         str(shared_dir / "golden" / "clip_features.safetensors")],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]


def test_resampled_tone_equals_the_tone_sampled_at_16k():
    resampled = resample_audio(sine(1000.0, 0.5, 44100), 44100, 16000)
    expected = sine(1000.0, 0.5, 16000)
    # Away from the edges, where the filter sees zeros; the pass band is flat to ~1e-3 at 1 kHz.
    np.testing.assert_allclose(resampled[100:-100], expected[100:-100], atol=2e-3, rtol=0)


def test_load_audio_mixes_channels_down_and_resamples(tmp_path):
    left, right = sine(440.0, 1.0, 22050), sine(660.0, 1.0, 22050, amplitude=0.25)
    path = tmp_path / "stereo.flac"
    soundfile.write(path, np.stack([left, right], axis=1), 22050, subtype="PCM_24")
    waveform = load_audio(path)
    assert waveform.dtype == np.float32 and waveform.shape == (16000,)
    expected = resample_audio((left + right) / 2, 22050, 16000)
    np.testing.assert_allclose(waveform, expected, atol=1e-6, rtol=0)


def test_load_audio_names_a_missing_file_a_folder_and_an_undecodable_file(tmp_path):
    missing = tmp_path / "missing.wav"
    with pytest.raises(FileNotFoundError) as error:
        load_audio(missing)
    assert error.value.filename == str(missing)
    folder = tmp_path / "folder.wav"
    folder.mkdir()
    with pytest.raises(IsADirectoryError) as error:
        AsdaFeatureExtractor()(folder)
    assert error.value.filename == str(folder)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEnot really")
    with pytest.raises(soundfile.LibsndfileError, match=f"{corrupt}.*No 'data' chunk"):
        load_audio(corrupt)
    # A header rate of 1 Hz would make resampling to 16 kHz allocate 16000 samples per sample.
    soundfile.write(one_hertz := tmp_path / "one_hertz.wav", sine(440.0, 0.1, 16000), 1)
    with pytest.raises(ValueError, match=f"{one_hertz} declares a sampling rate of 1 Hz"):
        load_audio(one_hertz)


# ---------------------------------------------------------------------------------------------------------------------
# Length policy and batching


def test_official_length_policy_pads_log_mel_zeros_then_normalises():
    extractor = AsdaFeatureExtractor()
    waveform = np.random.default_rng(0).normal(0, 0.1, 160000).astype(np.float32)
    out = extractor(waveform, sampling_rate=16000, return_attention_mask=True, return_tensors="pt")
    assert out["input_values"].shape == (1, 1024, 128) and out["input_values"].dtype == torch.float32
    assert out["attention_mask"].sum().item() == 998  # 1 + (160000 - 400) // 160
    padded = out["input_values"][0, 998:]
    assert torch.all(padded == torch.tensor((0 + 4.268) / (2 * 4.569)))
    assert extractor.padding_value == pytest.approx((0 + 4.268) / (2 * 4.569))


def test_long_clips_are_truncated_keeping_their_start(log_mel_extractor):
    waveform = np.random.default_rng(1).normal(0, 0.1, 12 * 16000).astype(np.float32)
    full = log_mel(log_mel_extractor, waveform, sampling_rate=16000)
    assert full.shape[0] == 1198
    cut = log_mel_extractor(waveform, sampling_rate=16000, return_tensors="pt")["input_values"][0]
    assert torch.equal(cut, full[:1024])


@pytest.mark.parametrize("sampling_rate", [16000, 32000])
def test_truncation_keeps_the_features_of_the_whole_clip(log_mel_extractor, sampling_rate):
    """Only the kept frames are computed, but from the waveform minus its mean over the whole (resampled) clip, as
    the official pipeline does: the features equal the full clip's, cut."""
    waveform = np.random.default_rng(5).normal(0, 0.1, 180 * sampling_rate).astype(np.float32)
    waveform[60 * sampling_rate :] += 0.3  # the last two minutes move the clip's mean
    full = log_mel(log_mel_extractor, waveform, sampling_rate=sampling_rate)
    assert full.shape == (17998, 128)
    truncated = log_mel_extractor(waveform, sampling_rate=sampling_rate, return_tensors="pt")["input_values"][0]
    assert torch.equal(truncated, full[:1024])
    batch = [waveform[: 5 * sampling_rate], waveform]
    longest = log_mel_extractor(batch, sampling_rate=sampling_rate, padding="longest", return_tensors="pt")
    assert torch.equal(longest["input_values"][1], full[:1024])
    unpadded = log_mel_extractor(waveform, sampling_rate=sampling_rate, padding=False, max_length=300)
    assert torch.equal(torch.from_numpy(unpadded["input_values"][0]), full[:300])
    # The first 10.24 s alone have another mean. Per-frame DC removal cancels it up to float32 rounding, which it
    # changes: featurising the kept samples minus their own mean would fail the equalities above.
    prefix = log_mel(log_mel_extractor, waveform[: 11 * sampling_rate], sampling_rate=sampling_rate)
    assert not torch.equal(prefix[:1024], full[:1024])


PEAK_MEMORY_SCRIPT = textwrap.dedent(
    """
    import resource
    import numpy as np
    import torch
    from modeling_asda import AsdaFeatureExtractor

    torch.set_num_threads(1)  # memory is measured, not speed; one thread is not slowed by a busy machine
    extractor = AsdaFeatureExtractor()
    extractor(np.zeros(32000, np.float32), sampling_rate=32000)  # load the kernels first
    hour_at_32k = np.random.default_rng(0).random(3600 * 32000, dtype=np.float32)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for sampling_rate, waveform in ((16000, hour_at_32k[: 3600 * 16000]), (32000, hour_at_32k)):
        features = extractor(waveform, sampling_rate=sampling_rate, return_tensors="np")["input_values"]
        assert features.shape == (1, 1024, 128)
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024)
    """
)
# A 10.24 s output needs a few MB of working memory (its waveform, frames and spectra); the full spectrogram of an
# hour, cut afterwards, took about 3 GB.
MAX_EXTRA_MEMORY_MB = 200


def test_memory_of_a_truncated_hour_depends_on_the_output_length_only():
    """1 h at 16 kHz, and at 32 kHz (resampled), featurised to 1024 frames in a fresh process (for ru_maxrss)."""
    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY_SCRIPT],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    extra_mb = float(result.stdout.split()[-1])
    assert extra_mb < MAX_EXTRA_MEMORY_MB, f"featurising 10.24 s of a 1-h clip took {extra_mb:.0f} MB over its input"


def test_longest_padding_rounds_up_to_16_frames_and_masks_each_clip():
    extractor = AsdaFeatureExtractor()
    rng = np.random.default_rng(2)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (16000, 40000, 12345)]
    batch = extractor(clips, sampling_rate=16000, padding="longest", return_attention_mask=True, return_tensors="pt")
    num_frames = [1 + (len(clip) - 400) // 160 for clip in clips]  # 98, 248, 75
    assert batch["input_values"].shape == (3, 256, 128)
    assert batch["attention_mask"].sum(dim=1).tolist() == num_frames
    for row, clip, frames in zip(batch["input_values"], clips, num_frames):
        alone = extractor(clip, sampling_rate=16000, padding=False, return_tensors="pt")["input_values"][0]
        assert alone.shape[0] == frames
        torch.testing.assert_close(row[:frames], alone, atol=1e-5, rtol=0)
        assert torch.all(row[frames:] == extractor.padding_value)


def test_unpadded_features_pad_like_the_extractor():
    """`padding=False` + `pad` (what a collator does) gives what `padding="longest"` gives directly."""
    extractor = AsdaFeatureExtractor()
    rng = np.random.default_rng(3)
    clips = [rng.normal(0, 0.1, n).astype(np.float32) for n in (8000, 20000)]
    unpadded = extractor(clips, sampling_rate=16000, padding=False)
    assert [len(x) for x in unpadded["input_values"]] == [48, 123]
    collated = extractor.pad(unpadded, padding="longest", pad_to_multiple_of=16, return_tensors="pt")
    direct = extractor(clips, sampling_rate=16000, padding="longest", return_tensors="pt")
    torch.testing.assert_close(collated["input_values"], direct["input_values"], atol=1e-5, rtol=0)


def test_model_ignores_padding_marked_by_the_attention_mask():
    torch.manual_seed(0)
    config = AsdaConfig(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=56, decoder_hidden_size=32,
        num_labels=3, attn_implementation="eager",
    )
    model = AsdaForAudioClassification(config).eval()
    extractor = AsdaFeatureExtractor(return_attention_mask=True)
    rng = np.random.default_rng(4)
    short, long = rng.normal(0, 0.1, 16000).astype(np.float32), rng.normal(0, 0.1, 48000).astype(np.float32)
    batch = extractor([short, long], sampling_rate=16000, padding="longest", return_tensors="pt")
    alone = extractor([short], sampling_rate=16000, padding="longest", return_tensors="pt")
    assert batch["input_values"].shape[1] == 304 and alone["input_values"].shape[1] == 112
    with torch.no_grad():
        torch.testing.assert_close(model(**batch).logits[:1], model(**alone).logits, atol=1e-5, rtol=1e-5)


def test_every_input_form_gives_the_same_features(shared_dir):
    extractor = AsdaFeatureExtractor()
    path = shared_dir / "data" / "audioset_clip_a_32k.wav"
    pcm, _ = soundfile.read(path, dtype="int16")
    reference = extractor(path, return_tensors="np")["input_values"]
    forms = [
        (str(path), {}),
        ({"array": pcm.astype(np.float32) / 32768, "sampling_rate": 32000}, {}),
        (pcm, {"sampling_rate": 32000}),
        (torch.from_numpy(pcm.astype(np.float64) / 32768), {"sampling_rate": 32000}),
        ([torch.from_numpy(pcm.astype(np.float32) / 32768)], {"sampling_rate": 32000}),
        ([load_audio(path)], {"sampling_rate": 16000}),
    ]
    for audio, kwargs in forms:
        features = extractor(audio, return_tensors="np", **kwargs)["input_values"]
        np.testing.assert_allclose(features, reference, atol=1e-5)
    assert isinstance(extractor(load_audio(path), sampling_rate=16000)["input_values"], list)


def test_int16_and_int32_pcm_are_scaled_like_soundfile():
    extractor = AsdaFeatureExtractor()
    pcm16 = (sine(300.0, 0.5, 16000) * 32767).astype(np.int16)
    expected = extractor(pcm16 / 32768.0, sampling_rate=16000, return_tensors="np")["input_values"]
    for pcm in (pcm16, pcm16.astype(np.int32) << 16):
        features = extractor(pcm, sampling_rate=16000, return_tensors="np")["input_values"]
        np.testing.assert_allclose(features, expected, atol=1e-5)


def test_presets_hold_the_official_statistics_and_lengths():
    expected = {
        "audioset": (-4.268, 4.569, 1024),
        "esc50": (-6.627, 5.359, 512),
        "speech_commands": (-6.846, 5.565, 128),
    }
    for name, (mean, std, max_length) in expected.items():
        extractor = AsdaFeatureExtractor.from_preset(name)
        assert (extractor.mean, extractor.std, extractor.max_length) == (mean, std, max_length)
        assert extractor.padding_value == pytest.approx(-mean / (2 * std))
    assert AsdaFeatureExtractor.from_preset("esc50", max_length=500).max_length == 500
    # The converter picks the preset of an official fine-tuning config.
    assert classifier_task({"esc50_eval": True}) == "esc50"
    assert classifier_task({"spcv2_eval": True}) == "speech_commands"
    assert classifier_task({}) == "audioset"
    with pytest.raises(ValueError, match="Unknown preset 'fsd50k'"):
        AsdaFeatureExtractor.from_preset("fsd50k")


def test_missing_sampling_rate_warns_like_transformers_extractors():
    extractor = AsdaFeatureExtractor()
    logger = logging.get_logger("modeling_asda.feature_extraction_asda")
    waveform = sine(440.0, 0.1, 16000)
    with CaptureLogger(logger) as captured:
        extractor(waveform)
    assert "pass the `sampling_rate` argument" in captured.out
    with CaptureLogger(logger) as captured:
        extractor(waveform, sampling_rate=16000)
    assert captured.out == ""


# ---------------------------------------------------------------------------------------------------------------------
# Bad input: a ValueError that names the problem


def bad_inputs():
    ok = sine(440.0, 0.1, 16000)
    nan, inf = ok.copy(), ok.copy()
    nan[10], inf[20] = np.nan, np.inf
    return [
        ("empty clip", np.zeros(0, np.float32), {}, "Clip 0 is empty"),
        ("empty batch", [], {}, "empty batch"),
        ("nan", nan, {}, "1 non-finite samples"),
        ("inf in a batch", [ok, inf], {}, "Clip 1 contains 1 non-finite"),
        ("shorter than a frame", ok[:399], {}, r"399 samples at 16000 Hz \(24.9 ms\), shorter than one analysis frame"),
        ("short after resampling", ok[:199], {"sampling_rate": 8000}, "398 samples at 16000 Hz"),
        ("stereo, channels last", np.stack([ok, ok], axis=1), {}, r"shape \(1600, 2\).*mono.*mean\(axis=1\)"),
        ("stereo, channels first", np.stack([ok, ok]), {}, r"ambiguous.*list of 1-D arrays.*mean\(axis=0\)"),
        ("stereo clip in a batch", [ok, np.stack([ok, ok])], {}, r"Clip 1 has shape \(2, 1600\)"),
        ("stereo tensor", torch.from_numpy(np.stack([ok, ok])), {}, r"shape \(2, 1600\).*mono"),
        ("int64 pcm", (ok * 32767).astype(np.int64), {}, "int64 samples.*scale other integer audio"),
        ("unscaled pcm as float", ok * 32767, {}, "without scaling"),
        ("complex", ok.astype(np.complex64), {}, "real-valued float"),
        ("mapping without rate", {"array": ok}, {}, "needs 'array' and 'sampling_rate'"),
        ("padding mode", ok, {"padding": "everything"}, "padding must be"),
        ("max_length", ok, {"max_length": 0}, "max_length must be a positive integer, got 0"),
    ]


@pytest.mark.parametrize("name, audio, kwargs, message", bad_inputs(), ids=[case[0] for case in bad_inputs()])
def test_bad_input_raises_a_value_error_naming_the_problem(name, audio, kwargs, message):
    kwargs.setdefault("sampling_rate", 16000)
    with pytest.raises(ValueError, match=message):
        AsdaFeatureExtractor()(audio, **kwargs)


BAD_SAMPLING_RATES = [
    (1, ValueError, "sampling_rate=1 looks like kHz; pass 1000 "),
    (16, ValueError, "sampling_rate=16 looks like kHz; pass 16000 "),
    (44.1, ValueError, "sampling_rate=44.1 looks like kHz; pass 44100 "),
    (0.5, ValueError, "sampling_rate=0.5 Hz is below the 1000 Hz minimum"),
    ("16000", TypeError, "must be an int number of Hz, not the str '16000': pass 16000"),
    (0, ValueError, "must be a positive number of Hz, got 0"),
    (-5, ValueError, "must be a positive number of Hz, got -5"),
    (44100.5, ValueError, "must be a whole number of Hz, got 44100.5"),
    (True, TypeError, "must be an int number of Hz, not the bool True"),
    (10**12, ValueError, "sampling_rate=1000000000000 Hz is above the 1000000 Hz maximum"),
]
RATE_ENTRY_POINTS = {
    "call": lambda rate, path: AsdaFeatureExtractor()(sine(440.0, 0.1, 16000), sampling_rate=rate),
    "mapping": lambda rate, path: AsdaFeatureExtractor()({"array": sine(440.0, 0.1, 16000), "sampling_rate": rate}),
    "constructor": lambda rate, path: AsdaFeatureExtractor(sampling_rate=rate),
    "load_audio": lambda rate, path: load_audio(path, sampling_rate=rate),
}


@pytest.fixture(scope="module")
def wav_16k(tmp_path_factory):
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    soundfile.write(path, sine(440.0, 0.1, 16000), 16000)
    return path


@pytest.mark.parametrize("entry_point", RATE_ENTRY_POINTS)
@pytest.mark.parametrize("rate, error, message", BAD_SAMPLING_RATES, ids=[repr(case[0]) for case in BAD_SAMPLING_RATES])
def test_implausible_sampling_rates_are_refused_naming_the_mistake(wav_16k, entry_point, rate, error, message):
    with pytest.raises(error, match=re.escape(message)):
        RATE_ENTRY_POINTS[entry_point](rate, wav_16k)


def test_sampling_rates_within_the_bounds_are_accepted_in_any_number_type(wav_16k):
    extractor = AsdaFeatureExtractor()
    for rate in (16000.0, np.int64(16000), np.float32(16000)):
        assert extractor(sine(440.0, 0.1, 16000), sampling_rate=rate)["input_values"][0].shape == (1024, 128)
    assert AsdaFeatureExtractor(sampling_rate=np.int32(8000)).sampling_rate == 8000
    assert len(load_audio(wav_16k, sampling_rate=1000)) == 100
    for rate, seconds in ((1000, 0.1), (1_000_000, 0.03)):  # the bounds: 16x up, 62.5x down
        waveform = sine(100.0, seconds, rate)
        num_frames = 1 + (math.ceil(len(waveform) * 16000 / rate) - 400) // 160
        features = extractor(waveform, sampling_rate=rate, padding=False)["input_values"][0]
        assert features.shape == (num_frames, 128)


def test_unknown_call_arguments_are_refused():
    with pytest.raises(TypeError, match="target_length"):
        AsdaFeatureExtractor()(sine(440.0, 0.1, 16000), sampling_rate=16000, target_length=512)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"std": 0.0}, "std must be positive"),
        ({"padding_side": "left"}, "padding_side must be 'right'"),
        ({"max_length": 0}, "max_length must be a positive integer"),
        ({"fft_length": 256}, "fft_length .* at least frame_length"),
        ({"max_frequency": 9000.0}, "max_frequency <= sampling_rate / 2"),
        ({"feature_size": 80}, r"feature_size \(80\) must equal num_mel_bins \(128\)"),
    ],
)
def test_inconsistent_settings_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        AsdaFeatureExtractor(**kwargs)
