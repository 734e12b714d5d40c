"""benchmarks/gpu_check.py, run with --tiny on the CPU: it executes end to end and writes every figure it promises."""

import importlib.util
import json
import math
from pathlib import Path

import pytest

GPU_CHECK = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_tiny_gpu_check_runs_on_cpu_and_writes_its_results(gpu_check, tmp_path):
    output = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--tiny", "--output", str(output)]) == 0
    results = json.loads(output.read_text())

    assert results["passed"] and results["environment"]["tiny"]
    checks = results["checks"]
    for recipe in ("pretraining", "finetuning"):
        for dtype in ("bf16", "fp16"):
            check = checks[f"{recipe} step, {dtype} autocast"]
            assert check["passed"] and check["last_step_gradients_finite"]
            assert check["losses"] and all(math.isfinite(loss) and loss > 0 for loss in check["losses"])
    backends = checks["attention backends agree under bf16"]
    assert backends["backends"][:2] == ["eager", "sdpa"]
    assert 0 < backends["relative_difference"]["sdpa vs eager"] <= gpu_check.BF16_TOLERANCE  # bf16 did round
    figures = results["figures"]
    assert figures["inference_clips_per_s"] > 0 and figures["pretraining_clips_per_s"] > 0
    assert figures["pretraining_vs_eat_per_gpu"] == pytest.approx(figures["pretraining_clips_per_s"] / 23, abs=0.01)
    assert set(figures["bf16_error_vs_fp32_eager"]) == {"eager", "sdpa"}
    assert len(results["peak_memory_mib"]) >= 6 and all(peak > 0 for peak in results["peak_memory_mib"].values())


def test_backend_check_fails_when_the_backends_disagree(gpu_check, monkeypatch):
    monkeypatch.setattr(gpu_check, "BF16_TOLERANCE", 0.0)
    check = gpu_check.Check(gpu_check.torch.device("cpu"), True, gpu_check.parse_arguments(["--tiny"]))
    gpu_check.check_attention_backends(check)
    assert not check.results["checks"]["attention backends agree under bf16"]["passed"]
