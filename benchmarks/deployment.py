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
"""Section 7 of `benchmarks/RESULTS.md`: ASDA-base deployed on the CPU with ONNX Runtime (`modeling_asda.deployment`).

    PYTHONPATH=. python benchmarks/run.py --sections deployment    # this section alone, about 15 minutes on 2 cores

1. speed: ASDA-base fp32 (torch, SDPA) vs its ONNX export run by ONNX Runtime with fp32 and with int8 weights vs
   AST-base fp32 (torch), 8 x 10 s and 1 x 10 s, seeded random weights, timed in turns;
2. peak memory: each model built or loaded and run on one batch in a fresh process, as a server would start;
3. fidelity on the two real clips of `../shared/data`: largest logit difference to torch (the seeded 527-label
   classifier) and cosine of the CLS embedding (its encoder exported alone);
4. top-1 agreement with torch on the held-out clips of the demo's fine-tuned model (`examples/quickstart.py`, run here).
"""

import csv
import multiprocessing
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import onnx
import torch

from modeling_asda import AsdaFeatureExtractor, AsdaForAudioClassification, load_audio
from modeling_asda.deployment import AsdaOnnxModel, export_onnx, load_deployed_model
from modeling_asda.tools.classify import load_classifier
from timing import peak_memory_mib


BENCHMARKS = Path(__file__).resolve().parent
REPO_ROOT = BENCHMARKS.parent
SHARED_DIR = Path(os.environ.get("ASDA_SHARED_DIR", REPO_ROOT.parent / "shared"))
TITLE = "## 7. CPU deployment: ONNX Runtime, fp32 and int8 weights"
MODELS = (
    "ASDA-base, torch fp32",
    "ASDA-base, ONNX Runtime fp32",
    "ASDA-base, ONNX Runtime int8",
    "AST-base, torch fp32",
)
CELLS = [(10, 8), (10, 1)]  # (clip seconds, batch)
SPEEDUP_TARGET = 4.0  # over AST-base at 8 x 10 s


def seeded_classifier() -> AsdaForAudioClassification:
    """ASDA-base with 527 AudioSet labels and seeded random weights, SDPA attention."""
    import run

    torch.manual_seed(0)
    return AsdaForAudioClassification(run.asda_config(attn_implementation="sdpa")).eval()


def build(name: str, exports: dict[str, Path], frames: int):
    """One of `MODELS`, ready to be called on `(batch, frames, 128)` spectrograms."""
    import run

    if name == MODELS[0]:
        return seeded_classifier()
    if name == MODELS[3]:
        return run.CLASSIFIERS["AST-base"](frames, "sdpa").eval()
    return AsdaOnnxModel(exports["fp32" if name == MODELS[1] else "int8"])


def peak_in_fresh_process(name: str, exports: dict[str, Path], batch: int, frames: int, threads: int) -> float:
    """Peak resident memory (MiB) of building or loading `name` and running one batch, above the process's memory
    once torch, transformers and ONNX Runtime are imported. Runs in a fresh (spawned) process."""
    import onnxruntime  # noqa: F401  (imported before the baseline, as torch is)

    torch.set_num_threads(threads)
    inputs = 0.5 * torch.randn(batch, frames, 128, generator=torch.Generator().manual_seed(0))

    def load_and_run():
        model = build(name, exports, frames)
        with torch.inference_mode():
            model(inputs)

    return peak_memory_mib(load_and_run)


def fresh_process_peak(*args) -> float:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as executor:
        return executor.submit(peak_in_fresh_process, *args).result()


def speed_and_memory(bench, exports: dict[str, Path]) -> list[dict]:
    import run

    rows = []
    for seconds, batch in CELLS:
        frames = run.num_frames(seconds)
        inputs = bench.inputs(batch, frames)
        models = {name: build(name, exports, frames) for name in MODELS}
        with torch.inference_mode():
            medians = bench.medians({name: partial(model, inputs) for name, model in models.items()}, repeats=3)
        del models
        for name in MODELS:
            peak = fresh_process_peak(name, exports, batch, frames, torch.get_num_threads())
            rows.append({"seconds": seconds, "batch": batch, "model": name, "time_s": medians[name], "peak_mib": peak,
                         "vs_torch": medians[MODELS[0]] / medians[name], "vs_ast": medians[MODELS[3]] / medians[name]})
        print(f"deployment: {batch} x {seconds} s timed", flush=True)
    return rows


def real_clip_fidelity(classifier: AsdaForAudioClassification, exports: dict[str, Path], workdir: Path) -> dict:
    """Per precision: the largest |logit difference| to torch and the smallest CLS cosine over the two real clips."""
    feature_extractor = AsdaFeatureExtractor()
    waveforms = [load_audio(SHARED_DIR / "data" / f"audioset_clip_{name}_32k.wav") for name in "ab"]
    inputs = feature_extractor(waveforms, sampling_rate=16000, padding="max_length", return_tensors="pt")
    with torch.inference_mode():
        logits = classifier(**inputs).logits
        cls = classifier.asda(**inputs).pooler_output
    results = {"max_abs_logit": float(logits.abs().max())}
    for precision in ("fp32", "int8"):
        folder = export_onnx(classifier.asda, workdir / f"encoder-{precision}", precision_arg(precision))
        encoder = AsdaOnnxModel(folder)
        onnx_cls = encoder(**inputs).pooler_output
        results[precision] = {
            "max_logit_difference": float((AsdaOnnxModel(exports[precision])(**inputs).logits - logits).abs().max()),
            "min_cls_cosine": float(torch.nn.functional.cosine_similarity(onnx_cls, cls).min()),
        }
    return results


def precision_arg(precision: str) -> str | None:
    return None if precision == "fp32" else precision


def demo_agreement(workdir: Path) -> dict:
    """Train the demo's classifier (`examples/quickstart.py`), then classify its held-out clips with each backend."""
    output_dir = workdir / "quickstart"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    subprocess.run([sys.executable, str(REPO_ROOT / "examples/quickstart.py"), "--output_dir", str(output_dir)],
                   check=True, env=environment, capture_output=True)  # fmt: skip
    finetuned = str(output_dir / "finetuned")
    feature_extractor = AsdaFeatureExtractor.from_pretrained(finetuned)
    with open(output_dir / "data" / "eval.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    waveforms = [load_audio(output_dir / "data" / row["audio"], feature_extractor.sampling_rate) for row in rows]
    inputs = feature_extractor(waveforms, sampling_rate=feature_extractor.sampling_rate, padding="max_length",
                               return_tensors="pt")  # fmt: skip
    torch_model = load_classifier(finetuned).eval()
    with torch.inference_mode():
        predictions = {"torch": torch_model(**inputs).logits.argmax(-1)}
    for backend in ("onnx", "onnx-int8"):
        model = load_deployed_model(finetuned, backend, partial(load_classifier, finetuned), "audio-classification")
        predictions[backend] = model(**inputs).logits.argmax(-1)
    labels = torch.tensor([torch_model.config.label2id[row["label"]] for row in rows])
    return {
        "clips": len(rows),
        "accuracy": {name: float((predicted == labels).float().mean()) for name, predicted in predictions.items()},
        "agreement": {backend: float((predictions[backend] == predictions["torch"]).float().mean())
                      for backend in ("onnx", "onnx-int8")},  # fmt: skip
    }


def measure(bench) -> dict:
    with tempfile.TemporaryDirectory() as workdir:
        workdir = Path(workdir)
        classifier = seeded_classifier()
        exports = {precision: export_onnx(classifier, workdir / f"classifier-{precision}", precision_arg(precision))
                   for precision in ("fp32", "int8")}  # fmt: skip
        sizes = {precision: (folder / "model.onnx").stat().st_size / 2**20 for precision, folder in exports.items()}
        graph = onnx.load(exports["fp32"] / "model.onnx", load_external_data=False)
        opset = next(entry.version for entry in graph.opset_import if not entry.domain)
        print("deployment: exported", flush=True)
        rows = speed_and_memory(bench, exports)
        fidelity = real_clip_fidelity(classifier, exports, workdir)
        print("deployment: fidelity measured", flush=True)
        agreement = demo_agreement(workdir)
    return {"rows": rows, "sizes": sizes, "opset": opset, "fidelity": fidelity, "agreement": agreement}


def format_section(results: dict) -> str:
    sizes, fidelity, agreement = results["sizes"], results["fidelity"], results["agreement"]
    lines = [
        TITLE,
        "",
        "`PYTHONPATH=. python benchmarks/run.py --sections deployment` (this section alone; the machine and torch "
        "threads as above, ONNX Runtime with as many intra-op threads). ASDA-base classifier (527 labels, seeded "
        "random weights) exported by `modeling_asda.deployment.export_onnx` "
        f"(opset {results['opset']}, eager attention, dynamic batch and time): `model.onnx` of {sizes['fp32']:.0f} MiB "
        f"in fp32, {sizes['int8']:.0f} MiB with int8 weights (ONNX Runtime dynamic quantisation of every MatMul/Gemm: "
        "int8 weights, activations quantised per call). Peak memory: rise of the peak resident set while a fresh "
        "process builds or loads the model and runs one batch (weights included), above the process with torch, "
        "transformers and ONNX Runtime imported. Times are medians of 3 calls taken in turns between the four models: "
        "compare within this table, not with other sections' absolute times.",
        "",
        "| clip | batch | model | time (s) | clips/s | vs ASDA torch fp32 | vs AST-base | peak memory (MiB) |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['seconds']} s | {row['batch']} | {row['model']} | {row['time_s']:.3f} | "
            f"{row['batch'] / row['time_s']:.2f} | {row['vs_torch']:.2f}x | {row['vs_ast']:.2f}x | "
            f"{row['peak_mib']:.0f} |"
        )
    int8_at_8 = next(row for row in results["rows"] if row["batch"] == 8 and row["model"] == MODELS[2])
    met = "met" if int8_at_8["vs_ast"] >= SPEEDUP_TARGET else "not met"
    lines += [
        "",
        f"Target: ONNX Runtime int8 at least {SPEEDUP_TARGET:.0f}x AST-base at 8 x 10 s: "
        f"**{int8_at_8['vs_ast']:.2f}x, {met}**.",
        "",
        "Fidelity on the two real 10-s clips of `../shared/data` (AudioSet features, 1024 frames), against torch fp32. "
        f"Logits of the random-weight classifier reach {fidelity['max_abs_logit']:.2f} in absolute value; the CLS "
        "embedding is that of its encoder exported alone (`AsdaModel`, `pooler_output`).",
        "",
        "| backend | largest logit difference | smallest CLS cosine |",
        "|---|---:|---:|",
    ]
    for precision in ("fp32", "int8"):
        values = fidelity[precision]
        lines.append(
            f"| ONNX Runtime {precision} | {values['max_logit_difference']:.1e} | {values['min_cls_cosine']:.6f} |"
        )
    accuracy = agreement["accuracy"]
    lines += [
        "",
        f"Trained model: the demo's (`examples/quickstart.py`, tiny ASDA, 4 blocks, 3 tone classes) on its "
        f"{agreement['clips']} held-out clips. Top-1 agreement with torch fp32: ONNX Runtime fp32 "
        f"**{100 * agreement['agreement']['onnx']:.0f} %**, int8 **{100 * agreement['agreement']['onnx-int8']:.0f} %** "
        f"(accuracy: torch {100 * accuracy['torch']:.0f} %, ONNX fp32 {100 * accuracy['onnx']:.0f} %, ONNX int8 "
        f"{100 * accuracy['onnx-int8']:.0f} %).",
    ]
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str):
    """Put `section` into the report at `path`: in place of an earlier version, else before "## Goals", else at
    the end."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if TITLE in text:
        before, rest = text.split(TITLE, 1)
        after = rest[rest.index("\n## ") + 1 :] if "\n## " in rest else ""
        text = before + section + ("\n" + after if after else "")
    elif "\n## Goals\n" in text:
        before, after = text.split("\n## Goals\n", 1)
        text = before + "\n" + section + "\n## Goals\n" + after
    else:
        text = text + ("\n" if text else "") + section
    path.write_text(text, encoding="utf-8")
