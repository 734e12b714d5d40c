"""Feature-extraction speed: `AsdaFeatureExtractor` against transformers' `ASTFeatureExtractor` (numpy path).

    PYTHONPATH=. python benchmarks/feature_extraction.py [--repeats 11]

Both turn the same 8 x 10 s clips at 16 kHz into (8, 1024, 128) Kaldi log-mel batches in one process; the table
gives median wall times and the ratio, with 1 torch thread and with all of them, and goes to
`benchmarks/results/feature_extraction.md`. A third row adds ASDA's resampling: the same batch handed over at 32 kHz.
"""

import argparse
import os
import platform
from pathlib import Path
from unittest import mock

import numpy as np
import torch
import transformers
from transformers import ASTFeatureExtractor
from transformers.models.audio_spectrogram_transformer import feature_extraction_audio_spectrogram_transformer

from modeling_asda import AsdaFeatureExtractor
from timing import interleaved_medians


RESULTS = Path(__file__).resolve().parent / "results" / "feature_extraction.md"


def _clips(num_clips: int, seconds: float, sampling_rate: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    return [rng.normal(0.0, 0.1, int(seconds * sampling_rate)).astype(np.float32) for _ in range(num_clips)]


def measure(repeats: int = 11, num_clips: int = 8, seconds: float = 10.0, threads: int | None = None) -> dict:
    """Median seconds per batch for each extractor, the speed-up over AST, and how far their features differ.

    `threads` sets torch's intra-op threads for the run (default: leave them); numpy's FFT in AST is single-threaded.
    """
    previous_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        return _measure(repeats, num_clips, seconds)
    finally:
        torch.set_num_threads(previous_threads)


def _measure(repeats: int, num_clips: int, seconds: float) -> dict:
    clips_16k = _clips(num_clips, seconds, 16000)
    clips_32k = _clips(num_clips, seconds, 32000)
    asda = AsdaFeatureExtractor()
    # AST takes torchaudio when it is importable; the numpy path (transformers.audio_utils) is the one compared.
    with mock.patch.object(feature_extraction_audio_spectrogram_transformer, "is_speech_available", return_value=False):
        ast = ASTFeatureExtractor()
        medians = interleaved_medians(
            {
                "ast_numpy_s": lambda: ast(clips_16k, sampling_rate=16000, return_tensors="pt"),
                "asda_s": lambda: asda(clips_16k, sampling_rate=16000, return_tensors="pt"),
                "asda_from_32k_s": lambda: asda(clips_32k, sampling_rate=32000, return_tensors="pt"),
            },
            repeats,
            warmup=0,
            untimed_calls=1,  # AST's numpy arrays slow ASDA's next call about 2x
        )
        ast_features = ast(clips_16k, sampling_rate=16000, return_tensors="pt")["input_values"]
    asda_features = asda(clips_16k, sampling_rate=16000, return_tensors="pt")["input_values"]
    return {
        "num_clips": num_clips,
        "seconds_per_clip": seconds,
        "repeats": repeats,
        "torch_threads": torch.get_num_threads(),
        **medians,
        "speedup_vs_ast": medians["ast_numpy_s"] / medians["asda_s"],
        "max_abs_difference": float((asda_features - ast_features).abs().max()),
    }


def format_table(results: list[dict]) -> str:
    first = results[0]
    batch = f"{first['num_clips']} x {first['seconds_per_clip']:g} s"
    lines = [
        f"| extractor ({batch}, median of {first['repeats']}) | torch threads | batch (ms) | per clip (ms) | vs AST |",
        "|---|---:|---:|---:|---:|",
    ]
    for result in results:
        rows = [
            ("transformers ASTFeatureExtractor (numpy path), 16 kHz", result["ast_numpy_s"]),
            ("AsdaFeatureExtractor, 16 kHz", result["asda_s"]),
            ("AsdaFeatureExtractor, 32 kHz input (resampled)", result["asda_from_32k_s"]),
        ]
        for name, seconds in rows:
            lines.append(
                f"| {name} | {result['torch_threads']} | {1000 * seconds:.1f} | "
                f"{1000 * seconds / result['num_clips']:.2f} | {result['ast_numpy_s'] / seconds:.1f}x |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=11)
    args = parser.parse_args()
    results = [measure(repeats=args.repeats, threads=threads) for threads in sorted({1, torch.get_num_threads()})]
    table = format_table(results)
    speedups = ", ".join(f"{r['speedup_vs_ast']:.1f}x with torch threads = {r['torch_threads']}" for r in results)
    environment = (
        f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}, transformers "
        f"{transformers.__version__}, numpy {np.__version__}"
    )
    report = (
        "# Feature extraction: AsdaFeatureExtractor vs ASTFeatureExtractor\n\n"
        f"{table}\n\n"
        f"Speed-up over AST: **{speedups}**. Largest difference between the two outputs (normalised features): "
        f"{results[0]['max_abs_difference']:.2e}.\n\n"
        f"Environment: {environment}. Generated by `benchmarks/feature_extraction.py`; on a shared machine the times "
        "move between runs with the other load, so compare the ratios within one run.\n"
    )
    print(report)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
