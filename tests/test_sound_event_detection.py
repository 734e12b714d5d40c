"""Sound event detection: event manifests -> frame targets, strong-label fine-tuning that finds events at their
times, SED metrics (sed_scores_eval), and `asda-classify --events` across window boundaries."""

import json

import numpy as np
import pytest
import soundfile
import torch

from conftest import import_example
from modeling_asda import AsdaFeatureExtractor, AsdaForAudioFrameClassification
from modeling_asda.data.events import Event, event_dataset, frame_targets, read_event_manifest, roll_events
from modeling_asda.tools import classify
from modeling_asda.tools.events import (
    Detection,
    detect_events,
    median_filter,
    median_filter_steps,
    recording_events,
    stitch_windows,
)
from modeling_asda.training import finetuning
from modeling_asda.training.augment import mixup
from modeling_asda.training.sed_metrics import SedScoringArguments, sed_metrics


make_sound_events = import_example("make_sound_events")
TINY_CONFIG = {"model_type": "asda", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
               "intermediate_size": 64}  # fmt: skip
PRESET = "configuration/finetuning/strong-labels.json"
TONE_HZ = (500.0, 2000.0)  # two octaves of tones: enough for a tiny model trained in seconds to generalise


# ---------------------------------------------------------------------------------------------------------------------
# Event manifests and frame targets
# ---------------------------------------------------------------------------------------------------------------------


def test_event_manifest_groups_events_per_clip_and_keeps_clips_without_events(tmp_path):
    (tmp_path / "events.tsv").write_text(
        "filename\tonset\toffset\tevent_label\n"
        "a.wav\t2.5\t3.0\tdog\n"
        "a.wav\t0.5\t1.25\tspeech\n"
        "b.wav\t\t\t\n"
        "c.wav\t1\t2\tdog\n"
    )
    clips = read_event_manifest(tmp_path / "events.tsv")
    assert list(clips) == [str(tmp_path / name) for name in ("a.wav", "b.wav", "c.wav")]
    assert clips[str(tmp_path / "a.wav")] == [Event(0.5, 1.25, "speech"), Event(2.5, 3.0, "dog")]
    assert clips[str(tmp_path / "b.wav")] == []
    dataset = event_dataset(tmp_path / "events.tsv")
    assert dataset["events"][2] == [{"onset": 1.0, "offset": 2.0, "label": "dog"}]


@pytest.mark.parametrize(
    ("row", "message"),
    [("a.wav\t1.0\t0.5\tdog", "onset < offset"), ("a.wav\tx\t0.5\tdog", "must be numbers"),
     ("a.wav\t0.1\t0.5\t", "and a label")],
)  # fmt: skip
def test_event_manifest_rejects_bad_rows_naming_the_line(tmp_path, row, message):
    (tmp_path / "events.tsv").write_text(f"filename\tonset\toffset\tevent_label\nb.wav\t\t\t\n{row}\n")
    with pytest.raises(ValueError, match=f"line 3: .*{message}"):
        read_event_manifest(tmp_path / "events.tsv")


def test_frame_targets_mark_the_steps_an_event_covers_by_half():
    # Steps of 0.16 s: [0, .16), [.16, .32), [.32, .48), [.48, .64), ...
    events = [Event(0.20, 0.50, "a"), Event(0.05, 0.09, "b"), Event(0.9, 5.0, "b")]
    targets = frame_targets(events, {"a": 0, "b": 1}, 8, 0.16)
    # a covers 0.12 of step 1 (>= 0.08), all of step 2, 0.02 of step 3 (< 0.08).
    np.testing.assert_array_equal(targets[:, 0], [0, 1, 1, 0, 0, 0, 0, 0])
    # b's 40 ms event covers itself entirely inside step 0; the long one runs from 0.9 (step 5: 0.06 < 0.08) on.
    np.testing.assert_array_equal(targets[:, 1], [1, 0, 0, 0, 0, 0, 1, 1])
    with pytest.raises(ValueError, match="'c' is not one of the model's classes"):
        frame_targets([Event(0.0, 1.0, "c")], {"a": 0}, 4, 0.16)


def test_rolled_events_follow_the_rolled_waveform():
    duration, sampling_rate, shift = 4.0, 100, 150  # roll by 1.5 s
    events = [Event(0.5, 1.0, "a"), Event(2.0, 3.5, "b")]
    waveform = np.zeros(int(duration * sampling_rate))
    for event, value in zip(events, (1.0, 2.0)):
        waveform[int(event.onset * sampling_rate) : int(event.offset * sampling_rate)] = value
    rolled_waveform = np.roll(waveform, shift)
    rolled = roll_events(events, shift / sampling_rate, duration)
    assert rolled == [Event(0.0, 1.0, "b"), Event(2.0, 2.5, "a"), Event(3.5, 4.0, "b")]  # b wraps around
    for event in rolled:
        span = rolled_waveform[round(event.onset * sampling_rate) : round(event.offset * sampling_rate)]
        assert (span == {"a": 1.0, "b": 2.0}[event.label]).all()


def test_mixup_mixes_frame_targets_and_keeps_ignored_entries_ignored():
    inputs = torch.randn(2, 32, 8)
    labels = torch.tensor([[[1.0], [0.0], [1.0]], [[0.0], [0.0], [-100.0]]])
    mixed_inputs, mixed, lam = mixup(inputs, labels, alpha=0.8, prob=1.0, rng=np.random.RandomState(0))
    torch.testing.assert_close(mixed_inputs, lam * inputs + (1 - lam) * inputs.flip(0))
    expected = torch.tensor([[[lam], [0.0], [-100.0]], [[1 - lam], [0.0], [-100.0]]])
    torch.testing.assert_close(mixed, expected)


# ---------------------------------------------------------------------------------------------------------------------
# Strong-label fine-tuning
# ---------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tone_events(tmp_path_factory):
    root = tmp_path_factory.mktemp("tone_events")
    make_sound_events.write_sound_event_dataset(
        root, {"train": 64, "test": 8}, clip_seconds=2.56, max_events=2, seed=0, snr_db=(10.0, 20.0),
        classes=("tone",), hz_range=TONE_HZ,
    )  # fmt: skip
    (root / "tiny.json").write_text(json.dumps(TINY_CONFIG))
    return root


@pytest.fixture(scope="module")
def tone_detector(tone_events, tmp_path_factory):
    """A tiny frame classifier trained from scratch with the strong-label preset (roll, mixup, SpecAugment): ~20 s
    on one CPU thread."""
    output_dir = tmp_path_factory.mktemp("tone_detector")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    result = finetuning.run(*finetuning.parse_arguments([
        PRESET, "--config_name", str(tone_events / "tiny.json"), "--train_file", str(tone_events / "train.tsv"),
        "--eval_file", str(tone_events / "test.tsv"), "--target_length", "256", "--output_dir", str(output_dir),
        "--do_train", "--use_cpu", "--report_to", "none", "--disable_tqdm", "true", "--dataloader_num_workers", "0",
        "--fp16", "false", "--max_steps", "300", "--warmup_steps", "20", "--learning_rate", "2e-3",
        "--layer_decay", "1",
        "--per_device_train_batch_size", "8", "--eval_strategy", "no", "--save_strategy", "no",
        "--load_best_model_at_end", "false", "--logging_steps", "100", "--seed", "0",
    ]))  # fmt: skip
    torch.set_num_threads(threads)
    return output_dir, result.metrics


def clean_tone(onset: float, offset: float, duration: float, seed: int = 1) -> np.ndarray:
    """A test-band tone at 20 dB SNR over the generator's background."""
    rng = np.random.default_rng(seed)
    return make_sound_events.synthesize(
        [(onset, offset, "tone")], duration, rng, "test", snr_db=(20.0, 20.0), hz_range=TONE_HZ
    )


def test_strong_label_finetuning_finds_a_tone_within_one_time_patch(tone_detector):
    folder, metrics = tone_detector
    # Frame mAP on held-out clips (tones in frequency bands never heard in training); chance is the positive rate.
    assert metrics["eval_frame_mAP"] > 0.8
    model = AsdaForAudioFrameClassification.from_pretrained(folder).eval()
    feature_extractor = AsdaFeatureExtractor.from_pretrained(folder)
    assert model.config.id2label == {0: "tone"} and model.config.problem_type == "multi_label_classification"
    onset, offset, step = 0.72, 1.80, model.time_patch_seconds()  # the tone covers steps 4.5 to 11.25
    inputs = feature_extractor(clean_tone(onset, offset, 2.56), sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        scores = model(**inputs).logits[0, :, 0].sigmoid().numpy()
    inside, outside = scores[5:11], np.concatenate([scores[:4], scores[12:]])
    assert inside.min() > outside.max() + 0.1, scores.round(2)
    # The detection at half the score range is one run whose edges lie within one step of the true ones.
    active = np.flatnonzero(scores >= (scores.max() + scores.min()) / 2)
    assert (np.diff(active) == 1).all(), scores.round(2)
    assert abs(active[0] * step - onset) <= step and abs((active[-1] + 1) * step - offset) <= step, scores.round(2)


# ---------------------------------------------------------------------------------------------------------------------
# Post-processing and SED metrics
# ---------------------------------------------------------------------------------------------------------------------


def test_median_filter_matches_scipy_with_repeated_edges():
    scipy_ndimage = pytest.importorskip("scipy.ndimage")
    scores = np.random.default_rng(0).random((40, 3))
    for width in (1, 3, 7):
        expected = scipy_ndimage.median_filter(scores, size=(width, 1), mode="nearest")
        np.testing.assert_allclose(median_filter(scores, width), expected)
    with pytest.raises(ValueError, match="odd positive width"):
        median_filter(scores, 4)
    assert [median_filter_steps(seconds, 0.16) for seconds in (0.0, 0.1, 0.48, 0.8)] == [1, 1, 3, 5]


def test_detect_events_turns_runs_above_the_threshold_into_events():
    scores = np.array([[0.1, 0.9], [0.7, 0.9], [0.8, 0.2], [0.2, 0.6]])
    detections = detect_events(scores, 0.5, ["a", "b"], threshold=0.5, duration=1.8)
    assert detections == [Detection(0.0, 1.0, "b", 0.9), Detection(0.5, 1.5, "a", 0.8), Detection(1.5, 1.8, "b", 0.6)]


def step_scores(events: list[tuple[float, float]], duration: float, step: float) -> np.ndarray:
    """Scores of one class on a `step` grid: 1 inside the given spans, 0 elsewhere."""
    starts = np.arange(round(duration / step)) * step
    active = np.zeros((len(starts), 1))
    for onset, offset in events:
        active[(starts >= onset - 1e-9) & (starts < offset - 1e-9), 0] = 1.0
    return active


@pytest.fixture(scope="module")
def sed_scores_eval():
    return pytest.importorskip("sed_scores_eval", reason="SED metrics need the sed extra: pip install '.[sed]'")


def test_perfect_scores_get_full_marks(sed_scores_eval):
    truth = {"x": [Event(1.0, 2.0, "a")], "y": [Event(0.5, 1.5, "a"), Event(2.5, 3.5, "a")], "z": []}
    durations = {"x": 4.0, "y": 4.0, "z": 4.0}
    scores = {clip: step_scores([(e.onset, e.offset) for e in events], 4.0, 0.1) for clip, events in truth.items()}
    metrics = sed_metrics(scores, truth, durations, 0.1, ["a"])
    assert metrics["event_f1"] == pytest.approx(1.0) and metrics["segment_f1"] == pytest.approx(1.0)
    assert metrics["psds"] == pytest.approx(1.0)


def test_event_f1_uses_the_collars_and_segment_f1_the_one_second_segments(sed_scores_eval):
    truth, durations = {"x": [Event(1.0, 2.0, "a")]}, {"x": 4.0}
    late = {"x": step_scores([(1.3, 2.3)], 4.0, 0.1)}  # 300 ms late: outside the 200 ms onset collar
    metrics = sed_metrics(late, truth, durations, 0.1, ["a"])
    assert metrics["event_f1"] == 0.0
    # Segments [1, 2) and [2, 3) are detected, only [1, 2) is true: TP 1, FP 1, FN 0 -> F1 = 2 / 3.
    assert metrics["segment_f1"] == pytest.approx(2 / 3)
    in_collar = {"x": step_scores([(1.1, 2.1)], 4.0, 0.1)}
    assert sed_metrics(in_collar, truth, durations, 0.1, ["a"])["event_f1"] == pytest.approx(1.0)


def test_median_filter_flag_removes_a_one_step_false_alarm(sed_scores_eval):
    truth, durations = {"x": [Event(1.0, 2.0, "a")]}, {"x": 4.0}
    scores = {"x": step_scores([(1.0, 2.0), (3.0, 3.1)], 4.0, 0.1)}
    raw = sed_metrics(scores, truth, durations, 0.1, ["a"])
    assert raw["event_f1"] == pytest.approx(2 / 3)  # TP 1, FP 1
    filtered = sed_metrics(scores, truth, durations, 0.1, ["a"], SedScoringArguments(median_filter_seconds=0.3))
    assert filtered["event_f1"] == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------------------------------
# asda-classify --events
# ---------------------------------------------------------------------------------------------------------------------


def test_an_event_crossing_a_window_boundary_is_one_event():
    # Windows [0, 2.56) and [2.56, 5.12) of 16 steps of 0.16 s; the event runs from step 13 of the first window
    # (2.08 s) to step 3 of the second (3.20 s).
    first, second = np.zeros((16, 1)), np.zeros((16, 1))
    first[13:], second[:4] = 0.9, 0.8
    spans = [(0.0, 2.56), (2.56, 5.12)]
    per_window = [detect_events(scores, 0.16, ["tone"]) for scores in (first, second)]
    assert sum(len(events) for events in per_window) == 2  # what window-by-window detection reports
    events = recording_events([first, second], spans, 0.16, 0.01, ["tone"])
    assert len(events) == 1
    assert events[0].onset == pytest.approx(2.08) and events[0].offset == pytest.approx(3.20)
    assert events[0].score == pytest.approx(0.9)


def test_overlapping_windows_are_averaged_and_padding_is_dropped():
    # Window 2 starts at 0.32 s (2 steps into window 1) and ends at 0.8 s; its steps past 0.8 s are padding.
    first, second = np.full((4, 1), 0.2), np.full((4, 1), 0.8)
    second[3] = 5.0  # padding: must not count
    stitched = stitch_windows([first, second], [(0.0, 0.64), (0.32, 0.8)], 0.16, 0.16)
    np.testing.assert_allclose(stitched[:, 0], [0.2, 0.2, 0.5, 0.5, 0.8])


def write_boundary_crossing_tone(path, seed: int) -> tuple[float, float]:
    onset, offset = 2.0, 3.2  # across the first window boundary at 2.56 s
    rng = np.random.default_rng(seed)
    waveform = make_sound_events.synthesize(
        [(onset, offset, "tone")], 6.0, rng, "test", snr_db=(20.0, 20.0), hz_range=TONE_HZ
    )
    soundfile.write(path, waveform, 16000)
    return onset, offset


def test_classify_events_merges_a_boundary_crossing_event_into_one_row(tone_detector, tmp_path, capsys):
    folder, _ = tone_detector
    onset, offset = write_boundary_crossing_tone(tmp_path / "long.wav", seed=0)
    exit_code = classify.main([str(tmp_path / "long.wav"), "--model", str(folder), "--events", "--output_format",
                               "tsv", "--median_filter_seconds", "0.33", "--device", "cpu"])  # fmt: skip
    rows = capsys.readouterr().out.splitlines()
    assert exit_code == 0 and rows[0] == "filename\tonset\toffset\tevent_label\tscore"
    assert len(rows) == 2, rows  # one event, though the 2.56 s windows cut it in two
    _, row_onset, row_offset, label, score = rows[1].split("\t")
    assert label == "tone" and float(score) >= 0.5
    assert abs(float(row_onset) - onset) <= 0.16 and abs(float(row_offset) - offset) <= 0.16, rows
    assert float(row_onset) < 2.56 < float(row_offset)


# ---------------------------------------------------------------------------------------------------------------------
# The synthetic events of examples/make_sound_events.py
# ---------------------------------------------------------------------------------------------------------------------


def test_generator_keeps_train_and_test_frequencies_in_disjoint_bands():
    rng = np.random.default_rng(0)
    low, high, bands = make_sound_events.LOW_HZ, make_sound_events.HIGH_HZ, make_sound_events.NUM_BANDS
    for split, parity in (("train", 0), ("test", 1)):
        frequencies = np.array([make_sound_events.band_frequency(rng, split) for _ in range(500)])
        band = np.floor(np.log(frequencies / low) / np.log(high / low) * bands).astype(int)
        assert set(band % 2) == {parity} and len(set(band)) == bands // 2


def test_generator_ground_truth_marks_where_the_energy_is(tmp_path):
    make_sound_events.write_sound_event_dataset(tmp_path, {"test": 6}, clip_seconds=3.0, seed=1, snr_db=(20.0, 20.0))
    clips = read_event_manifest(tmp_path / "test.tsv")
    assert len(clips) == 6 and any(clips.values())
    for clip, events in clips.items():
        waveform, sampling_rate = soundfile.read(clip)
        assert sampling_rate == 16000 and len(waveform) == 48000
        inside = np.zeros(len(waveform), dtype=bool)
        for event in events:
            inside[round(event.onset * 16000) : round(event.offset * 16000)] = True
        for label in {event.label for event in events}:  # one class never overlaps or touches itself
            spans = [(event.onset, event.offset) for event in events if event.label == label]
            assert all(end < start for (_, end), (start, _) in zip(spans, spans[1:]))
        if inside.any():  # 20 dB SNR: events are ~100 times the background's power
            assert np.mean(waveform[inside] ** 2) > 20 * np.mean(waveform[~inside] ** 2)
