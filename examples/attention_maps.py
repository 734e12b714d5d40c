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
"""Where does the CLS token look? Differential (ASDA) vs standard (EAT) attention on one clip.

    python examples/attention_maps.py clip.wav --models asda-small eat-small --output attention.png

Renders the clip's log-mel spectrogram and, for the chosen layers, every model's CLS-to-patch attention laid over the
same time-frequency grid (mean over the chosen heads), plus the normalised entropy of each layer; writes the per-layer
statistics to `attention.json` and `attention.md` beside the PNG.

The statistics, per layer and head, of the CLS row `a` over the patch keys (the CLS key, an attention sink, left out):
    `p = max(a, 0) / sum(max(a, 0))`: the positive part, renormalised. A differential map
        `softmax1 - lambda * softmax2` has negative entries and rows summing to `1 - lambda`; for a standard map `p = a`.
    entropy: `-sum(p log p) / log(num_patches)`, 1 for uniform attention, 0 for a single patch.
    padding_mass: `sum(p)` over padding patches (all 16 frames past the clip's end; the clip is padded to the
        extractor's `max_length` as in the official recipe, which attends to padding).
    low_energy_mass: `sum(p)` over low-energy ("silent") patches: real patches whose power, `10 log10` of the mean mel
        power of their 16 x 16 cells, lies more than `--low_energy_db` below the loudest patch of the clip.
    negative_share: `sum(max(-a, 0)) / sum(|a|)`, the share of the map that subtracts (0 for standard attention).
The heads' values are averaged; `padding_share` and `low_energy_share` are those patches' share of all patches, the
masses that uniform attention would give.
"""

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib


matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import Normalize, TwoSlopeNorm  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
from transformers import AutoModel, HfArgumentParser  # noqa: E402

from modeling_asda import load_audio  # noqa: E402
from modeling_asda.tools.cli import load_feature_extractor  # noqa: E402


STATISTICS = ("entropy", "padding_mass", "low_energy_mass", "negative_share")


@dataclass
class AttentionMapArguments:
    models: list[str] = field(metadata={"help": "Model folders or Hub ids, e.g. a differential and a standard one."})
    output: str = field(default="attention.png", metadata={"help": "PNG path; the .json and .md go beside it."})
    layers: list[int] | None = field(
        default=None, metadata={"help": "Layers to draw (0 = first block). Default: first, middle and last."}
    )
    heads: list[int] | None = field(default=None, metadata={"help": "Heads to average. Default: all of them."})
    max_length: int | None = field(
        default=None, metadata={"help": "Pad/cut the clip to this many frames. Default: the model's clip length."}
    )
    low_energy_db: float = field(default=30.0, metadata={"help": "Low-energy patches: this far below the loudest."})
    feature_preset: str | None = field(default=None, metadata={"help": "Instead of each model's own extractor."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})


@dataclass
class ModelAttention:
    name: str
    attention_type: str
    log_mel: np.ndarray  # (frames, mel bins), natural log of mel power, padding included
    num_frames: int  # real frames
    cls_attention: np.ndarray  # (layers, heads, time patches, frequency patches)
    padding: np.ndarray  # (time patches, frequency patches) bool
    low_energy: np.ndarray  # (time patches, frequency patches) bool


def patch_power_db(log_mel: np.ndarray, patch_size: int) -> np.ndarray:
    """`(frames, mel)` natural-log mel power -> `(time patches, frequency patches)` patch power in dB."""
    num_time, num_frequency = log_mel.shape[0] // patch_size, log_mel.shape[1] // patch_size
    power = np.exp(log_mel.astype(np.float64)).reshape(num_time, patch_size, num_frequency, patch_size)
    return 10 * np.log10(power.mean(axis=(1, 3)))


def attention_statistics(cls_rows: np.ndarray, padding: np.ndarray, low_energy: np.ndarray) -> dict[str, np.ndarray]:
    """`(heads, patches)` CLS rows over the patch keys -> the module docstring's statistics, one value per head."""
    positive = np.clip(cls_rows, 0, None)
    p = positive / positive.sum(axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(p > 0, p * np.log(p), 0.0)
    return {
        "entropy": -plogp.sum(axis=-1) / math.log(cls_rows.shape[-1]),
        "padding_mass": p[:, padding].sum(axis=-1),
        "low_energy_mass": p[:, low_energy].sum(axis=-1),
        "negative_share": np.clip(-cls_rows, 0, None).sum(axis=-1) / np.abs(cls_rows).sum(axis=-1),
    }


@torch.inference_mode()
def model_attention(name: str, audio: str, args: AttentionMapArguments) -> ModelAttention:
    hub_kwargs = {"trust_remote_code": args.trust_remote_code}
    feature_extractor = load_feature_extractor(name, args.feature_preset, **hub_kwargs)
    model = AutoModel.from_pretrained(name, attn_implementation="eager", **hub_kwargs).eval()
    config = model.config
    waveform = load_audio(audio, feature_extractor.sampling_rate)
    inputs = feature_extractor(
        waveform,
        sampling_rate=feature_extractor.sampling_rate,
        max_length=args.max_length or feature_extractor.max_length,
        return_attention_mask=True,
        return_tensors="pt",
    )
    attentions = model(inputs["input_values"], output_attentions=True).attentions
    num_time_patches = inputs["input_values"].shape[1] // config.patch_size
    grid = (num_time_patches, config.num_frequency_patches)
    cls_attention = torch.stack([layer[0, :, 0, 1:] for layer in attentions]).reshape(len(attentions), -1, *grid)

    input_values = inputs["input_values"][0].double().numpy()
    log_mel = input_values * 2 * feature_extractor.std + feature_extractor.mean
    num_frames = int(inputs["attention_mask"].sum())
    padding = np.zeros(grid, dtype=bool)
    padding[math.ceil(num_frames / config.patch_size) :] = True
    power_db = patch_power_db(log_mel, config.patch_size)
    low_energy = ~padding & (power_db < power_db[~padding].max() - args.low_energy_db)
    return ModelAttention(
        Path(name).name, config.attention_type, log_mel, num_frames, cls_attention.numpy(), padding, low_energy
    )


def layer_statistics(attention: ModelAttention, heads: list[int] | None) -> list[dict]:
    rows = []
    for layer, maps in enumerate(attention.cls_attention):
        maps = maps if heads is None else maps[heads]
        per_head = attention_statistics(
            maps.reshape(len(maps), -1), attention.padding.reshape(-1), attention.low_energy.reshape(-1)
        )
        rows.append({"layer": layer, **{name: float(values.mean()) for name, values in per_head.items()}})
        rows[-1]["per_head"] = {name: values.tolist() for name, values in per_head.items()}
    return rows


def render(attentions: list[ModelAttention], summary: list[dict], layers: list[int], heads, path: Path):
    """Spectrogram on top, one row per layer, one column per model; the per-layer statistics at the bottom."""
    frame_shift = 0.01
    columns = max(len(attentions), 2)
    figure, axes = plt.subplots(
        2 + len(layers), columns, figsize=(5.5 * columns, 2.3 * (2 + len(layers))), squeeze=False, layout="constrained"
    )
    head_text = "mean of all heads" if heads is None else f"mean of heads {heads}"
    for column, attention in enumerate(attentions):
        extent = (0, attention.log_mel.shape[0] * frame_shift, 0, attention.log_mel.shape[1])
        axis = axes[0, column]
        image = axis.imshow(
            10 / math.log(10) * attention.log_mel.T, origin="lower", aspect="auto", extent=extent, cmap="magma"
        )
        axis.axvline(attention.num_frames * frame_shift, color="white", linestyle="--", linewidth=1)
        axis.set(title=f"{attention.name} ({attention.attention_type}): log-mel dB, -- clip end", ylabel="mel bin")
        figure.colorbar(image, ax=axis)
        for row, layer in enumerate(layers, start=1):
            maps = attention.cls_attention[layer]
            grid = (maps if heads is None else maps[heads]).mean(axis=0)
            # Negative weights (differential maps) in blue, white at 0, positive in red; a map without negative
            # weights spans its own range in reds, so that its variation stays visible.
            if grid.min() < 0:
                colours = {
                    "cmap": "RdBu_r",
                    "norm": TwoSlopeNorm(vcenter=0.0, vmin=grid.min(), vmax=max(grid.max(), 1e-12)),
                }
            else:
                colours = {"cmap": "Reds", "norm": Normalize(vmin=grid.min(), vmax=grid.max())}
            axis = axes[row, column]
            image = axis.imshow(grid.T, origin="lower", aspect="auto", extent=extent, **colours)
            axis.set(title=f"layer {layer}: CLS attention ({head_text})", ylabel="mel bin")
            figure.colorbar(image, ax=axis)
        axes[-2, column].set_xlabel("time (s)")
    for column, (statistic, label) in enumerate(
        [("entropy", "normalised entropy"), ("low_energy_mass", "low-energy mass")]
    ):
        axis = axes[-1, column]
        for model_summary in summary:
            values = [row[statistic] for row in model_summary["layers"]]
            axis.plot(values, marker="o", label=f"{model_summary['name']} ({model_summary['attention_type']})")
        if statistic == "low_energy_mass":
            axis.axhline(summary[0]["low_energy_share"], color="grey", linestyle=":", label="uniform attention")
        axis.set(xlabel="layer", ylabel=label, title=f"CLS attention: {label} per layer")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.legend(fontsize="small")
    for column in range(len(attentions), columns):
        for row in range(1 + len(layers)):
            axes[row, column].set_axis_off()
    for column in range(2, columns):
        axes[-1, column].set_axis_off()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def markdown_summary(audio: str, summary: list[dict]) -> str:
    lines = [
        f"# CLS attention statistics: `{audio}`",
        "",
        "Definitions: see the docstring of `examples/attention_maps.py` (positive part of each CLS row over the patch "
        "keys, renormalised; heads averaged).",
        "",
        "| model | attention | layer | entropy | padding mass | low-energy mass | negative share |",
        "|---|---|---|---|---|---|---|",
    ]
    for model_summary in summary:
        for row in model_summary["layers"]:
            values = " | ".join(f"{row[name]:.4f}" for name in STATISTICS)
            lines.append(
                f"| {model_summary['name']} | {model_summary['attention_type']} | {row['layer']} | {values} |"
            )
    lines.append("")
    lines += [
        f"- {model_summary['name']}: {model_summary['num_patches']} patches, padding share "
        f"{model_summary['padding_share']:.4f}, low-energy share {model_summary['low_energy_share']:.4f} (the masses "
        "of uniform attention)."
        for model_summary in summary
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = HfArgumentParser(AttentionMapArguments, description=__doc__.split("\n\n")[0])
    parser.add_argument("audio", help="The clip (any file soundfile reads).")
    args, namespace = parser.parse_args_into_dataclasses(argv)
    attentions = [model_attention(name, namespace.audio, args) for name in args.models]
    num_layers = {len(attention.cls_attention) for attention in attentions}
    if len(num_layers) != 1:
        raise ValueError(f"The models have different numbers of layers ({sorted(num_layers)}); compare equal sizes.")
    num_layers = num_layers.pop()
    layers = args.layers if args.layers is not None else sorted({0, num_layers // 2, num_layers - 1})
    if not all(0 <= layer < num_layers for layer in layers):
        raise ValueError(f"--layers must lie in [0, {num_layers - 1}], got {layers}.")

    summary = [
        {
            "name": attention.name,
            "model": name,
            "attention_type": attention.attention_type,
            "num_patches": int(attention.padding.size),
            "padding_share": float(attention.padding.mean()),
            "low_energy_share": float(attention.low_energy.mean()),
            "layers": layer_statistics(attention, args.heads),
        }
        for name, attention in zip(args.models, attentions)
    ]
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    render(attentions, summary, layers, args.heads, output)
    settings = {"audio": namespace.audio, "heads": args.heads, "low_energy_db": args.low_energy_db}
    output.with_suffix(".json").write_text(json.dumps({**settings, "models": summary}, indent=2), encoding="utf-8")
    output.with_suffix(".md").write_text(markdown_summary(namespace.audio, summary), encoding="utf-8")
    return {**settings, "models": summary}


if __name__ == "__main__":
    main(sys.argv[1:])
