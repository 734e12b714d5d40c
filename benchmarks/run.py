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
"""ASDA's speed side by side with its peers, in one process and one run -> `benchmarks/RESULTS.md`.

    PYTHONPATH=. python benchmarks/run.py                                  # CPU, fp32: about 40 minutes on 2 cores
    PYTHONPATH=. python benchmarks/run.py --device cuda --dtype bfloat16   # a GPU -> benchmarks/RESULTS-cuda.md
    PYTHONPATH=. python benchmarks/run.py --sections inference features    # these sections only, merged in

1. inference: ASDA-base vs `transformers.ASTForAudioClassification` (default config) vs the same ASDA with standard
   attention (the one-flag ablation) vs EAT-base, 1 s / 10 s / 60 s clips, batch 1 and 8: time, clips/s, peak memory,
   achieved GFLOP/s;
2. differential attention kernels: eager vs SDPA vs a naive reference written from the formula;
3. feature extraction vs `ASTFeatureExtractor` (`benchmarks/feature_extraction.py`);
4. a pre-training step (teacher / student / decoder shares) and a fine-tuning step;
5. the encoder's achieved GFLOP/s against this machine's matmul peak, measured in the same run; `torch.compile`;
6. cost against clip length up to 60 s, with the attention term separated;
7. CPU deployment: ONNX Runtime with fp32 and int8 weights (`benchmarks/deployment.py`; CPU, fp32 runs only).
Times are medians of several calls, taken in turns between the compared models; FLOPs are counted by
`torch.utils.flop_counter` on the meta device (no compute), with eager attention so that attention matmuls count.
"""

import argparse
import math
import os
import platform
import subprocess
from functools import cache, partial
from pathlib import Path

import torch
import torch.nn.functional as F
import transformers
from torch.utils.flop_counter import FlopCounterMode
from transformers import ASTConfig, ASTForAudioClassification

import deployment
import feature_extraction
from modeling_asda import AsdaConfig, AsdaForAudioClassification, AsdaForPreTraining, inverse_block_mask
from modeling_asda.modeling_asda import AsdaAttention
from timing import interleaved_medians, peak_memory_mib


BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
# (clip seconds, batch): AST's 60 s batch of 8 alone would take minutes; 60 s clips are timed one at a time.
INFERENCE_CELLS = [(1, 1), (1, 8), (10, 1), (10, 8), (60, 1)]
LENGTHS = [1, 5, 10, 20, 30, 60]


def num_frames(seconds: float) -> int:
    """Frames of the model input: 1024 for 10 s (the official AudioSet length), else Kaldi frames rounded up to 16."""
    if seconds == 10:
        return 1024
    kaldi_frames = 1 + (int(16000 * seconds) - 400) // 160
    return 16 * math.ceil(kaldi_frames / 16)


def asda_config(**overrides) -> AsdaConfig:
    return AsdaConfig(num_labels=527, **overrides)


def eat_config(**overrides) -> AsdaConfig:
    return AsdaConfig.from_pretrained(REPO_ROOT / "configuration/models/eat-base.json", num_labels=527, **overrides)


# name -> (frames, attention implementation) -> classifier. The ASDA models read (batch, frames, 128) spectrograms;
# AST gets the same input, its position table sized to it (the default config is AST's 10-s AudioSet model).
CLASSIFIERS = {
    "ASDA-base": lambda frames, attn: AsdaForAudioClassification(asda_config(attn_implementation=attn)),
    "ASDA-base, standard attention": lambda frames, attn: AsdaForAudioClassification(
        asda_config(attention_type="standard", attn_implementation=attn)
    ),
    "EAT-base": lambda frames, attn: AsdaForAudioClassification(eat_config(attn_implementation=attn)),
    "AST-base": lambda frames, attn: ASTForAudioClassification(ASTConfig(max_length=frames, attn_implementation=attn)),
}


class Bench:
    """Device, dtype and repeats of the run, and the helpers that depend on them."""

    def __init__(self, device: str, dtype: torch.dtype, repeats: int):
        self.device, self.dtype, self.repeats = device, dtype, repeats

    def inputs(self, batch: int, frames: int) -> torch.Tensor:
        generator = torch.Generator().manual_seed(0)
        return (0.5 * torch.randn(batch, frames, 128, generator=generator)).to(self.device, self.dtype)

    def model(self, factory, frames: int, attn: str = "sdpa"):
        return factory(frames, attn).to(self.device, self.dtype).eval()

    def medians(self, functions: dict, repeats: int | None = None) -> dict[str, float]:
        return interleaved_medians(functions, repeats or self.repeats)

    def peak_mib(self, function) -> float:
        return peak_memory_mib(function, self.device)


def forward_flops(factory, frames: int) -> tuple[float, float]:
    """(total, attention-matmul) FLOPs of one clip's forward pass, counted on the meta device with eager attention."""
    with torch.device("meta"):
        model = factory(frames, "eager").eval()
        inputs = torch.empty(1, frames, 128)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(inputs)
    return float(counter.get_total_flops()), float(counter.get_flop_counts()["Global"].get(torch.ops.aten.bmm, 0))


def matmul_peak_gflops(bench: Bench, size: int = 2048) -> float:
    a = torch.randn(size, size, device=bench.device, dtype=bench.dtype)
    b = torch.randn(size, size, device=bench.device, dtype=bench.dtype)
    seconds = bench.medians({"mm": partial(torch.mm, a, b)}, repeats=max(bench.repeats, 10))["mm"]
    return 2 * size**3 / seconds / 1e9


def inference(bench: Bench) -> list[dict]:
    rows = []
    for seconds, batch in INFERENCE_CELLS:
        frames = num_frames(seconds)
        inputs = bench.inputs(batch, frames)
        models = {name: bench.model(factory, frames) for name, factory in CLASSIFIERS.items()}
        calls = {name: partial(model, inputs) for name, model in models.items()}
        with torch.inference_mode():
            medians = bench.medians(calls, repeats=bench.repeats if seconds * batch < 60 else 3)
            peaks = {name: bench.peak_mib(call) for name, call in calls.items()}
        for name, factory in CLASSIFIERS.items():
            flops, attention_flops = forward_flops(factory, frames)
            rows.append({
                "seconds": seconds, "batch": batch, "frames": frames, "model": name, "time_s": medians[name],
                "peak_mib": peaks[name], "gflop": batch * flops / 1e9, "attention_gflop": batch * attention_flops / 1e9,
                "vs_ast": medians["AST-base"] / medians[name],
            })  # fmt: skip
        del models, calls
    return rows


def naive_differential_attention(module: AsdaAttention, hidden_states: torch.Tensor) -> torch.Tensor:
    """The differential attention formula written out, with both maps materialised (the reference)."""
    batch, length, width = hidden_states.shape
    heads, head_dim = module.num_heads, module.head_dim
    q1, q2, k1, k2, value = module.qkv_proj(hidden_states).split(width, dim=-1)
    q1, q2, k1, k2, value = (t.view(batch, length, heads, head_dim).transpose(1, 2) for t in (q1, q2, k1, k2, value))
    first = F.softmax(q1 @ k1.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
    second = F.softmax(q2 @ k2.transpose(-1, -2) / math.sqrt(head_dim), dim=-1)
    heads_out = ((first - module.differential_lambda * second) @ value).transpose(1, 2).reshape(batch, length, width)
    return module.o_proj(module.head_norm(heads_out) * module.output_scale)


def attention_kernels(bench: Bench, batch: int = 8, seconds: int = 10) -> dict:
    tokens = 1 + num_frames(seconds) // 16 * 8
    generator = torch.Generator().manual_seed(0)
    hidden_states = torch.randn(batch, tokens, 768, generator=generator).to(bench.device, bench.dtype)
    def attention(attn_implementation: str = "sdpa", **overrides) -> AsdaAttention:
        config = asda_config(attn_implementation=attn_implementation, **overrides)
        return AsdaAttention(config).to(bench.device, bench.dtype).eval()

    sdpa, eager, standard = attention(), attention("eager"), attention(attention_type="standard")
    eager.load_state_dict(sdpa.state_dict())  # the same weights behind both backends
    calls = {
        "naive reference (materialised maps)": partial(naive_differential_attention, sdpa, hidden_states),
        "eager (attention interface)": lambda: eager(hidden_states)[0],
        "SDPA (attention interface)": lambda: sdpa(hidden_states)[0],
        "standard attention, SDPA": lambda: standard(hidden_states)[0],
    }
    with torch.inference_mode():
        medians = bench.medians(calls)
        reference = calls["naive reference (materialised maps)"]()
        differences = {
            name: float((calls[name]() - reference).abs().max())
            for name in ("eager (attention interface)", "SDPA (attention interface)")
        }
        peaks = {name: bench.peak_mib(call) for name, call in calls.items()}
    return {"batch": batch, "tokens": tokens, "medians": medians, "peaks": peaks, "differences": differences}


def pretraining_step(bench: Bench, clips_per_step: tuple[int, ...] = (1, 2), seconds: int = 10) -> list[dict]:
    """Full optimiser step of ASDA-base pre-training (16 clones per clip) with the recipe's fused AdamW, and its parts
    timed alone: teacher, student and decoder compute, the optimiser update and the EMA update."""
    torch.manual_seed(0)
    model = AsdaForPreTraining(AsdaConfig()).to(bench.device, bench.dtype).train()
    trainable = [parameter for parameter in model.parameters() if parameter.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-6, betas=(0.9, 0.95), weight_decay=0.05, fused=True)
    config, frames = model.config, num_frames(seconds)
    num_time_patches = frames // config.patch_size
    rows = []
    for clips in clips_per_step:
        inputs = bench.inputs(clips, frames)
        mask = inverse_block_mask(clips * config.clone_batch, num_time_patches, config.num_frequency_patches,
                                  config.mask_ratio, config.mask_block_size, config.mask_prob_adjust,
                                  generator=torch.Generator().manual_seed(0)).to(bench.device)  # fmt: skip
        kept = (~mask).nonzero()[:, 1].view(mask.shape[0], -1)
        decoder_input = torch.randn(mask.shape[0], mask.shape[1], config.hidden_size, device=bench.device,
                                    dtype=bench.dtype, requires_grad=True)  # fmt: skip

        def step():
            model(inputs, mask=mask).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            model.update_teacher(1)

        def student():
            model.asda(inputs, kept_patch_indices=kept).last_hidden_state.sum().backward()

        def decoder():
            model.decoder(decoder_input, num_time_patches).sum().backward()

        def optimiser():
            for parameter in trainable:  # gradients of a step, as the optimiser finds them
                parameter.grad = torch.ones_like(parameter) if parameter.grad is None else parameter.grad
            optimizer.step()

        medians = bench.medians({
            "step": step, "teacher": partial(model.teacher_targets, inputs), "student": student, "decoder": decoder,
            "optimiser": optimiser, "ema": partial(model.update_teacher, 1),
        }, repeats=3)  # fmt: skip
        optimizer.zero_grad(set_to_none=True)
        rows.append({"clips": clips, "clones": config.clone_batch, **medians, "clips_per_s": clips / medians["step"]})
    return rows


def finetuning_step(bench: Bench, batch: int = 4, seconds: int = 10) -> dict:
    torch.manual_seed(0)
    model = AsdaForAudioClassification(asda_config(drop_path_rate=0.1)).to(bench.device, bench.dtype).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95), weight_decay=0.05)
    inputs = bench.inputs(batch, num_frames(seconds))
    labels = torch.zeros(batch, 527, device=bench.device)
    labels[:, 0] = 1.0

    def step():
        model(inputs, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    seconds_per_step = bench.medians({"step": step}, repeats=3)["step"]
    return {"batch": batch, "step_s": seconds_per_step, "clips_per_s": batch / seconds_per_step}


def compiled(bench: Bench, batch: int = 8, seconds: int = 10) -> dict:
    frames = num_frames(seconds)
    model = bench.model(CLASSIFIERS["ASDA-base"], frames)
    compiled_model = torch.compile(model, fullgraph=True)
    inputs = bench.inputs(batch, frames)
    with torch.inference_mode():
        start = os.times().elapsed
        compiled_output = compiled_model(inputs).logits
        compile_s = os.times().elapsed - start
        difference = float((compiled_output - model(inputs).logits).abs().max())
        medians = bench.medians({"eager": partial(model, inputs), "compiled": partial(compiled_model, inputs)}, 3)
    return {"batch": batch, "compile_s": compile_s, **medians, "difference": difference}


def length_scaling(bench: Bench, inference_rows: list[dict]) -> list[dict]:
    """ASDA-base at batch 1 for 1 to 60 s; lengths already timed in the inference table are reused."""
    timed = {row["seconds"]: row for row in inference_rows if row["model"] == "ASDA-base" and row["batch"] == 1}
    rows = []
    for seconds in LENGTHS:
        if seconds in timed:
            row = timed[seconds]
        else:
            frames = num_frames(seconds)
            model, inputs = bench.model(CLASSIFIERS["ASDA-base"], frames), bench.inputs(1, frames)
            with torch.inference_mode():
                time_s = bench.medians({"asda": partial(model, inputs)}, 3)["asda"]
            flops, attention_flops = forward_flops(CLASSIFIERS["ASDA-base"], frames)
            row = {"seconds": seconds, "frames": frames, "time_s": time_s, "gflop": flops / 1e9,
                   "attention_gflop": attention_flops / 1e9}  # fmt: skip
        rows.append(row)
    return rows


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    description = f"{cpu}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}"
    if torch.cuda.is_available():
        description += f", GPU {torch.cuda.get_device_name()}"
    return (
        f"{description}; Python {platform.python_version()}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}; code at {code_version()}"
    )


@cache
def code_version() -> str:
    """The git commit measured, marked when the working tree differs from it (read once: at the start of the run)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return "an unknown commit (no git checkout)"
    return f"commit {commit}" + (" with uncommitted changes" if dirty else "")


def format_header(bench: Bench, results: dict) -> list[str]:
    return [
        f"# Benchmarks ({bench.device}, {str(bench.dtype).removeprefix('torch.')})",
        "",
        (
            f"Machine: {machine()}. Measured {bench.dtype} matmul peak (2048 x 2048): "
            f"**{results['matmul_peak_gflops']:.0f} GFLOP/s**."
        ),
        "Generated by `PYTHONPATH=. python benchmarks/run.py` in one process: times are medians of several calls taken",
        "in turns between the compared models; on a shared machine absolute times drift between runs, so read the",
        "ratios, which come from the same run.",
        "",
    ]


def format_inference(results: dict) -> list[str]:
    peak = results["matmul_peak_gflops"]
    lines = [
        "## 1. Inference (classifiers, random weights, `inference_mode`, SDPA attention)",
        "",
        "| clip | batch | model | time (s) | clips/s | vs AST | peak memory (MiB) | GFLOP | GFLOP/s | of peak |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["inference"]:
        rate = row["gflop"] / row["time_s"]
        lines.append(
            f"| {row['seconds']} s ({row['frames']} frames) | {row['batch']} | {row['model']} | {row['time_s']:.3f} | "
            f"{row['batch'] / row['time_s']:.2f} | {row['vs_ast']:.2f}x | {row['peak_mib']:.0f} | {row['gflop']:.0f} | "
            f"{rate:.0f} | {100 * rate / peak:.0f} % |"
        )
    by_key = {(row["seconds"], row["batch"], row["model"]): row for row in results["inference"]}
    asda, standard, eat, ast = (
        by_key[(10, 8, name)] for name in ("ASDA-base", "ASDA-base, standard attention", "EAT-base", "AST-base")
    )
    lines += [
        "",
        "ASDA runs 513 tokens for a 10-s clip (64 x 8 patches + CLS); AST's overlapping patches make 1214. "
        "Differential attention computes two softmax maps per head over the same values, and ASDA's projections are "
        "13 x 768^2 per block against 12 x 768^2 for EAT's, so its FLOPs are "
        f"{asda['gflop'] / eat['gflop']:.2f}x EAT-base's and {asda['gflop'] / standard['gflop']:.2f}x those of the "
        "same model with standard attention at 10 s: the time ratios below cannot fall much under these. Against "
        f"AST-base the FLOP ratio is {ast['gflop'] / asda['gflop']:.2f}x: a time ratio above it needs ASDA to run "
        "more FLOP/s than AST.",
        "",
    ]
    return lines


def format_attention(results: dict) -> list[str]:
    kernels = results["attention"]
    lines = [
        "## 2. Differential attention kernels (one block's attention, hidden 768, 12 heads)",
        "",
        f"Batch {kernels['batch']}, {kernels['tokens']} tokens (a 10-s clip).",
        "",
        "| implementation | time (ms) | vs naive | peak memory (MiB) | max abs difference to naive |",
        "|---|---:|---:|---:|---:|",
    ]
    naive = kernels["medians"]["naive reference (materialised maps)"]
    for name, seconds in kernels["medians"].items():
        difference = kernels["differences"].get(name)
        lines.append(
            f"| {name} | {1000 * seconds:.1f} | {naive / seconds:.2f}x | {kernels['peaks'][name]:.0f} | "
            f"{'—' if difference is None else f'{difference:.1e}'} |"
        )
    return lines + [""]


def format_feature_extraction(results: dict) -> list[str]:
    return ["## 3. Feature extraction", "", results["feature_extraction"], ""]


def format_training(results: dict) -> list[str]:
    lines = [
        "## 4. Training steps",
        "",
        "Pre-training, ASDA-base, 10-s clips, 16 masked clones per clip (the official recipe), fused AdamW (the "
        "recipe's `adamw_torch_fused`) + EMA update. The parts are timed alone: teacher = targets from the unmasked "
        "clips (no gradients); student = encoder on the kept patches, forward + backward; decoder = CNN decoder over "
        "every patch of every clone, forward + backward; optimiser = one AdamW update; EMA = one teacher update. "
        "Rest = the step less all five (masking, decoder input, loss).",
        "",
        (
            "| clips x clones | step (s) | clips/s | teacher | student | decoder | optimiser | EMA | rest | "
            "all but teacher, student, decoder |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["pretraining"]:
        shares = {part: 100 * row[part] / row["step"] for part in ("teacher", "student", "decoder", "optimiser", "ema")}
        outside = 100 - shares["teacher"] - shares["student"] - shares["decoder"]
        lines.append(
            f"| {row['clips']} x {row['clones']} | {row['step']:.2f} | {row['clips_per_s']:.3f} | "
            + " | ".join(f"{share:.0f} %" for share in shares.values())
            + f" | {outside - shares['optimiser'] - shares['ema']:.0f} % | {outside:.0f} % |"
        )
    finetune = results["finetuning"]
    return lines + [
        "",
        "For scale: EAT reports 230 GPU-hours for 10 epochs of AS-2M on RTX 3090s, about 23 clips/s per GPU.",
        "",
        f"Fine-tuning step, ASDA-base classifier, batch {finetune['batch']} x 10 s, drop-path 0.1, AdamW: "
        f"{finetune['step_s']:.2f} s ({finetune['clips_per_s']:.2f} clips/s).",
        "",
    ]


def format_compile(results: dict) -> list[str]:
    compile_result = results["compile"]
    return [
        "## 5. `torch.compile`",
        "",
        f"ASDA-base classifier, batch {compile_result['batch']} x 10 s, `torch.compile(model, fullgraph=True)`: "
        f"compiled in {compile_result['compile_s']:.0f} s; {compile_result['eager']:.2f} s eager vs "
        f"{compile_result['compiled']:.2f} s compiled per batch "
        f"(**{compile_result['eager'] / compile_result['compiled']:.2f}x**); "
        f"largest logit difference {compile_result['difference']:.1e}.",
        "",
    ]


def format_lengths(results: dict) -> list[str]:
    lines = [
        "## 6. Cost against clip length (ASDA-base, batch 1)",
        "",
        "| clip | tokens | time (s) | ms per audio second | GFLOP | of which attention | non-attention GFLOP per s |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in results["lengths"]:
        tokens = 1 + row["frames"] // 16 * 8
        lines.append(
            f"| {row['seconds']} s | {tokens} | {row['time_s']:.3f} | {1000 * row['time_s'] / row['seconds']:.0f} | "
            f"{row['gflop']:.0f} | {100 * row['attention_gflop'] / row['gflop']:.0f} % | "
            f"{(row['gflop'] - row['attention_gflop']) / row['seconds']:.1f} |"
        )
    return lines + ["", "![time against clip length](results/length_scaling.png)", ""]


def format_goals(results: dict) -> list[str]:
    return ["## Goals", "", goals_table(results)]


# Report section -> (the results it needs, its formatter), in report order.
SECTIONS = {
    "inference": (("inference",), format_inference),
    "attention": (("attention",), format_attention),
    "features": (("feature_extraction",), format_feature_extraction),
    "training": (("pretraining", "finetuning"), format_training),
    "compile": (("compile",), format_compile),
    "lengths": (("lengths",), format_lengths),
    "goals": (("inference", "feature_extraction_speedup"), format_goals),
}


def format_report(bench: Bench, results: dict) -> str:
    lines = format_header(bench, results)
    for needs, formatter in SECTIONS.values():
        if all(key in results for key in needs):
            lines += formatter(results)
    return "\n".join(lines).rstrip("\n") + "\n"


def merge_sections(existing: str, regenerated: str, note: str) -> str:
    """`existing` report with each `## ` section that `regenerated` holds replaced by it, under a line saying how
    it was measured (the header of `existing` stays: it describes the sections not measured again)."""

    def split(text: str) -> tuple[str, dict[str, str]]:
        head, *sections = text.split("\n## ")
        return head, {section.split("\n", 1)[0]: section for section in sections}

    head, sections = split(existing)
    _, new_sections = split(regenerated)
    for title, section in new_sections.items():
        heading, body = section.split("\n", 1)
        sections[title] = f"{heading}\n\n{note}\n{body}"
    return "\n## ".join([head, *sections.values()]).rstrip("\n") + "\n"


def goals_table(results: dict) -> str:
    by_key = {(row["seconds"], row["batch"], row["model"]): row for row in results["inference"]}
    asda = by_key[(10, 8, "ASDA-base")]
    rate = asda["gflop"] / asda["time_s"] / results["matmul_peak_gflops"]
    fe_speedup = results["feature_extraction_speedup"]
    rows = [
        ("ASDA-base 10 s inference vs AST-base (batch 8)", "≥ 2.5x", f"{asda['vs_ast']:.2f}x", asda["vs_ast"] >= 2.5),
        *(
            (
                f"differential / standard time, 10 s, batch 8, vs {name}",
                "≤ 1.10",
                f"{asda['time_s'] / by_key[(10, 8, name)]['time_s']:.2f}",
                asda["time_s"] / by_key[(10, 8, name)]["time_s"] <= 1.10,
            )
            for name in ("ASDA-base, standard attention", "EAT-base")
        ),  # fmt: skip
        ("encoder forward, batch 8, share of the matmul peak", "≥ 60 %", f"{100 * rate:.0f} %", rate >= 0.6),
        ("feature extraction vs ASTFeatureExtractor", "≥ 5x", f"{fe_speedup:.1f}x", fe_speedup >= 5),
    ]
    lines = ["| goal | target | measured | met |", "|---|---|---:|---|"]
    lines += [f"| {name} | {target} | {value} | {'yes' if met else 'no'} |" for name, target, value, met in rows]
    return "\n".join(lines)


def plot_lengths(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    seconds = [row["seconds"] for row in rows]
    times = [row["time_s"] for row in rows]
    # A FLOP-proportional model fitted at 10 s: what the time would be if every FLOP cost the same.
    reference = next(row for row in rows if row["seconds"] == 10)
    per_flop = reference["time_s"] / reference["gflop"]
    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(seconds, times, "o-", label="measured")
    axis.plot(seconds, [per_flop * row["gflop"] for row in rows], "--", label="FLOPs x (time/FLOP at 10 s)")
    axis.plot(seconds, [per_flop * (row["gflop"] - row["attention_gflop"]) for row in rows], ":",
              label="non-attention FLOPs only (linear)")  # fmt: skip
    axis.set(xlabel="clip length (s)", ylabel="forward time, batch 1 (s)", title="ASDA-base: cost against clip length")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per measurement (3 for the slow ones)")
    parser.add_argument(
        "--sections",
        nargs="+",
        choices=[*(name for name in SECTIONS if name != "goals"), "deployment"],
        help="Measure these sections only and replace them in the existing report (the goals too when inference "
        "and features are among them; deployment: section 7, CPU fp32 only); default: everything, written afresh.",
    )
    args = parser.parse_args()
    bench = Bench(args.device, getattr(torch, args.dtype), args.repeats)
    code_version()  # the code as it is now, should the checkout change during the run
    suffix = "" if args.device == "cpu" and args.dtype == "float32" else f"-{args.device}-{args.dtype}"
    on_cpu_in_fp32 = not suffix
    sections = set(args.sections or [*SECTIONS, "deployment"])
    if args.sections and "deployment" in sections and not on_cpu_in_fp32:
        parser.error("the deployment section compares CPU fp32 with ONNX Runtime: run it without --device/--dtype")
    if sections - {"deployment"}:
        write_report(bench, args, sections, suffix)
    if on_cpu_in_fp32 and "deployment" in sections:
        deployment.write_section(BENCHMARKS / "RESULTS.md", deployment.format_section(deployment.measure(bench)))


def write_report(bench: Bench, args: argparse.Namespace, sections: set[str], suffix: str):
    """Measure `sections` and write them to the report (merged into the existing one when only some were asked)."""
    results = {"matmul_peak_gflops": matmul_peak_gflops(bench)}
    print(f"matmul peak {results['matmul_peak_gflops']:.0f} GFLOP/s", flush=True)
    if "inference" in sections:
        results["inference"] = inference(bench)
        print("inference done", flush=True)
    if "attention" in sections:
        results["attention"] = attention_kernels(bench)
    if "features" in sections:
        if args.device == "cpu":
            fe = feature_extraction.measure(repeats=11)
            results["feature_extraction"] = feature_extraction.format_table([fe])
            results["feature_extraction_speedup"] = fe["speedup_vs_ast"]
        else:
            results["feature_extraction"], results["feature_extraction_speedup"] = "(CPU only)", float("nan")
    if "training" in sections:
        results["pretraining"] = pretraining_step(bench)
        results["finetuning"] = finetuning_step(bench)
        print("training steps done", flush=True)
    if "compile" in sections:
        results["compile"] = compiled(bench)
    if "lengths" in sections:
        results["lengths"] = length_scaling(bench, results.get("inference", []))
        (BENCHMARKS / "results").mkdir(exist_ok=True)
        plot_lengths(results["lengths"], BENCHMARKS / "results" / f"length_scaling{suffix}.png")
    report = format_report(bench, results).replace("results/length_scaling.png", f"results/length_scaling{suffix}.png")
    path = BENCHMARKS / f"RESULTS{suffix}.md"
    if args.sections and path.exists():
        note = (
            f"*Measured again alone (`run.py --sections {' '.join(args.sections)}`) at {code_version()}, load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at the end; matmul peak then "
            f"{results['matmul_peak_gflops']:.0f} GFLOP/s.*"
        )
        report = merge_sections(path.read_text(encoding="utf-8"), report, note)
    path.write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
