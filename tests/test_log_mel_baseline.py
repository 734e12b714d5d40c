"""examples/log_mel_baseline.py: the trivial baseline that small-data results are read against."""

import numpy as np
import pytest

from conftest import import_example
from modeling_asda import AsdaFeatureExtractor, load_audio


log_mel_baseline = import_example("log_mel_baseline")
write_tone_dataset = import_example("make_tone_dataset").write_tone_dataset


@pytest.fixture(scope="module")
def tones(tmp_path_factory):
    return write_tone_dataset(tmp_path_factory.mktemp("tones"), ["low", "mid", "high"], {"train": 12, "eval": 9})


def test_features_are_each_bins_mean_and_std_over_the_clips_frames(tones):
    extractor = AsdaFeatureExtractor.from_preset("speech_commands")
    features, labels = log_mel_baseline.log_mel_statistics(tones / "eval.csv", extractor)
    assert features.shape == (9, 256) and labels[:3] == ["low", "mid", "high"]
    # One 1-s clip has 98 frames: the statistics cover those, not the padding up to 128.
    log_mel = extractor(load_audio(tones / "audio/eval/0.wav"), sampling_rate=16000, return_tensors="np")
    frames = log_mel["input_values"][0][:98]
    np.testing.assert_allclose(features[0], np.concatenate([frames.mean(0), frames.std(0)]), rtol=1e-5, atol=1e-6)


def test_tones_one_per_class_are_separated(tones, capsys):
    accuracy = log_mel_baseline.main(["--train_file", str(tones / "train.csv"), "--test_file", str(tones / "eval.csv"),
                                      "--feature_preset", "speech_commands"])  # fmt: skip
    assert accuracy == 1.0
    assert "test accuracy 1.0000" in capsys.readouterr().out
