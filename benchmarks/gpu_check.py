#!/usr/bin/env python
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
"""One-GPU check of ASDA-base: mixed precision, attention backends, throughput and memory -> a JSON results file.

    PYTHONPATH=. python benchmarks/gpu_check.py                    # one GPU, a few minutes -> results/gpu_check.json
    PYTHONPATH=. python benchmarks/gpu_check.py --tiny --output x.json   # the tiny preset on the CPU, seconds

1. bf16 and fp16 autocast pre-training and fine-tuning steps (forward, backward, fused AdamW, EMA update; fp16 with
   a gradient scaler, whose first steps may overflow and be skipped): finite losses, then a step with finite
   gradients;
2. SDPA vs eager attention (and flash-attention 2 when installed) under bf16 autocast, against the fp32 eager
   output: the backends must agree within bf16 tolerance;
3. inference throughput of the classifier (clips/s, bf16, batch 64 x 10 s by default);
4. pre-training throughput (clips/s, bf16, 16 clones per clip) against EAT's ~23 clips/s per RTX 3090 (the target is
   4x that per GPU);
5. the peak memory of each part.
The exit status is 1 when a check fails; the results file is written either way.
"""

import argparse
import json
import math
import platform
import resource
import sys
import time
from functools import partial
from pathlib import Path

import torch
import transformers
from transformers.utils import is_flash_attn_2_available

from modeling_asda import AsdaConfig, AsdaForAudioClassification, AsdaForPreTraining


BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
EAT_CLIPS_PER_S_PER_GPU = 23.0  # EAT: 230 RTX 3090 GPU-hours for 10 epochs of AS-2M
TARGET_SPEEDUP_VS_EAT = 4.0
# Largest |backend - other backend| allowed, relative to the largest |fp32 logit|: bf16 keeps 8 mantissa bits.
BF16_TOLERANCE = 3e-2
AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Check:
    """Sizes and device of the run, and the figures and checks it collects."""

    def __init__(self, device: torch.device, tiny: bool, args: argparse.Namespace):
        self.device, self.tiny, self.args = device, tiny, args
        self.results = {"checks": {}, "figures": {}, "peak_memory_mib": {}}

    def config(self, **overrides) -> AsdaConfig:
        if self.tiny:
            tiny = {"num_hidden_layers": 1, "clone_batch": 4}
            return AsdaConfig.from_pretrained(REPO_ROOT / "configuration/models/asda-tiny.json", **tiny, **overrides)
        return AsdaConfig.from_pretrained(REPO_ROOT / "configuration/models/asda-base.json", **overrides)

    def inputs(self, batch: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return (0.5 * torch.randn(batch, self.args.frames, 128, generator=generator)).to(self.device)

    def autocast(self, dtype: torch.dtype):
        return torch.autocast(self.device.type, dtype=dtype)

    def record(self, name: str, passed: bool, **details):
        self.results["checks"][name] = {"passed": bool(passed), **details}
        print(f"{'ok  ' if passed else 'FAIL'} {name}: {details}", flush=True)

    def synchronize(self):
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    def measure_memory(self, name: str, function):
        """Run `function` once and record the memory it peaked at (CUDA allocations; on the CPU the process's peak
        resident set so far, an upper bound)."""
        if self.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            result = function()
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated() / 2**20
        else:
            result = function()
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        self.results["peak_memory_mib"][name] = round(peak, 1)
        return result

    def throughput(self, function, clips: int, steps: int) -> float:
        """Clips per second over `steps` calls of `function`, after one untimed call."""
        function()
        self.synchronize()
        start = time.perf_counter()
        for _ in range(steps):
            function()
        self.synchronize()
        return clips * steps / (time.perf_counter() - start)


def recipe_optimizer(model: torch.nn.Module) -> torch.optim.AdamW:
    """The recipes' fused AdamW over the trainable parameters."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.AdamW(trainable, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=True)


def optimizer_step(model: torch.nn.Module, optimizer, scaler, loss: torch.Tensor) -> bool:
    """Backward and one (gradient-scaled) optimiser step; returns whether every gradient was finite."""
    scaler.scale(loss).backward()
    scaler.unscale_(optimizer)
    grads_finite = all(bool(p.grad.isfinite().all()) for p in model.parameters() if p.grad is not None)
    scaler.step(optimizer)
    scaler.update()
    optimizer.zero_grad(set_to_none=True)
    return grads_finite


def pretraining_step(check: Check, model: AsdaForPreTraining, optimizer, scaler, inputs, dtype) -> tuple[float, bool]:
    """One optimiser step as the recipe runs it; returns the loss and whether every gradient was finite."""
    with check.autocast(dtype):
        loss = model(inputs).loss
    grads_finite = optimizer_step(model, optimizer, scaler, loss)
    model.update_teacher(1)
    return loss.detach(), grads_finite


def finetuning_step(check: Check, model: AsdaForAudioClassification, optimizer, scaler, inputs, labels, dtype):
    with check.autocast(dtype):
        loss = model(inputs, labels=labels).loss
    return loss.detach(), optimizer_step(model, optimizer, scaler, loss)


def check_mixed_precision_steps(check: Check, max_steps: int = 12):
    """Steps of each recipe under each autocast dtype until one has finite gradients (with fp16 the gradient
    scaler starts high and skips the steps that overflow, halving its scale each time): finite losses, and a step
    that updated the model."""
    batch = check.args.train_batch
    inputs = check.inputs(batch)
    labels = torch.zeros(batch, 527, device=check.device)
    labels[:, 0] = 1.0
    for label, dtype in AUTOCAST_DTYPES.items():
        torch.manual_seed(0)
        pretraining = AsdaForPreTraining(check.config()).to(check.device).train()
        finetuning = AsdaForAudioClassification(check.config(num_labels=527, drop_path_rate=0.1)).to(check.device)
        for name, model in (("pretraining", pretraining), ("finetuning", finetuning.train())):
            optimizer = recipe_optimizer(model)
            scaler = torch.amp.GradScaler(check.device.type, enabled=dtype is torch.float16)
            if name == "pretraining":
                step = partial(pretraining_step, check, model, optimizer, scaler, inputs, dtype)
            else:
                step = partial(finetuning_step, check, model, optimizer, scaler, inputs, labels, dtype)
            losses, grads_finite = [], False
            while not grads_finite and len(losses) < max_steps:
                loss, grads_finite = check.measure_memory(f"{name} step, {label}, batch {batch}", step)
                losses.append(float(loss))
            passed = all(math.isfinite(loss) for loss in losses) and grads_finite
            check.record(f"{name} step, {label} autocast", passed, losses=losses, skipped_steps=len(losses) - 1,
                         last_step_gradients_finite=grads_finite)  # fmt: skip
        del pretraining, finetuning


def check_attention_backends(check: Check):
    """The classifier's logits under bf16 autocast with each backend, against fp32 eager."""
    torch.manual_seed(0)
    model = AsdaForAudioClassification(check.config(num_labels=527)).to(check.device).eval()
    inputs = check.inputs(check.args.backend_batch)
    backends = ["eager", "sdpa"] + (["flash_attention_2"] if check.device.type == "cuda" else [])
    flash_installed = is_flash_attn_2_available()
    check.results["figures"]["flash_attention_2_installed"] = flash_installed
    logits = {}
    with torch.inference_mode():
        model.set_attn_implementation("eager")
        reference = model(inputs).logits.float()
        for backend in backends:
            if backend == "flash_attention_2" and not flash_installed:
                continue
            model.set_attn_implementation(backend)
            with check.autocast(torch.bfloat16):
                logits[backend] = model(inputs).logits.float()
    scale = float(reference.abs().max())
    errors = {name: float((value - reference).abs().max()) / scale for name, value in logits.items()}
    disagreement = {
        f"{name} vs eager": float((value - logits["eager"]).abs().max()) / scale
        for name, value in logits.items()
        if name != "eager"
    }
    check.results["figures"]["bf16_error_vs_fp32_eager"] = errors
    check.record(
        "attention backends agree under bf16",
        all(value <= BF16_TOLERANCE for value in disagreement.values()),
        relative_difference=disagreement,
        tolerance=BF16_TOLERANCE,
        backends=list(logits),
    )


def measure_inference(check: Check):
    torch.manual_seed(0)
    model = AsdaForAudioClassification(check.config(num_labels=527)).to(check.device).eval()
    batch = check.args.inference_batch
    inputs = check.inputs(batch)

    def forward():
        with torch.inference_mode(), check.autocast(torch.bfloat16):
            return model(inputs).logits

    check.measure_memory(f"inference, bf16, batch {batch}", forward)
    clips_per_s = check.throughput(forward, batch, check.args.steps)
    check.results["figures"]["inference_clips_per_s"] = round(clips_per_s, 2)
    print(f"inference: {clips_per_s:.1f} clips/s (batch {batch} x {check.args.frames} frames)", flush=True)


def measure_pretraining(check: Check):
    torch.manual_seed(0)
    model = AsdaForPreTraining(check.config()).to(check.device).train()
    optimizer = recipe_optimizer(model)
    scaler = torch.amp.GradScaler(check.device.type, enabled=False)
    batch = check.args.pretrain_batch
    inputs = check.inputs(batch)

    def step():
        return pretraining_step(check, model, optimizer, scaler, inputs, torch.bfloat16)

    check.measure_memory(f"pre-training step, bf16, batch {batch} x {model.config.clone_batch} clones", step)
    clips_per_s = check.throughput(step, batch, check.args.steps)
    figures = check.results["figures"]
    figures["pretraining_clips_per_s"] = round(clips_per_s, 2)
    figures["pretraining_vs_eat_per_gpu"] = round(clips_per_s / EAT_CLIPS_PER_S_PER_GPU, 2)
    print(f"pre-training: {clips_per_s:.1f} clips/s, {clips_per_s / EAT_CLIPS_PER_S_PER_GPU:.2f}x EAT", flush=True)
    if not check.tiny:
        target = TARGET_SPEEDUP_VS_EAT * EAT_CLIPS_PER_S_PER_GPU
        check.record("pre-training throughput >= 4x EAT per GPU", clips_per_s >= target,
                     clips_per_s=round(clips_per_s, 2), target=target)  # fmt: skip


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="The tiny preset at tiny sizes, on the CPU (a smoke test).")
    parser.add_argument("--output", type=Path, default=BENCHMARKS / "results" / "gpu_check.json")
    parser.add_argument("--frames", type=int, help="Frames per clip (default 1024 = 10 s; 64 with --tiny).")
    parser.add_argument("--inference_batch", type=int, help="Default 64 (2 with --tiny).")
    parser.add_argument("--pretrain_batch", type=int, help="Clips per pre-training step (default 32; 2 with --tiny).")
    parser.add_argument("--train_batch", type=int, help="Clips per mixed-precision check step (default 8; 2 --tiny).")
    parser.add_argument("--backend_batch", type=int, help="Clips in the backend comparison (default 8; 2 --tiny).")
    parser.add_argument("--steps", type=int, help="Timed calls per throughput figure (default 10; 1 with --tiny).")
    args = parser.parse_args(argv)
    defaults = {"frames": 64, "inference_batch": 2, "pretrain_batch": 2, "train_batch": 2, "backend_batch": 2,
                "steps": 1}
    if not args.tiny:
        defaults = {"frames": 1024, "inference_batch": 64, "pretrain_batch": 32, "train_batch": 8, "backend_batch": 8,
                    "steps": 10}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    if not args.tiny and not torch.cuda.is_available():
        raise SystemExit("No GPU visible: run on a machine with CUDA, or pass --tiny for the CPU smoke test.")
    device = torch.device("cpu" if args.tiny else "cuda")
    check = Check(device, args.tiny, args)
    check.results["environment"] = {
        "device": torch.cuda.get_device_name() if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "tiny": args.tiny,
        "sizes": {name: getattr(args, name) for name in ("frames", "inference_batch", "pretrain_batch", "steps")},
    }
    start = time.perf_counter()
    for part in (check_mixed_precision_steps, check_attention_backends, measure_inference, measure_pretraining):
        part(check)
    check.results["elapsed_s"] = round(time.perf_counter() - start, 1)
    check.results["passed"] = all(result["passed"] for result in check.results["checks"].values())
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(check.results, indent=2) + "\n", encoding="utf-8")
    print(f"{'all checks passed' if check.results['passed'] else 'SOME CHECKS FAILED'}; results in {args.output}")
    return 0 if check.results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
