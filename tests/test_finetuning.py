"""The fine-tuning recipe pieces (modeling_asda.training, modeling_asda.data) against formulas and hand-computed
examples."""

import math

import numpy as np
import pytest
import soundfile
import torch
import torch.nn.functional as F
from scipy.stats import norm

from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification
from modeling_asda.data.audio import decode_audio, drop_short_clips
from modeling_asda.data.labels import LabelVocabulary
from modeling_asda.data.sources import load_manifest, scan_audio_folder
from modeling_asda.training.augment import iid_mask, mixup, noise_and_roll, roll_and_gain, spec_augment
from modeling_asda.training.finetuning import AsdaFinetuningArguments, AsdaFinetuningTrainer, AudioClassificationTransform
from modeling_asda.training.metrics import multi_label_metrics, per_class_average_precision, single_label_metrics
from modeling_asda.training.optim import layer_decay_parameter_groups
from modeling_asda.training.sampling import ClassBalancedSampler, class_balanced_weights


def tiny_config(num_hidden_layers=2, num_labels=5, **overrides):
    values = dict(
        hidden_size=16,
        num_hidden_layers=num_hidden_layers,
        num_attention_heads=2,
        intermediate_size=32,
        num_mel_bins=16,
        patch_size=4,
        max_time_patches=8,
        decoder_hidden_size=16,
        num_labels=num_labels,
    )
    values.update(overrides)
    return AsdaConfig(**values)


def finetuning_args(tmp_path, **overrides):
    values = dict(
        output_dir=str(tmp_path),
        use_cpu=True,
        report_to=[],
        eval_strategy="no",
        save_strategy="no",
        load_best_model_at_end=False,
        metric_for_best_model="accuracy",
    )
    values.update(overrides)
    return AsdaFinetuningArguments(**values)


# ---------------------------------------------------------------------------------------------------------------------
# Augmentations
# ---------------------------------------------------------------------------------------------------------------------


def test_mixup_mixes_inputs_and_targets_with_the_reversed_batch():
    inputs = torch.randn(4, 8, 3)
    labels = F.one_hot(torch.tensor([0, 1, 2, 4]), 5).float()
    mixed_inputs, mixed_labels, lam = mixup(inputs, labels, alpha=0.8, prob=1.0, rng=np.random.RandomState(0))
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed_inputs, lam * inputs + (1 - lam) * inputs[[3, 2, 1, 0]])
    torch.testing.assert_close(mixed_labels, lam * labels + (1 - lam) * labels[[3, 2, 1, 0]])
    torch.testing.assert_close(mixed_labels.sum(dim=1), torch.ones(4))


def test_mixup_probability_and_lambda_distribution():
    rng = np.random.RandomState(1)
    inputs, labels = torch.zeros(2, 1, 1), torch.eye(2)
    lambdas = np.array([mixup(inputs, labels, alpha=0.8, prob=0.9, rng=rng)[2] for _ in range(4000)])
    mixed = lambdas[lambdas != 1.0]
    assert abs(len(mixed) / len(lambdas) - 0.9) < 0.02
    # Beta(0.8, 0.8): mean 1/2, variance 1 / (4 * (2 * 0.8 + 1)) = 0.0962.
    assert abs(mixed.mean() - 0.5) < 0.02
    assert abs(mixed.var() - 1 / (4 * 2.6)) < 0.01


def test_mixup_off_and_bad_targets():
    inputs, labels = torch.randn(2, 4, 4), torch.tensor([0, 1])
    assert mixup(inputs, labels, alpha=0.0, prob=1.0)[2] == 1.0
    assert mixup(inputs, labels.float()[:, None], alpha=0.8, prob=0.0)[2] == 1.0
    with pytest.raises(ValueError, match="float targets"):
        mixup(inputs, labels, alpha=0.8, prob=1.0)


@pytest.mark.parametrize("size, max_width", [(128, 128 * 0.2), (1024, 1024 * 0.2), (128, 128 * 0.4), (20, 3.0)])
def test_iid_mask_is_one_span_narrower_than_max_width(size, max_width):
    # torchaudio's iid masks: width floor(U * max_width), so P(width = k) = 1 / max_width for k < floor(max_width).
    masks = iid_mask(20000, size, max_width, np.random.RandomState(2)).numpy()
    widths = masks.sum(axis=1)
    assert widths.max() == math.ceil(max_width) - 1
    expected_mean = sum((max_width - k) / max_width for k in range(1, math.ceil(max_width)))
    assert abs(widths.mean() - expected_mean) < 0.03 * max_width
    for row, width in zip(masks[:500], widths[:500]):
        if width:
            start = row.argmax()
            assert row[start : start + width].all() and start + width <= size


def test_spec_augment_zeroes_one_band_and_one_span_per_clip():
    inputs = torch.ones(64, 50, 16)
    masked = spec_augment(inputs, 0.4, np.random.RandomState(3))
    zero = masked == 0
    for clip in zero:
        frequency_band = clip.all(dim=0)
        time_span = clip.all(dim=1)
        # every zero lies in the band or the span, and the masks are narrower than 16 * 0.4 and 50 * 0.4
        assert torch.equal(clip, frequency_band[None, :] | time_span[:, None])
        assert frequency_band.sum() < 16 * 0.4 and time_span.sum() < 50 * 0.4
    assert torch.equal(spec_augment(inputs, 0.0), inputs)


def test_roll_and_gain_is_a_circular_shift_times_a_gain():
    waveform = np.random.RandomState(4).randn(1000).astype(np.float32)
    gains = []
    for seed in range(50):
        out = roll_and_gain(waveform, rng=np.random.RandomState(seed))
        shift = int(np.argmax(np.correlate(np.tile(out, 2), waveform, mode="valid")[:1000]))
        gain = out[shift] / waveform[0]
        np.testing.assert_allclose(out, np.roll(waveform, shift) * gain, rtol=1e-5, atol=1e-6)
        gains.append(gain)
    gains = np.array(gains)
    # Beta(10, 10) + 0.5 lies in (0.5, 1.5) with mean 1 and standard deviation sqrt(1 / 84) = 0.109.
    assert gains.min() > 0.5 and gains.max() < 1.5 and abs(gains.mean() - 1.0) < 0.06


def test_noise_and_roll_adds_small_positive_noise_then_rolls_time():
    features = np.repeat(np.arange(30, dtype=np.float32)[:, None] * 10, 4, axis=1)
    shifts = set()
    for seed in range(200):
        out = noise_and_roll(features, rng=np.random.RandomState(seed))
        shift = int(np.argmin(out[:, 0]))
        noise = out - np.roll(features, shift, axis=0)
        assert noise.min() >= 0 and noise.max() < 0.1
        shifts.add(shift if shift < 15 else shift - 30)
    assert shifts == set(range(-10, 10))


# ---------------------------------------------------------------------------------------------------------------------
# Class-balanced sampling
# ---------------------------------------------------------------------------------------------------------------------


def test_class_balanced_weights_by_hand():
    # label counts: class 0 twice, class 1 twice, class 2 once
    weights = class_balanced_weights([[0], [0, 1], [1], [2]], num_labels=3)
    np.testing.assert_allclose(weights, [1 / 2.01, 2 / 2.01, 1 / 2.01, 1 / 1.01])
    np.testing.assert_allclose(class_balanced_weights([0, 0, 1], num_labels=2), [1 / 2.01, 1 / 2.01, 1 / 1.01])


def test_class_balanced_sampler_draws_without_replacement_per_epoch():
    weights = np.array([1.0, 0.0, 2.0, 3.0, 4.0, 0.5])
    sampler = ClassBalancedSampler(weights, num_samples=4, seed=7)
    first = list(sampler)
    assert len(first) == len(sampler) == 4 and len(set(first)) == 4 and 1 not in first
    assert list(sampler) == first
    draws = set()
    for epoch in range(20):
        sampler.set_epoch(epoch)
        draws.add(tuple(sampler))
    assert len(draws) > 5
    with pytest.raises(ValueError, match="without replacement"):
        ClassBalancedSampler(weights, num_samples=6)


def test_class_balanced_sampler_frequencies_follow_the_weights():
    sampler = ClassBalancedSampler([1.0, 3.0], num_samples=20000, replacement=True, seed=0)
    assert abs(np.mean(list(sampler)) - 0.75) < 0.01


def test_trainer_uses_the_balanced_sampler(tmp_path):
    model = AsdaForAudioClassification(tiny_config())
    args = finetuning_args(tmp_path, balanced_sampling=True, balanced_samples_per_epoch=3, data_seed=5)
    trainer = AsdaFinetuningTrainer(
        model=model, args=args, train_dataset=list(range(4)), train_sample_weights=[1, 1, 1, 0]
    )
    sampler = trainer._get_train_sampler()
    assert isinstance(sampler, ClassBalancedSampler) and sampler.seed == 5 and sorted(sampler) == [0, 1, 2]
    with pytest.raises(ValueError, match="train_sample_weights"):
        AsdaFinetuningTrainer(model=model, args=args)


# ---------------------------------------------------------------------------------------------------------------------
# Layer-wise lr decay
# ---------------------------------------------------------------------------------------------------------------------


def expected_lr_scale(name: str, num_layers: int, layer_decay: float) -> float:
    parts = name.split(".")
    if parts[:2] == ["asda", "layers"]:
        return layer_decay ** (num_layers - int(parts[2]))
    return 1.0


@pytest.mark.parametrize("exempt", [False, True])
def test_layer_decay_groups_follow_the_official_grouping(exempt):
    model = AsdaForAudioClassification(tiny_config(num_hidden_layers=12))
    groups = layer_decay_parameter_groups(
        model, 1e-3, weight_decay=0.05, layer_decay=0.65, exempt_biases_and_1d=exempt
    )
    group_of = {id(param): group for group in groups for param in group["params"]}
    assert len(group_of) == sum(1 for _ in model.parameters())
    for name, param in model.named_parameters():
        group = group_of[id(param)]
        scale = expected_lr_scale(name, 12, 0.65)
        assert group["lr_scale"] == pytest.approx(scale) and group["lr"] == pytest.approx(1e-3 * scale), name
        no_decay = exempt and (param.ndim == 1 or name.endswith(".bias"))
        assert group["weight_decay"] == (0.0 if no_decay else 0.05), name
    scales = sorted({round(group["lr_scale"], 12) for group in groups})
    assert scales == sorted({round(0.65 ** (12 - block), 12) for block in range(12)} | {1.0})
    # The first block learns at 0.65^12 of the peak; the CLS token (a 3-D tensor) is decayed in either case.
    assert group_of[id(model.asda.layers[0].mlp.fc1.weight)]["lr_scale"] == pytest.approx(0.65**12)
    assert group_of[id(model.asda.embeddings.cls_token)]["weight_decay"] == 0.05
    assert group_of[id(model.classifier.bias)]["weight_decay"] == (0.0 if exempt else 0.05)


def run_schedule(trainer, num_training_steps):
    optimizer = trainer.create_optimizer()
    scheduler = trainer.create_scheduler(num_training_steps=num_training_steps)
    lrs = []
    for _ in range(num_training_steps):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    lrs.append([group["lr"] for group in optimizer.param_groups])
    return optimizer, np.array(lrs)


def test_official_schedule_per_layer_group(tmp_path):
    # fairseq's cosine, once per group: from min(min_lr, peak) up to the peak in 10 steps, then down to that floor.
    # With a 2e-6 peak and min_lr 1e-6, the blocks at 0.65^2 and 0.65^3 of the peak sit below min_lr: constant.
    model = AsdaForAudioClassification(tiny_config(num_hidden_layers=3))
    args = finetuning_args(tmp_path, learning_rate=2e-6, warmup_steps=10)
    optimizer, lrs = run_schedule(AsdaFinetuningTrainer(model=model, args=args), 110)
    assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["betas"] == (0.9, 0.95)
    peaks = np.array([2e-6 * group["lr_scale"] for group in optimizer.param_groups])
    floors = np.minimum(1e-6, peaks)
    assert sorted(set(np.round(peaks / 2e-6, 9))) == pytest.approx([0.65**3, 0.65**2, 0.65, 1.0])
    np.testing.assert_allclose(lrs[0], floors)
    np.testing.assert_allclose(lrs[5], floors + 0.5 * (peaks - floors))
    np.testing.assert_allclose(lrs[10], peaks)
    np.testing.assert_allclose(lrs[60], floors + 0.5 * (peaks - floors))
    np.testing.assert_allclose(lrs[110], floors)
    constant = peaks < 1e-6
    assert constant.sum() == 2 and np.allclose(lrs[:, constant], peaks[constant])


def test_transformers_schedule_scales_with_the_layer(tmp_path):
    model = AsdaForAudioClassification(tiny_config(num_hidden_layers=3))
    args = finetuning_args(tmp_path, learning_rate=1e-3, warmup_steps=10, official_lr_schedule=False)
    optimizer, lrs = run_schedule(AsdaFinetuningTrainer(model=model, args=args), 100)
    scales = np.array([group["lr_scale"] for group in optimizer.param_groups])
    # warm-up from 0, and min_lr multiplied by each group's scale
    np.testing.assert_allclose(lrs[0], 0.0)
    np.testing.assert_allclose(lrs[10], 1e-3 * scales)
    np.testing.assert_allclose(lrs[100], 1e-6 * scales, rtol=1e-6)
    with pytest.raises(ValueError, match="official_lr_schedule"):
        finetuning_args(tmp_path, lr_scheduler_type="linear")


# ---------------------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------------------


def test_multi_label_metrics_by_hand():
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.3, 0.1], [0.7, 0.6, 0.4], [0.1, 0.4, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # class 0 ranks pos, neg, pos, neg: AP = (1/1 + 2/3) / 2; class 1 ranks its positive third: AP = 1/3;
    # class 2 has no positive: AP undefined, left out of the mean.
    np.testing.assert_allclose(per_class_average_precision(scores, targets), [5 / 6, 1 / 3, np.nan])
    metrics = multi_label_metrics(scores, targets)
    assert metrics["mAP"] == pytest.approx((5 / 6 + 1 / 3) / 2)
    # AUC: class 0 orders 3 of its 4 (positive, negative) pairs right, class 1 one of 3.
    assert metrics["mAUC"] == pytest.approx((3 / 4 + 1 / 3) / 2)
    assert metrics["d_prime"] == pytest.approx(math.sqrt(2) * norm.ppf((3 / 4 + 1 / 3) / 2))
    # logits give the same rank statistics as probabilities
    logits = np.log(scores / (1 - scores))
    assert multi_label_metrics(logits, targets) == pytest.approx(metrics)


def test_single_label_metrics_by_hand():
    scores = np.array([[0.1, 0.5, 0.2, 0.0, 0.0, 0.0, 0.2], [0.6, 0.1, 0.1, 0.0, 0.0, 0.1, 0.1]])
    metrics = single_label_metrics(scores, np.array([1, 2]))
    assert metrics == {"accuracy": 0.5, "top5_accuracy": 1.0}
    assert single_label_metrics(scores, np.eye(7)[[1, 3]]) == {"accuracy": 0.5, "top5_accuracy": 0.5}
    assert set(single_label_metrics(scores[:, :5], np.array([1, 2]))) == {"accuracy"}


# ---------------------------------------------------------------------------------------------------------------------
# Loss normalisation and batch augmentation in the Trainer
# ---------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalization, divisor", [("positives", 7.0), ("samples", 4.0), ("entries", 20.0)])
def test_binary_cross_entropy_divisor(tmp_path, normalization, divisor):
    torch.manual_seed(0)
    model = AsdaForAudioClassification(tiny_config(problem_type="multi_label_classification")).eval()
    labels = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    batch = {"input_values": torch.randn(4, 16, 16), "labels": labels}
    trainer = AsdaFinetuningTrainer(
        model=model, args=finetuning_args(tmp_path, multilabel_loss_normalization=normalization)
    )
    num_items = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    assert float(num_items) == divisor
    loss = trainer.compute_loss(model, batch, num_items_in_batch=num_items)
    logits = model(batch["input_values"]).logits
    expected = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / divisor
    torch.testing.assert_close(loss, expected)
    # over gradient accumulation, the divisor counts every micro-batch
    assert float(trainer._get_num_items_in_batch([batch, batch], torch.device("cpu"))) == 2 * divisor


def test_label_smoothing_is_applied_by_the_training_loss_only(tmp_path):
    """ESC-50: cross-entropy against (1 - 0.1) * one-hot + 0.1 / 5 = [0.02, 0.92, 0.02, ...] in training, divided by the
    clips; the evaluation loss is the model's plain mean cross-entropy."""
    torch.manual_seed(0)
    model = AsdaForAudioClassification(tiny_config(problem_type="single_label_classification"))
    args = finetuning_args(tmp_path, label_smoothing_factor=0.1, mixup_alpha=0.0, spec_augment_ratio=0.0)
    trainer = AsdaFinetuningTrainer(model=model, args=args)
    classes = [1, 0, 4, 1]
    batch = {"input_values": torch.randn(4, 16, 16), "labels": torch.eye(5)[classes]}
    model.eval()  # the same logits in both modes (no dropout, no stochastic depth)
    logits = model(batch["input_values"]).logits
    smoothed = torch.full((4, 5), 0.02)
    smoothed[torch.arange(4), classes] = 0.92
    expected = -(smoothed * logits.log_softmax(dim=-1)).sum() / 4
    model.train()
    num_items = trainer._get_num_items_in_batch([batch], torch.device("cpu"))
    assert float(num_items) == 4.0
    torch.testing.assert_close(trainer.compute_loss(model, batch, num_items_in_batch=num_items), expected)
    model.eval()
    evaluation_loss = trainer.compute_loss(model, batch)
    torch.testing.assert_close(evaluation_loss, F.cross_entropy(logits, torch.tensor(classes)))
    torch.testing.assert_close(evaluation_loss, model(batch["input_values"], labels=batch["labels"]).loss)


def test_model_loss_is_the_standard_mean():
    """`outputs.loss` without a Trainer: mean BCE over entries (multi-label), mean cross-entropy over clips (class
    indices with -100 ignored, or soft targets)."""
    torch.manual_seed(0)
    inputs = torch.randn(4, 16, 16)
    multi_hot = torch.tensor([[1, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 1], [1, 0, 0, 0, 0]], dtype=torch.float32)
    model = AsdaForAudioClassification(tiny_config(problem_type="multi_label_classification")).eval()
    outputs = model(inputs, labels=multi_hot)
    expected = -(multi_hot * F.logsigmoid(outputs.logits) + (1 - multi_hot) * F.logsigmoid(-outputs.logits)).mean()
    torch.testing.assert_close(outputs.loss, expected)
    model = AsdaForAudioClassification(tiny_config(problem_type="single_label_classification")).eval()
    logits = model(inputs).logits
    log_probabilities = logits.log_softmax(dim=-1)
    classes = torch.tensor([2, -100, 0, 4])
    expected = -(log_probabilities[0, 2] + log_probabilities[2, 0] + log_probabilities[3, 4]) / 3
    torch.testing.assert_close(model(inputs, labels=classes).loss, expected)
    soft = torch.tensor([[0.5, 0.5, 0, 0, 0], [0, 0, 1, 0, 0], [0.2, 0, 0, 0, 0.8], [0, 0, 0, 1, 0]])
    torch.testing.assert_close(model(inputs, labels=soft).loss, -(soft * log_probabilities).sum() / 4)


def test_training_batches_get_mixup_and_spec_augment(tmp_path):
    model = AsdaForAudioClassification(tiny_config())
    args = finetuning_args(tmp_path, mixup_alpha=0.8, mixup_prob=1.0, spec_augment_ratio=0.3)
    trainer = AsdaFinetuningTrainer(model=model, args=args)
    batch = {"input_values": torch.rand(4, 16, 16) + 1, "labels": torch.eye(5)[[0, 1, 2, 3]]}
    augmented = trainer.augment_batch(batch)
    # every clip mixed with its mirror (rows sum to 1 over two classes), and at least one band zeroed per clip
    assert ((augmented["labels"] > 0).sum(dim=1) == 2).all()
    assert ((augmented["input_values"] == 0).flatten(1).any(dim=1)).sum() >= 1
    smoothing = AsdaFinetuningTrainer(model=model, args=finetuning_args(tmp_path, label_smoothing_factor=0.1))
    with pytest.raises(ValueError, match="smoothed float targets"):
        smoothing.augment_batch({"input_values": batch["input_values"], "labels": torch.tensor([0, 1, 2, 3])})


def test_arguments_reject_bad_values(tmp_path):
    with pytest.raises(ValueError, match="multilabel_loss_normalization"):
        finetuning_args(tmp_path, multilabel_loss_normalization="mean")
    with pytest.raises(ValueError, match="layer_decay"):
        finetuning_args(tmp_path, layer_decay=0.0)
    with pytest.raises(ValueError, match="auto"):
        AsdaFinetuningTrainer(
            model=AsdaForAudioClassification(tiny_config()),
            args=finetuning_args(tmp_path, metric_for_best_model="auto"),
        )


# ---------------------------------------------------------------------------------------------------------------------
# Data: label vocabularies, manifests, folders, the per-clip transform
# ---------------------------------------------------------------------------------------------------------------------


def test_label_vocabulary_from_the_audioset_label_file(tmp_path, shared_dir):
    vocabulary = LabelVocabulary.from_label_file(shared_dir / "data" / "audioset_labels.csv", multi_label=True)
    assert len(vocabulary.names) == 527 and vocabulary.names[0] == "Speech"
    assert vocabulary.encode("/m/05zppz,/m/09x0r") == [0, 1]
    assert vocabulary.encode(["Speech", "/m/02zsn"]) == [0, 2]
    with pytest.raises(ValueError, match="Unknown label"):
        vocabulary.encode("/m/not_a_class")
    with_header = tmp_path / "labels.csv"
    with_header.write_text('index,mid,display_name\n0,/m/a,"A, long"\n1,/m/b,B\n')
    vocabulary = LabelVocabulary.from_label_file(with_header, multi_label=False)
    assert (
        vocabulary.names == ["A, long", "B"] and vocabulary.encode("/m/b") == 1 and vocabulary.encode("A, long") == 0
    )


def test_label_vocabulary_from_values():
    assert LabelVocabulary.from_values(["10", "2", "1"], multi_label=False).names == ["1", "2", "10"]
    vocabulary = LabelVocabulary.from_values(["dog,cat", "bird"], multi_label=True)
    assert vocabulary.names == ["bird", "cat", "dog"] and vocabulary.encode("cat, dog") == [1, 2]
    with pytest.raises(ValueError, match="multi_label=True"):
        LabelVocabulary.from_names(["a", "b"], multi_label=False).encode(["a", "b"])


def write_clip(path, num_samples, sampling_rate=16000, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    soundfile.write(
        path, np.random.RandomState(seed).uniform(-0.5, 0.5, num_samples).astype(np.float32), sampling_rate
    )


def test_manifest_and_folder_sources(tmp_path):
    write_clip(tmp_path / "clips" / "dog" / "a.wav", 16000)
    write_clip(tmp_path / "clips" / "cat" / "b.flac", 8000, seed=1)
    (tmp_path / "clips" / "cat" / "notes.txt").write_text("not audio")
    (tmp_path / "train.tsv").write_text("audio\tlabel\nclips/dog/a.wav\tdog\nclips/cat/b.flac\tcat\n")
    manifest = load_manifest(tmp_path / "train.tsv")
    assert manifest["audio"] == [str(tmp_path / "clips/dog/a.wav"), str(tmp_path / "clips/cat/b.flac")]
    folder = scan_audio_folder(tmp_path / "clips")
    assert folder["label"] == ["cat", "dog"] and folder["audio"][0].endswith("b.flac")
    assert drop_short_clips(folder, "audio", 10000)["label"] == ["dog"]
    waveform, sampling_rate = decode_audio(folder["audio"][1], 16000)
    assert waveform.shape == (16000,) and sampling_rate == 16000
    with open(folder["audio"][1], "rb") as handle:
        encoded = {"path": None, "bytes": handle.read()}
    np.testing.assert_array_equal(decode_audio(encoded, 16000)[0], waveform)
    with pytest.raises(ValueError, match="'label' column"):
        (tmp_path / "bad.csv").write_text("audio,category\nx.wav,dog\n")
        load_manifest(tmp_path / "bad.csv")


@pytest.mark.parametrize(
    "recipe, multi_label, bce, train_target, eval_target",
    [
        ("esc50", False, False, [0, 1, 0, 0, 0], 1),  # one-hot: the Trainer's loss smooths it
        ("spc2", False, True, [0, 1, 0, 0, 0], [0, 1, 0, 0, 0]),
        ("audioset", True, True, [0, 1, 0, 1, 0], [0, 1, 0, 1, 0]),
    ],
)
def test_transform_targets_per_recipe(tmp_path, recipe, multi_label, bce, train_target, eval_target):
    write_clip(tmp_path / "a.wav", 24000)
    smoothing = 0.1 if recipe == "esc50" else 0.0
    mixup_alpha = 0.0 if recipe == "esc50" else 0.8
    args = finetuning_args(tmp_path, label_smoothing_factor=smoothing, mixup_alpha=mixup_alpha, roll_augment=False)
    extractor = AsdaFeatureExtractor(max_length=128)
    label = [1, 3] if multi_label else 1
    rows = {"audio": [str(tmp_path / "a.wav")], "label_ids": [label]}
    train = AudioClassificationTransform(extractor, args, 5, multi_label, bce, train=True)(rows)
    evaluation = AudioClassificationTransform(extractor, args, 5, multi_label, bce, train=False)(rows)
    np.testing.assert_allclose(train["labels"][0], train_target, rtol=1e-6)
    np.testing.assert_allclose(evaluation["labels"][0], eval_target)
    assert train["input_values"][0].shape == (128, 128)
    np.testing.assert_array_equal(train["input_values"][0], evaluation["input_values"][0])


def test_transform_augments_training_clips_only(tmp_path):
    write_clip(tmp_path / "a.wav", 16000)
    args = finetuning_args(tmp_path, spectrogram_noise=True)
    extractor = AsdaFeatureExtractor(max_length=128)
    rows = {"audio": [str(tmp_path / "a.wav")], "label_ids": [0]}
    evaluation = [AudioClassificationTransform(extractor, args, 2, False, False, train=False)(rows) for _ in range(2)]
    np.testing.assert_array_equal(evaluation[0]["input_values"][0], evaluation[1]["input_values"][0])
    train = AudioClassificationTransform(extractor, args, 2, False, False, train=True)(rows)
    assert not np.allclose(train["input_values"][0], evaluation[0]["input_values"][0])
    with pytest.raises(ValueError, match="softmax cross-entropy only"):
        AudioClassificationTransform(
            extractor, finetuning_args(tmp_path, label_smoothing_factor=0.1), 2, False, True, True
        )
