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
"""CPU deployment: ASDA models exported to ONNX and run by ONNX Runtime, with fp32 or int8 weights.

    from modeling_asda import AsdaFeatureExtractor, load_audio
    from modeling_asda.deployment import AsdaOnnxModel, export_onnx

    export_onnx("outputs/quickstart/finetuned", "asda-onnx-int8", quantize="int8")  # once
    model = AsdaOnnxModel.from_pretrained("asda-onnx-int8")
    feature_extractor = AsdaFeatureExtractor.from_pretrained("asda-onnx-int8")
    inputs = feature_extractor(load_audio("clip.wav", 16000), sampling_rate=16000, return_tensors="pt")
    logits = model(**inputs).logits  # as `AsdaForAudioClassification(**inputs).logits`, as a torch tensor

From the command line: `asda-export-onnx --model MODEL --output_dir FOLDER [--quantize int8]`, or `--backend onnx` /
`--backend onnx-int8` of `asda-classify` and `asda-extract-embeddings`, which export once into `MODEL/onnx/`
(`HF_HOME/asda-onnx/` for a Hub id), reuse that export while the weight files stay the same, and also take an exported
folder as `--model`.

An exported folder holds `model.onnx` (dynamic batch and time axes, up to the model's `max_frames`), `config.json`,
`preprocessor_config.json` and `deployment.json` (what the graph computes). A classifier's graph gives `logits`; an
encoder's (`AsdaModel`) gives `last_hidden_state` and `pooler_output` after its `len(model.layers)` blocks. Both take
`input_values (batch, frames, mel)` and a frame-level `attention_mask (batch, frames)`. `quantize="int8"` stores the
weights of every matrix product as int8 and quantises activations on the fly (ONNX Runtime's dynamic quantisation);
speed and fidelity against fp32 and AST-base are in `benchmarks/RESULTS.md`, section 7. ONNX Runtime was chosen over
torchao's int8 dynamic quantisation, which ran no faster than fp32 eager on this project's CPU.
"""

import json
import logging
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification, HfArgumentParser, PreTrainedModel
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import CONFIG_NAME, cached_file

from .feature_extraction_asda import AsdaFeatureExtractor
from .modeling_asda import AsdaForAudioClassification, AsdaModel, AsdaModelOutput
from .tools.cli import UsageError, check_arguments, load_feature_extractor, parse_arguments


logger = logging.getLogger(__name__)

BACKENDS = ("torch", "onnx", "onnx-int8")
PRECISIONS = {"onnx": "fp32", "onnx-int8": "int8"}
ONNX_FILE = "model.onnx"
DEPLOYMENT_FILE = "deployment.json"
TASKS = {"audio-classification": ("logits",), "feature-extraction": ("last_hidden_state", "pooler_output")}
INPUT_NAMES = ["input_values", "attention_mask"]


def require_onnxruntime():
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (the exporter's graph builder)
    except ImportError as error:
        raise ImportError(
            f"The ONNX backends need onnx, onnxscript and onnxruntime ({error}): pip install 'modeling-asda[deploy]'."
        ) from error


class _GraphOutputs(torch.nn.Module):
    """The model's forward with a frame mask, returning the task's output tensors as a tuple: what gets exported."""

    def __init__(self, model: PreTrainedModel, output_names: tuple[str, ...]):
        super().__init__()
        self.model, self.output_names = model, output_names

    def forward(self, input_values: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(input_values, attention_mask=attention_mask)
        return tuple(getattr(outputs, name) for name in self.output_names)


def task_of(model: PreTrainedModel) -> str:
    if isinstance(model, AsdaForAudioClassification):
        return "audio-classification"
    if isinstance(model, AsdaModel):
        return "feature-extraction"
    raise TypeError(f"Only AsdaForAudioClassification and AsdaModel export to ONNX, got {type(model).__name__}.")


def export_onnx(
    model: PreTrainedModel | str,
    output_dir: str | os.PathLike,
    quantize: str | None = None,
    feature_extractor: AsdaFeatureExtractor | None = None,
    task: str = "audio-classification",
    source: list | None = None,
) -> Path:
    """Export an ASDA classifier or encoder (an instance, or a folder / Hub id loaded for `task`) to `output_dir`.

    `quantize="int8"` stores int8 weights for every MatMul/Gemm (ONNX Runtime dynamic quantisation, activations
    quantised per call). An encoder is exported with the blocks it has: cut `model.layers` to export an earlier layer's
    output. `source` is recorded in `deployment.json` (the CLIs' cache compares it with the weights on disk). The
    folder is written under a temporary name and renamed when complete; it replaces an earlier export, never a folder
    holding anything else.
    """
    require_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if quantize not in (None, "int8"):
        raise ValueError(f"quantize must be None or 'int8', got {quantize!r}.")
    output_dir = Path(output_dir)
    if output_dir.is_dir() and any(output_dir.iterdir()) and not (output_dir / DEPLOYMENT_FILE).is_file():
        raise FileExistsError(f"{output_dir} holds files that are not an ONNX export: choose a new or empty folder.")
    if isinstance(model, (str, os.PathLike)):
        feature_extractor = feature_extractor or load_feature_extractor(str(model))
        auto_class = AutoModelForAudioClassification if task == "audio-classification" else AutoModel
        model = auto_class.from_pretrained(model)
    task = task_of(model)
    if model.dtype != torch.float32 or model.device.type != "cpu":
        raise ValueError(f"Export a float32 model on the CPU, got {model.dtype} on {model.device}.")
    config = model.config
    output_names = TASKS[task]
    batch = torch.export.Dim("batch")
    frames = config.patch_size * torch.export.Dim("time_patches", min=1, max=config.max_time_patches)
    example_frames = config.patch_size * min(4, config.max_time_patches)
    example = (torch.zeros(2, example_frames, config.num_mel_bins), torch.ones(2, example_frames, dtype=torch.long))

    output_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=output_dir.parent, prefix=f".{output_dir.name}."))
    try:
        exported = staging / ONNX_FILE
        # Eager attention exports as plain MatMul/Softmax, which ONNX Runtime runs faster than the graph of SDPA.
        attn_implementation = config._attn_implementation
        model.set_attn_implementation("eager")
        try:
            # The exporter's warnings (unused axis names, pytree deprecations) say nothing about the model.
            with torch.no_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore", (UserWarning, FutureWarning))
                torch.onnx.export(
                    _GraphOutputs(model, output_names).eval(),
                    example,
                    exported,
                    input_names=INPUT_NAMES,
                    output_names=list(output_names),
                    dynamic_shapes={"input_values": {0: batch, 1: frames}, "attention_mask": {0: batch, 1: frames}},
                    dynamo=True,
                    external_data=False,
                    verbose=False,
                )
        finally:
            model.set_attn_implementation(attn_implementation)
        if quantize == "int8":
            weights = staging / "fp32.onnx"
            exported.rename(weights)
            quantize_dynamic(weights, exported, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul", "Gemm"])
            weights.unlink()
        config.save_pretrained(staging)
        if feature_extractor is not None:
            feature_extractor.save_pretrained(staging)
        deployment = {
            "format": "onnx",
            "task": task,
            "precision": quantize or "fp32",
            "num_layers": len(model.asda.layers if task == "audio-classification" else model.layers),
            "inputs": INPUT_NAMES,
            "outputs": list(output_names),
            "source": source,
        }
        (staging / DEPLOYMENT_FILE).write_text(json.dumps(deployment, indent=2), encoding="utf-8")
        if output_dir.exists():
            shutil.rmtree(output_dir)
        staging.rename(output_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output_dir


class AsdaOnnxModel:
    """An exported ASDA graph run by ONNX Runtime on the CPU, called like the torch model it came from.

    `model(input_values, attention_mask=None)` takes torch tensors or numpy arrays of the torch model's shapes (the
    mask per frame) and returns the same output class with torch tensors: `SequenceClassifierOutput.logits` for a
    classifier, `AsdaModelOutput.last_hidden_state` / `.pooler_output` (the CLS token) for an encoder. `config`,
    `device`, `dtype`, `to("cpu")` and `eval()` are there so that code written for the torch model runs unchanged.
    """

    def __init__(self, folder: str | os.PathLike, num_threads: int | None = None):
        require_onnxruntime()
        import onnxruntime

        folder = Path(folder)
        if not (folder / DEPLOYMENT_FILE).is_file():
            raise FileNotFoundError(f"{folder} is not an exported ASDA folder: it has no {DEPLOYMENT_FILE}.")
        self.folder = folder
        self.deployment = json.loads((folder / DEPLOYMENT_FILE).read_text(encoding="utf-8"))
        self.config = AutoConfig.from_pretrained(folder)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = num_threads or torch.get_num_threads()
        self.session = onnxruntime.InferenceSession(
            str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"]
        )
        self.device, self.dtype = torch.device("cpu"), torch.float32

    @classmethod
    def from_pretrained(cls, folder: str | os.PathLike, **kwargs) -> "AsdaOnnxModel":
        return cls(folder, **kwargs)

    @property
    def task(self) -> str:
        return self.deployment["task"]

    @property
    def precision(self) -> str:
        return self.deployment["precision"]

    def to(self, device: str | torch.device = "cpu", dtype: torch.dtype | None = None) -> "AsdaOnnxModel":
        if torch.device(device).type != "cpu" or dtype not in (None, torch.float32):
            raise ValueError(f"The ONNX backends run in float32 on the CPU, not {dtype or 'float32'} on {device}.")
        return self

    def eval(self) -> "AsdaOnnxModel":
        return self

    def __call__(self, input_values, attention_mask=None) -> SequenceClassifierOutput | AsdaModelOutput:
        input_values = torch.as_tensor(input_values, dtype=torch.float32)
        AsdaModel._check_input_values(self, input_values)  # the torch model's shape checks, on the same config
        batch_size, num_frames, _ = input_values.shape
        if attention_mask is None:
            attention_mask = torch.ones(batch_size, num_frames, dtype=torch.long)
        attention_mask = torch.as_tensor(attention_mask, dtype=torch.long)
        if attention_mask.shape != (batch_size, num_frames):
            raise ValueError(
                f"The ONNX graph takes a frame mask of shape (batch_size, num_frames) = {(batch_size, num_frames)}, "
                f"got {tuple(attention_mask.shape)}."
            )
        feed = {"input_values": input_values.numpy(), "attention_mask": attention_mask.numpy()}
        outputs = dict(zip(self.deployment["outputs"], map(torch.from_numpy, self.session.run(None, feed))))
        output_class = SequenceClassifierOutput if self.task == "audio-classification" else AsdaModelOutput
        return output_class(**outputs)


def check_backend_device(backend: str, device: str | None):
    """The CLIs' check of `--device` against `--backend`: the ONNX backends run on the CPU."""
    if backend != "torch" and device not in (None, "cpu"):
        raise UsageError(f"argument --device: the {backend} backend runs on the CPU, got {device}")


def weights_fingerprint(folder: Path) -> list:
    """Name, size and modification time of the weight files of a model folder: what a cached export was made from."""
    paths = [*folder.glob("*.safetensors"), *folder.glob("*.bin")]
    return sorted([path.name, path.stat().st_size, path.stat().st_mtime_ns] for path in paths)


def cache_dir(model_name_or_path: str, variant: str) -> tuple[Path, Path]:
    """(where the export goes, the folder holding the weights): `MODEL/onnx/<variant>` for a model folder,
    `HF_HOME/asda-onnx/<id>/<variant>` for a Hub id (whose weights are in its downloaded snapshot)."""
    if os.path.isdir(model_name_or_path):
        return Path(model_name_or_path) / "onnx" / variant, Path(model_name_or_path)
    from huggingface_hub.constants import HF_HOME

    snapshot = Path(cached_file(model_name_or_path, CONFIG_NAME)).parent
    return Path(HF_HOME) / "asda-onnx" / model_name_or_path.replace("/", "--") / variant, snapshot


def load_deployed_model(
    model_name_or_path: str,
    backend: str,
    load_torch_model: Callable[[], PreTrainedModel],
    task: str,
    num_layers: int | None = None,
    feature_extractor: AsdaFeatureExtractor | None = None,
) -> AsdaOnnxModel:
    """The model for an ONNX `backend` (`onnx` or `onnx-int8`) computing `task` (an encoder's with `num_layers` blocks):
    `model_name_or_path` itself when it is an exported folder, else its export cached in `cache_dir` (made from
    `load_torch_model()` when missing or older than the weights). A `UsageError` names what an exported folder lacks."""
    precision = PRECISIONS[backend]
    if (Path(model_name_or_path) / DEPLOYMENT_FILE).is_file():
        model = AsdaOnnxModel(model_name_or_path)
        exported = model.deployment
        if exported["task"] != task:
            raise UsageError(
                f"argument --model: {model_name_or_path} is an ONNX export for {exported['task']}, not for {task}"
            )
        if exported["precision"] != precision:
            backend_of_export = next(name for name, value in PRECISIONS.items() if value == exported["precision"])
            raise UsageError(
                f"argument --backend: {model_name_or_path} is an export with {exported['precision']} weights: use "
                f"--backend {backend_of_export}"
            )
        if num_layers is not None and exported["num_layers"] != num_layers:
            raise UsageError(
                f"argument --layer: {model_name_or_path} is an export of the output of block {exported['num_layers']}, "
                f"not of block {num_layers}"
            )
        return model
    require_onnxruntime()
    variant = "classifier" if task == "audio-classification" else f"encoder-{num_layers}-layers"
    folder, model_folder = cache_dir(model_name_or_path, f"{variant}-{precision}")
    if (folder / DEPLOYMENT_FILE).is_file():
        model = AsdaOnnxModel(folder)
        if model.deployment["source"] == weights_fingerprint(model_folder):
            return model
    torch_model = load_torch_model()
    logger.warning("Exporting %s to ONNX (%s weights) in %s, once.", model_name_or_path, precision, folder)
    source = weights_fingerprint(model_folder)
    export_onnx(torch_model, folder, None if precision == "fp32" else precision, feature_extractor, source=source)
    return AsdaOnnxModel(folder)


@dataclass
class ExportArguments:
    model: str = field(metadata={"help": "Fine-tuned ASDA classifier, or any ASDA checkpoint for feature-extraction."})
    output_dir: str = field(metadata={"help": "Folder to write model.onnx, its config and feature extractor to."})
    task: str = field(
        default="audio-classification",
        metadata={"help": "audio-classification (logits) or feature-extraction (last hidden state and CLS token)."},
    )
    quantize: str = field(default="none", metadata={"help": "none (fp32 weights) or int8."})
    trust_remote_code: bool = field(default=False, metadata={"help": "Allow model code from the Hub."})

    def __post_init__(self):
        check_arguments(self, choices={"task": tuple(TASKS), "quantize": ("none", "int8")})


def main(argv: list[str] | None = None) -> int:
    """`asda-export-onnx --model MODEL --output_dir FOLDER [--quantize int8] [--task feature-extraction]`."""
    from .tools.classify import load_classifier

    parser = HfArgumentParser(ExportArguments, description=__doc__.split("\n\n")[0])
    (args,) = parse_arguments(parser, argv)
    logging.basicConfig(format="%(levelname)s: %(message)s", level=logging.WARNING)
    hub_kwargs = {"trust_remote_code": args.trust_remote_code}
    try:
        require_onnxruntime()
        if args.task == "audio-classification":
            model = load_classifier(args.model, **hub_kwargs)
        else:
            model = AutoModel.from_pretrained(args.model, **hub_kwargs)
    except (UsageError, ImportError) as error:
        parser.error(str(error))
    feature_extractor = load_feature_extractor(args.model, **hub_kwargs)
    quantize = None if args.quantize == "none" else args.quantize
    try:
        folder = export_onnx(model.float(), args.output_dir, quantize, feature_extractor)
    except FileExistsError as error:
        parser.error(f"argument --output_dir: {error}")
    print(f"Exported to {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
