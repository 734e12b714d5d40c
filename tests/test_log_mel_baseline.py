"""examples/log_mel_baseline.py, the trivial baseline that small-data results are read against, and
examples/linear_probe.py, its classifier on a frozen encoder."""

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import import_example
from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaModel, load_audio


log_mel_baseline = import_example("log_mel_baseline")
linear_probe = import_example("linear_probe")
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


# ---------------------------------------------------------------------------------------------------------------------
# examples/linear_probe.py: the same classifier on a frozen encoder's output
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    path = tmp_path_factory.mktemp("encoder")
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
    AsdaModel(config).save_pretrained(path)
    AsdaFeatureExtractor.from_preset("speech_commands").save_pretrained(path)
    return path


def test_probe_embeddings_are_the_encoders_patch_statistics_and_cls_token(encoder, tones):
    extractor = AsdaFeatureExtractor.from_preset("speech_commands")
    features, labels = linear_probe.clip_features(tones / "eval.csv", extractor)
    assert features.shape == (9, 128, 128) and labels[:3] == ["low", "mid", "high"]
    model = AsdaModel.from_pretrained(encoder)
    embeddings = linear_probe.encoder_embeddings(model, features)
    with torch.no_grad():
        states = model(features[:1]).last_hidden_state[0].numpy()
    grid = states[1:].reshape(8, 8, 32)  # (time patch, frequency patch, hidden): time-major tokens
    expected = np.concatenate([grid.mean(0), grid.std(0)], axis=-1).reshape(-1)  # per frequency patch: mean, std
    np.testing.assert_allclose(embeddings["patch_statistics"][0], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(embeddings["utterance"][0], states[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pooling", ["patch_statistics", "utterance"])
def test_probe_accuracy_is_the_logistic_regression_on_those_embeddings(encoder, tones, pooling, capsys):
    accuracy = linear_probe.main(["--model", str(encoder), "--train_file", str(tones / "train.csv"), "--test_file",
                                  str(tones / "eval.csv"), "--pooling", pooling])  # fmt: skip
    model = AsdaModel.from_pretrained(encoder)
    extractor = AsdaFeatureExtractor.from_preset("speech_commands")
    (train, train_labels), (test, test_labels) = (
        (linear_probe.encoder_embeddings(model, features)[pooling], labels)
        for features, labels in (linear_probe.clip_features(tones / f"{split}.csv", extractor)
                                 for split in ("train", "eval"))
    )  # fmt: skip
    classifier = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(train, train_labels)
    assert accuracy == classifier.score(test, test_labels)
    assert f"test accuracy {accuracy:.4f}" in capsys.readouterr().out
