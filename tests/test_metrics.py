"""The fine-tuning metrics: `evaluate` modules shipped in `modeling_asda/metrics/`, checked against their definitions
computed here (AP from precision at each positive, AUC by counting pairs, accuracy by counting hits) or by scikit-learn
(F1), loaded offline, and used by the Trainer's `compute_metrics`."""

import inspect
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import norm
from sklearn.metrics import f1_score
from transformers import EvalPrediction

from modeling_asda.training.metrics import METRICS_DIR, AudioClassificationMetrics, load_metric
from modeling_asda.training.sed_metrics import frame_metrics


REPO = Path(__file__).resolve().parents[1]
METRIC_NAMES = ("mean_average_precision", "mean_roc_auc", "multi_label_f1", "top_k_accuracy")


def average_precision_by_definition(scores: np.ndarray, positives: np.ndarray) -> float:
    """Mean, over the positives, of the precision among the clips ranked at or above each (scores without ties)."""
    ranked_positives = positives[np.argsort(-scores)]
    precision_at_rank = np.cumsum(ranked_positives) / np.arange(1, len(scores) + 1)
    return float(precision_at_rank[ranked_positives].mean())


def auc_by_counting_pairs(scores: np.ndarray, positives: np.ndarray) -> float:
    """Fraction of (positive, negative) pairs ordered right, ties counting half."""
    difference = scores[positives][:, None] - scores[~positives][None, :]
    return float(np.mean((difference > 0) + 0.5 * (difference == 0)))


def fixed_multi_label_inputs() -> tuple[np.ndarray, np.ndarray]:
    """60 clips, 6 classes; class 4 has no positive clip, class 5 only positives."""
    rng = np.random.default_rng(0)
    targets = rng.random((60, 6)) < 0.3
    targets[:, 4], targets[:, 5] = False, True
    scores = rng.normal(size=(60, 6)) + 1.5 * targets
    return scores, targets


def test_mean_average_precision_by_hand_and_by_definition():
    metric = load_metric("mean_average_precision")
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.3, 0.1], [0.7, 0.6, 0.4], [0.1, 0.4, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # class 0 ranks pos, neg, pos, neg: AP = (1/1 + 2/3) / 2; class 1 ranks its positive third: AP = 1/3;
    # class 2 has no positive: AP undefined, left out of the mean.
    result = metric.compute(prediction_scores=scores, references=targets)
    np.testing.assert_allclose(result["average_precision"], [5 / 6, 1 / 3, np.nan])
    assert result["mAP"] == pytest.approx((5 / 6 + 1 / 3) / 2)

    scores, targets = fixed_multi_label_inputs()
    expected = [average_precision_by_definition(scores[:, k], targets[:, k]) for k in (0, 1, 2, 3, 5)]
    result = metric.compute(prediction_scores=scores, references=targets.astype(int))
    np.testing.assert_allclose(np.delete(result["average_precision"], 4), expected, rtol=1e-12)
    assert math.isnan(result["average_precision"][4])
    assert result["mAP"] == pytest.approx(np.mean(expected), rel=1e-12)


def test_mean_roc_auc_and_d_prime_by_counting_pairs():
    metric = load_metric("mean_roc_auc")
    scores, targets = fixed_multi_label_inputs()
    scores = np.round(scores)  # ties, which count half
    expected = [auc_by_counting_pairs(scores[:, k], targets[:, k]) for k in range(4)]
    result = metric.compute(prediction_scores=scores, references=targets.astype(int))
    # classes 4 (no positive) and 5 (no negative) have no AUC
    np.testing.assert_allclose(result["auc"], [*expected, np.nan, np.nan], rtol=1e-12)
    assert result["mAUC"] == pytest.approx(np.mean(expected), rel=1e-12)
    assert result["d_prime"] == pytest.approx(math.sqrt(2) * norm.ppf(np.mean(expected)), rel=1e-9)
    perfect = metric.compute(prediction_scores=[[0.9], [0.4], [0.6]], references=[[1], [0], [0]])
    assert perfect["mAUC"] == 1.0 and math.isnan(perfect["d_prime"])  # d' is infinite at AUC = 1


def test_top_k_accuracy_by_counting_hits():
    metric = load_metric("top_k_accuracy")
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(50, 8))
    labels = rng.integers(0, 8, size=50)
    for k in (1, 3, 8):
        hits = sum(int(np.sum(row > row[label]) < k) for row, label in zip(scores, labels))
        assert metric.compute(prediction_scores=scores, references=labels, k=k) == {"accuracy": hits / 50}
    # a tie goes to the lower class index, as argmax resolves it
    assert metric.compute(prediction_scores=[[1.0, 1.0, 0.0]], references=[1])["accuracy"] == 0.0
    assert metric.compute(prediction_scores=[[1.0, 1.0, 0.0]], references=[0])["accuracy"] == 1.0


def test_multi_label_f1_by_hand_and_against_scikit_learn():
    metric = load_metric("multi_label_f1")
    scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.3, 0.1], [0.7, 0.6, 0.4], [0.1, 0.4, 0.3]])
    targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
    # above 0.5: class 0 predicts clips 0-2 for positives 0 and 2 (TP 2, FP 1): F1 = 4/5; class 1 predicts clip 2 for
    # positive 1: F1 = 0; class 2 predicts nothing (0.5 is not above 0.5) and has no positive: F1 = 1.
    assert metric.compute(prediction_scores=scores, references=targets) == {"macro_f1": 0.6, "f1": [0.8, 0.0, 1.0]}

    scores, targets = fixed_multi_label_inputs()
    for threshold in (-1.0, 0.0, 0.5, 1.0, 10.0):  # at 10 nothing is predicted: F1 0, but 1 for class 4
        predicted = scores > threshold
        result = metric.compute(prediction_scores=scores, references=targets.astype(int), threshold=threshold)
        expected = f1_score(targets, predicted, average=None, zero_division=1.0)
        np.testing.assert_allclose(result["f1"], expected, rtol=1e-12)
        assert result["macro_f1"] == pytest.approx(f1_score(targets, predicted, average="macro", zero_division=1.0))
    assert result["f1"] == [0.0, 0.0, 0.0, 0.0, 1.0, 0.0]


def test_metric_errors_name_the_problem_and_leave_the_cached_module_usable():
    with pytest.raises(ValueError, match="No metric 'f1'.*available: mean_average_precision, mean_roc_auc"):
        load_metric("f1")
    accuracy = load_metric("top_k_accuracy")
    with pytest.raises(ValueError, match="class indices below 3, got 0..3"):
        accuracy.compute(prediction_scores=np.eye(3)[[0, 1]], references=[0, 3])
    with pytest.raises(ValueError, match="k must be at least 1"):
        accuracy.compute(prediction_scores=np.eye(3), references=[0, 1, 2], k=0)
    with pytest.raises(ValueError, match=r"Expected \(clips, classes\) scores and targets, got \(2, 3\) and \(2, 2\)"):
        load_metric("mean_average_precision").compute(prediction_scores=np.eye(3)[:2], references=np.eye(2))
    f1 = load_metric("multi_label_f1")
    with pytest.raises(ValueError, match=r"per class for every example, got rows of \[2, 3\]"):
        f1.compute(prediction_scores=np.eye(3)[:2], references=np.eye(2))
    with pytest.raises(ValueError, match=r"got rows of \[1, 2\] classes"):  # ragged rows
        f1.compute(prediction_scores=[[0.1, 0.2], [0.3]], references=[[0, 1], [1]])
    with pytest.raises(ValueError, match="got no examples"):
        f1.compute(prediction_scores=np.zeros((0, 2)), references=np.zeros((0, 2)))
    with pytest.raises(ValueError, match="threshold must be a finite number, got nan"):
        f1.compute(prediction_scores=np.eye(2), references=np.eye(2), threshold=float("nan"))
    assert accuracy.compute(prediction_scores=np.eye(3), references=[0, 1, 1]) == {"accuracy": 2 / 3}
    assert f1.compute(prediction_scores=[[1, 1], [0, 0]], references=np.eye(2)) == {"macro_f1": 0.5, "f1": [1.0, 0.0]}


def test_trainer_metrics_go_through_the_shipped_modules():
    for name in METRIC_NAMES:
        metric_class = type(load_metric(name))
        assert metric_class.__module__.startswith("evaluate_modules.")  # imported by evaluate.load, from a copy ...
        assert Path(inspect.getsourcefile(metric_class)).read_text() == (METRICS_DIR / name / f"{name}.py").read_text()

    scores, targets = fixed_multi_label_inputs()
    logits = scores.astype(np.float32)
    metrics = AudioClassificationMetrics(multi_label=True)(
        EvalPrediction(predictions=(logits, np.zeros(3)), label_ids=0.9 * targets)  # soft targets: >= 0.5 positive
    )
    average_precision = [average_precision_by_definition(logits[:, k], targets[:, k]) for k in (0, 1, 2, 3, 5)]
    auc = np.mean([auc_by_counting_pairs(logits[:, k], targets[:, k]) for k in range(4)])
    assert metrics == pytest.approx(
        {"mAP": np.mean(average_precision), "mAUC": auc, "d_prime": math.sqrt(2) * norm.ppf(auc)}, rel=1e-6
    )
    assert all(type(value) is float for value in metrics.values())  # what Trainer logs and saves as JSON

    labels = np.argmax(scores, axis=1)
    labels[:20] = 0
    metrics = AudioClassificationMetrics(multi_label=False)(EvalPrediction(predictions=logits, label_ids=labels))
    top5_hits = sum(int(np.sum(row > row[label]) < 5) for row, label in zip(logits, labels))
    assert metrics == {"accuracy": np.mean(np.argmax(logits, axis=1) == labels), "top5_accuracy": top5_hits / 60}


def test_frame_metrics_score_the_real_frames_through_the_shipped_modules():
    rng = np.random.default_rng(2)
    targets = rng.random((4, 12, 3)) < 0.3
    targets[..., 2] = False  # class 2: no positive frame, and never predicted below
    logits = (rng.normal(size=(4, 12, 3)) + 2.0 * targets - 0.5).astype(np.float32)
    logits[..., 2] = -np.abs(logits[..., 2]) - 0.1
    labels = targets.astype(np.float32)
    labels[1, 9:], labels[2, 5:] = -100, -100  # padding, where the model's confident scores must not count
    logits[1, 9:], logits[2, 5:] = 5.0, 5.0
    metrics = frame_metrics(EvalPrediction(predictions=(logits, np.zeros(3)), label_ids=labels))

    real = labels[..., 0] != -100
    real_logits, real_targets = logits[real], targets[real]
    average_precision = [average_precision_by_definition(real_logits[:, k], real_targets[:, k]) for k in (0, 1)]
    f1 = f1_score(real_targets, real_logits > 0, average=None, zero_division=1.0)
    assert f1[2] == 1.0
    assert metrics == pytest.approx({"frame_mAP": np.mean(average_precision), "frame_f1": np.mean(f1)}, rel=1e-12)
    assert all(type(value) is float for value in metrics.values())


OFFLINE_SCRIPT = """
import json, socket

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = socket.create_connection = socket.getaddrinfo = refuse

import numpy as np
from modeling_asda.training.metrics import load_metric, multi_label_metrics, single_label_metrics
from modeling_asda.training.sed_metrics import frame_metrics
from transformers import EvalPrediction

scores = np.array([[0.9, 0.2, 0.5], [0.8, 0.3, 0.1], [0.7, 0.6, 0.4], [0.1, 0.4, 0.3]])
targets = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [0, 0, 0]])
print(json.dumps({
    "multi_label": multi_label_metrics(scores, targets),
    "single_label": single_label_metrics(scores, np.array([0, 2, 1, 1]), top_k=2),
    "frame": frame_metrics(EvalPrediction(  # one clip of 4 steps and a padded one; logit 0 at score 0.5
        predictions=np.vstack([scores - 0.5, [9.0, 9.0, 9.0]])[None], label_ids=np.vstack([targets, [-100] * 3])[None]
    )),
}))
"""


def file_stamps(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns) for path in folder.rglob("*")}


def test_metrics_load_offline_without_network_or_writing_to_the_package(tmp_path):
    package_before = file_stamps(METRICS_DIR)
    environment = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_MODULES_CACHE": str(tmp_path / "modules"),  # fresh: the metric scripts are copied, not reused
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_EVALUATE_OFFLINE": "1",
    }
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    # the by-hand example of test_mean_average_precision_by_hand_and_by_definition; class 0's AUC: 3 of 4 pairs,
    # class 1's: 1 of 3. Single label: argmax right for clips 0 and 3, the label in the top 2 for clips 0, 2 and 3.
    # Frames: the F1s of test_multi_label_f1_by_hand_and_against_scikit_learn, the padded step left out.
    mean_auc = (3 / 4 + 1 / 3) / 2
    assert metrics["multi_label"] == pytest.approx(
        {"mAP": (5 / 6 + 1 / 3) / 2, "mAUC": mean_auc, "d_prime": math.sqrt(2) * norm.ppf(mean_auc)}
    )
    assert metrics["single_label"] == {"accuracy": 0.5, "top2_accuracy": 0.75}
    assert metrics["frame"] == pytest.approx({"frame_mAP": (5 / 6 + 1 / 3) / 2, "frame_f1": (0.8 + 0.0 + 1.0) / 3})
    copies = {path.name for path in (tmp_path / "modules").rglob("*.py")}
    assert {f"{name}.py" for name in METRIC_NAMES} <= copies
    assert file_stamps(METRICS_DIR) == package_before


@pytest.mark.slow
def test_installed_package_ships_the_metric_modules(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(REPO / "modeling_asda", source / "modeling_asda", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    install = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation"]
    subprocess.run([*install, "--target", str(tmp_path / "site"), str(source)], check=True, timeout=600)
    installed = tmp_path / "site" / "modeling_asda" / "metrics"
    for name in METRIC_NAMES:
        assert (installed / name / f"{name}.py").is_file() and (installed / name / "README.md").is_file()
    check = "from modeling_asda.training.metrics import METRICS_DIR, load_metric; print(METRICS_DIR); " + "; ".join(
        f"load_metric({name!r})" for name in METRIC_NAMES
    )
    environment = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "HF_HOME": str(tmp_path / "hf_home")}
    environment["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", check], env=environment, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert Path(result.stdout.strip()) == installed
