"""Convert official fairseq ASDA / EAT checkpoints into Hugging Face folders.

    python -m modeling_asda.convert_checkpoint --checkpoint ASDA_pretrained.pt --output asda-base
    python -m modeling_asda.convert_checkpoint --checkpoint ASDA_AS2M_finetuned.pt --output asda-base-as2m \
        --labels audioset_labels.csv

The checkpoint is the file the official training writes: `torch.save` of a dict whose `cfg["model"]` (the model config)
and `model` (the state dict) are read; everything else in it (optimizer state, metrics, ...) is ignored. It is loaded
with `torch.load(weights_only=True)`, which rebuilds tensors, containers, primitive types and (allowlisted here) numpy
scalars, so neither fairseq nor omegaconf is needed. A file holding any other object is refused unless
`--allow-pickle` is given, which unpickles it and can run arbitrary code.

Every official tensor is either mapped or dropped as listed below; any other key is an error:
- pre-training checkpoint -> `AsdaModel`: the student encoder is mapped; the EMA teacher (`model["_ema"]`, also accepted
  flattened as `_ema.<name>`) and the CNN decoder (`modality_encoders.IMAGE.decoder.*`) are dropped;
- pre-training checkpoint with `--keep-pretraining-modules` -> `AsdaForPreTraining`: student, teacher and decoder
  are mapped;
- fine-tuned checkpoint -> `AsdaForAudioClassification`: the encoder (`model.*`), `fc_norm` and `head` are mapped.
ASDA blocks (differential attention: `attn.qk`, `attn.v`, `attn.norm`) and EAT blocks (`attn.qkv`) are told apart by
their keys.

A classifier keeps the objective its head was trained with: heads trained with binary cross-entropy (AudioSet, and
SPC-2 whose recipe trains with mixup) become `problem_type="multi_label_classification"`, so the audio-classification
pipeline gives sigmoid scores, each class scored on its own; heads trained with softmax cross-entropy (ESC-50) become
single-label, with softmax scores. The official SPC-2 and ESC-50 evaluations count the argmax of the logits as the
prediction (accuracy): the top label is the same under either score.
"""

import argparse
import logging
import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..configuration_asda import AsdaConfig
from ..data.labels import LabelVocabulary
from .model_card import write_model_card


try:
    from numpy._core.multiarray import scalar as numpy_scalar  # numpy >= 2
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import scalar as numpy_scalar

logger = logging.getLogger(__name__)

# Official encoder keys (relative to the encoder's prefix) -> Hugging Face keys (relative to `AsdaModel`).
ENCODER_KEY_MAP = [
    (r"modality_encoders\.IMAGE\.local_encoder\.proj\.(weight|bias)", r"embeddings.patch_embeddings.projection.\1"),
    (r"modality_encoders\.IMAGE\.extra_tokens", r"embeddings.cls_token"),
    (r"modality_encoders\.IMAGE\.fixed_positional_encoder\.positions", r"embeddings.position_embeddings"),
    (r"modality_encoders\.IMAGE\.context_encoder\.norm\.(weight|bias)", r"embeddings.layernorm.\1"),
    (r"blocks\.(\d+)\.attn\.qkv\.(weight|bias)", r"layers.\1.attention.qkv_proj.\2"),
    (r"blocks\.(\d+)\.attn\.norm\.(weight|bias)", r"layers.\1.attention.head_norm.\2"),
    (r"blocks\.(\d+)\.attn\.proj\.(weight|bias)", r"layers.\1.attention.o_proj.\2"),
    (r"blocks\.(\d+)\.norm1\.(weight|bias)", r"layers.\1.post_attention_layernorm.\2"),
    (r"blocks\.(\d+)\.norm2\.(weight|bias)", r"layers.\1.post_mlp_layernorm.\2"),
    (r"blocks\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"layers.\1.mlp.\2.\3"),
]
# The encoder's own blocks: `blocks.<i>.` at the start of a key (the decoder's `...decoder.blocks.<i>.` must not match).
ENCODER_BLOCK = re.compile(r"blocks\.(\d+)\.")
# ASDA keeps [Q1 | Q2 | K1 | K2] and V in two linears; the port fuses them into one [Q1 | Q2 | K1 | K2 | V] projection.
SPLIT_QKV = re.compile(r"blocks\.(\d+)\.attn\.(qk|v)\.(weight|bias)")
DECODER_KEY_MAP = [
    (r"modality_encoders\.IMAGE\.decoder\.blocks\.(\d+)\.0\.(weight|bias)", r"decoder.layers.\1.conv.\2"),
    (r"modality_encoders\.IMAGE\.decoder\.proj\.(weight|bias)", r"decoder.proj.\1"),
]
TEACHER_PREFIX = "_ema."
DECODER_PREFIX = "modality_encoders.IMAGE.decoder."
CLASSIFIER_ENCODER_PREFIX = "model."

# What `torch.save` writes for a numpy scalar (fairseq's meters keep some in `extra_state`): the scalar rebuilder under
# its numpy 1.x and 2.x module paths, and `numpy.dtype` with the dtype classes of booleans and numbers (not `object`).
NUMPY_SCALAR_PATHS = ("numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar")
NUMPY_SCALAR_GLOBALS = [
    *((numpy_scalar, path) for path in NUMPY_SCALAR_PATHS),
    np.dtype,
    *{type(np.dtype(code)) for code in "?" + np.typecodes["AllInteger"] + np.typecodes["AllFloat"]},
]


def flatten_teacher(state_dict: dict) -> dict:
    """The official state dict with its nested EMA teacher (`state_dict["_ema"]`, name -> tensor) as `_ema.<name>` keys.
    A state dict that is already flat is returned as it is."""
    flat = {key: value for key, value in state_dict.items() if key != "_ema"}
    flat.update({TEACHER_PREFIX + name: tensor for name, tensor in state_dict.get("_ema", {}).items()})
    return flat


def config_from_fairseq(pretrain_cfg: dict, state_dict: dict, classifier_cfg: dict | None = None) -> AsdaConfig:
    """Build the `AsdaConfig` of an official model from its fairseq config and (for shapes) its state dict."""
    image_cfg = pretrain_cfg["modalities"]["image"]
    decoder_cfg = image_cfg["decoder"]
    prefix = CLASSIFIER_ENCODER_PREFIX if f"{CLASSIFIER_ENCODER_PREFIX}blocks.0.mlp.fc1.weight" in state_dict else ""
    fc1_key = f"{prefix}blocks.0.mlp.fc1.weight"
    positions_key = f"{prefix}modality_encoders.IMAGE.fixed_positional_encoder.positions"
    missing = [key for key in (fc1_key, positions_key) if key not in state_dict]
    if missing:
        raise ValueError(f"The state dict has no {missing}: it does not hold an official ASDA / EAT encoder.")
    num_frequency_patches = 128 // image_cfg["patch_size"]
    kwargs = {
        "hidden_size": pretrain_cfg["embed_dim"],
        # The official model builds `depth` blocks; keys of other blocks are reported by `convert_state_dict`.
        "num_hidden_layers": pretrain_cfg["depth"],
        "num_attention_heads": pretrain_cfg["num_heads"],
        "intermediate_size": state_dict[fc1_key].shape[0],
        "layer_norm_eps": pretrain_cfg["norm_eps"],
        "patch_size": image_cfg["patch_size"],
        "max_time_patches": state_dict[positions_key].shape[1] // num_frequency_patches,
        "attention_type": "differential" if f"{prefix}blocks.0.attn.qk.weight" in state_dict else "standard",
        "mask_ratio": image_cfg["mask_prob"],
        "mask_block_size": image_cfg["mask_length"],
        "mask_prob_adjust": image_cfg["mask_prob_adjust"],
        "clone_batch": pretrain_cfg["clone_batch"],
        "decoder_hidden_size": decoder_cfg["decoder_dim"],
        "decoder_num_layers": decoder_cfg["decoder_layers"],
        "decoder_kernel_size": decoder_cfg["decoder_kernel"],
        "decoder_groups": decoder_cfg["decoder_groups"],
        "decoder_noise_std": image_cfg["mask_noise_std"],
        "instance_norm_target_layers": pretrain_cfg["instance_norm_target_layer"],
        "layer_norm_targets": pretrain_cfg["layer_norm_targets"],
        "frame_loss_weight": pretrain_cfg.get("d2v_loss", 1.0),
        "utterance_loss_weight": pretrain_cfg["cls_loss"],
        "ema_decay": pretrain_cfg["ema_decay"],
        "ema_end_decay": pretrain_cfg["ema_end_decay"],
        "ema_anneal_end_step": pretrain_cfg["ema_anneal_end_step"],
    }
    top_k = pretrain_cfg["average_top_k_layers"]
    kwargs["num_target_layers"] = None if top_k >= kwargs["num_hidden_layers"] else top_k
    if classifier_cfg is not None:
        kwargs["pooling_mode"] = {"CLS_TOKEN": "cls", "MEAN_POOLING": "mean"}[
            str(classifier_cfg["prediction_mode"]).rsplit(".", 1)[-1]
        ]
        kwargs["drop_path_rate"] = classifier_cfg["drop_path_rate"]
        kwargs["num_labels"] = classifier_cfg["num_classes"]
        kwargs["problem_type"] = classifier_problem_type(classifier_cfg)
    return AsdaConfig(**kwargs)


def classifier_problem_type(classifier_cfg: dict) -> str:
    """The `problem_type` of the loss the official fine-tuning (`MaeImageClassificationModel.forward`) trained the head
    with: binary cross-entropy for AudioSet (`audio_mae` without a dataset flag) and for SPC-2 with mixup or cutmix,
    softmax cross-entropy otherwise (ESC-50; SPC-2 without mixup)."""
    esc50, spcv2 = classifier_cfg.get("esc50_eval", False), classifier_cfg.get("spcv2_eval", False)
    audioset = classifier_cfg.get("audio_mae", False) and not (esc50 or spcv2)
    mixed = classifier_cfg.get("mixup", 0) > 0 or classifier_cfg.get("cutmix", 0) > 0
    return "multi_label_classification" if audioset or (spcv2 and mixed) else "single_label_classification"


def classifier_task(classifier_cfg: dict) -> str:
    """The official recipe a fine-tuned checkpoint was trained with: the `AsdaFeatureExtractor` preset of its input
    statistics and length."""
    if classifier_cfg.get("esc50_eval"):
        return "esc50"
    if classifier_cfg.get("spcv2_eval"):
        return "speech_commands"
    return "audioset"


def _map_encoder(official: dict, source_prefix: str, target_prefix: str, num_layers: int) -> dict:
    """Map the tensors of a `num_layers`-block encoder under `source_prefix`, removing them from `official`."""
    converted = {}
    split_qkv = {}
    for key in [key for key in official if key.startswith(source_prefix)]:
        name = key[len(source_prefix) :]
        block = ENCODER_BLOCK.match(name)
        if name.startswith(DECODER_PREFIX) or (block and int(block.group(1)) >= num_layers):
            continue
        split = SPLIT_QKV.fullmatch(name)
        if split:
            layer, part, kind = split.groups()
            split_qkv.setdefault((layer, kind), {})[part] = official.pop(key)
            continue
        for pattern, replacement in ENCODER_KEY_MAP:
            if re.fullmatch(pattern, name):
                converted[target_prefix + re.sub(pattern, replacement, name)] = official.pop(key)
                break
    for (layer, kind), parts in split_qkv.items():
        if set(parts) != {"qk", "v"}:
            raise ValueError(f"Layer {layer}: found {sorted(parts)} of the split attention projection, need qk and v.")
        converted[f"{target_prefix}layers.{layer}.attention.qkv_proj.{kind}"] = torch.cat([parts["qk"], parts["v"]])
    return converted


def _map_decoder(official: dict) -> dict:
    converted = {}
    for key in [key for key in official if key.startswith(DECODER_PREFIX)]:
        for pattern, replacement in DECODER_KEY_MAP:
            if re.fullmatch(pattern, key):
                converted[re.sub(pattern, replacement, key)] = official.pop(key)
                break
    return converted


def convert_state_dict(official_state_dict: dict, config: AsdaConfig, target: str = "encoder"):
    """Map an official state dict onto the Hugging Face model `target`.

    Args:
        official_state_dict: the fairseq `model` state dict: the pre-training one (teacher nested under `_ema` as
            the official code saves it, or flattened as `_ema.<name>`) or the classifier's (encoder under `model.`).
        config: the `AsdaConfig` of the model (see `config_from_fairseq`).
        target: `"encoder"` (`AsdaModel`), `"pretraining"` (`AsdaForPreTraining`) or `"classifier"`
            (`AsdaForAudioClassification`).

    Returns:
        `(state_dict, dropped)`: the converted tensors and the official keys deliberately left out (the teacher and
        the decoder, for `"encoder"`).

    Raises:
        ValueError: if an official key is neither mapped nor a known droppable part, or the classifier head is missing.
    """
    official = flatten_teacher(official_state_dict)
    num_layers = config.num_hidden_layers
    dropped = []
    if target == "classifier":
        converted = _map_encoder(official, CLASSIFIER_ENCODER_PREFIX, "asda.", num_layers)
        head = {
            f"{official_name}.{kind}": f"{name}.{kind}"
            for official_name, name in (("fc_norm", "fc_norm"), ("head", "classifier"))
            for kind in ("weight", "bias")
        }
        missing = [key for key in head if key not in official]
        if missing:
            raise ValueError(f"The classifier checkpoint has no {missing}.")
        converted.update({name: official.pop(key) for key, name in head.items()})
    elif target in ("encoder", "pretraining"):
        keep = target == "pretraining"
        converted = _map_encoder(official, "", "asda." if keep else "", num_layers)
        if keep:
            converted.update(_map_encoder(official, TEACHER_PREFIX, "teacher.", num_layers))
            converted.update(_map_decoder(official))
        else:
            dropped = [key for key in official if key.startswith((TEACHER_PREFIX, DECODER_PREFIX))]
            for key in dropped:
                del official[key]
    else:
        raise ValueError(f"target must be 'encoder', 'pretraining' or 'classifier', got {target!r}.")
    if official:
        raise ValueError(
            f"Official keys with no mapping (not converted, not known to be droppable; the config has {num_layers} "
            f"encoder blocks): {sorted(official)}"
        )
    if config.attention_type == "standard" and any("head_norm" in key for key in converted):
        raise ValueError("A standard-attention config cannot hold a differential-attention checkpoint.")
    return converted, dropped


def load_fairseq_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict:
    """Load a fairseq `.pt` checkpoint with `torch.load(weights_only=True)` (numpy scalars allowed), or, if that refuses
    the file and `allow_pickle` is given, by unpickling it (which can run arbitrary code)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} not found.")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a PyTorch checkpoint (the zip archive that torch.save writes).")
    try:
        with torch.serialization.safe_globals(NUMPY_SCALAR_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        if not allow_pickle:
            unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(path)
            refused = sorted(set(unsafe) - {*NUMPY_SCALAR_PATHS, "numpy.dtype"})
            raise ValueError(
                f"{path} holds objects that the safe loader (torch.load(weights_only=True)) does not rebuild: "
                f"{', '.join(refused) or error}. If you trust the file, pass --allow-pickle to unpickle it, which can "
                "run arbitrary code."
            ) from error
    logger.warning("Unpickling %s (weights_only=False): only do this with files you trust.", path)
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except ImportError as error:
        raise ValueError(f"Unpickling {path} needs the code that defined its objects: {error}") from error


def read_fairseq_checkpoint(path: str | Path, allow_pickle: bool = False) -> tuple[dict, dict]:
    """The model config (`cfg["model"]`) and the state dict (`model`) of a fairseq checkpoint file."""
    state = load_fairseq_checkpoint(path, allow_pickle)
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a fairseq checkpoint (a dict).")
    if state.get("cfg") is None and state.get("args") is not None:
        raise ValueError(
            f"{path} is an old-style fairseq checkpoint: its config is an `args` namespace, not a `cfg` dict. Load it "
            "with fairseq (`checkpoint_utils.load_checkpoint_to_cpu` turns `args` into `cfg`), save it again with "
            "`state['cfg'] = OmegaConf.to_container(state['cfg'], resolve=True, enum_to_str=True)`, and convert that."
        )
    if "model" not in state and "cfg" not in state:
        raise ValueError(
            f"{path} is a bare state dict ({next(iter(state), None)!r}, ...), not a fairseq checkpoint: "
            "the conversion needs the model config as well. Pass the checkpoint file the official training wrote, "
            "which holds the config (`cfg`) next to the weights (`model`)."
        )
    if not isinstance(state.get("cfg"), dict) or "model" not in state["cfg"] or "model" not in state:
        raise ValueError(f"{path} is not a fairseq checkpoint with `cfg['model']` and `model`; it has {list(state)}.")
    return state["cfg"]["model"], state["model"]


def convert_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    model_type: str | None = None,
    keep_pretraining_modules: bool = False,
    labels: str | Path | None = None,
    allow_pickle: bool = False,
    overwrite: bool = False,
):
    """Convert a fairseq checkpoint file into a `save_pretrained` folder and return the model. An `output` folder that
    already holds files is refused unless `overwrite` (its model files and card would be replaced)."""
    from .. import AsdaFeatureExtractor, AsdaForAudioClassification, AsdaForPreTraining, AsdaModel

    if not overwrite and Path(output).is_dir() and any(Path(output).iterdir()):
        raise ValueError(f"{output} already holds files; choose a new folder, or pass --overwrite to replace them.")
    model_cfg, state_dict = read_fairseq_checkpoint(checkpoint, allow_pickle)
    is_classifier = model_cfg.get("_name") == "mae_image_classification"
    metrics = None
    if is_classifier:
        if keep_pretraining_modules:
            raise ValueError(f"{checkpoint} is a fine-tuned classifier: it has no pre-training modules to keep.")
        pretrain_cfg = (model_cfg.get("pretrained_model_args") or {}).get("model")
        if pretrain_cfg is None:
            raise ValueError(f"{checkpoint}: the classifier's config has no `pretrained_model_args['model']`.")
        config = config_from_fairseq(pretrain_cfg, state_dict, model_cfg)
        if labels is not None:
            id2label = LabelVocabulary.from_label_file(labels, multi_label=False).id2label
            if len(id2label) != config.num_labels:
                raise ValueError(
                    f"{len(id2label)} labels in {labels}, the checkpoint's head has {config.num_labels} classes."
                )
            config.id2label = id2label
            config.label2id = {label: index for index, label in id2label.items()}
        model_class, target = AsdaForAudioClassification, "classifier"
        preset = classifier_task(model_cfg)
        metrics = ["mean_average_precision" if preset == "audioset" else "accuracy"]  # the official metric
    else:
        config = config_from_fairseq(model_cfg, state_dict)
        model_class, target = (AsdaForPreTraining, "pretraining") if keep_pretraining_modules else (AsdaModel, "encoder")
        preset = "audioset"
    feature_extractor = AsdaFeatureExtractor.from_preset(preset)
    detected = "asda" if config.attention_type == "differential" else "eat"
    if model_type is not None and model_type != detected:
        raise ValueError(f"--model-type {model_type} given, but the checkpoint holds a {detected.upper()} model.")

    converted, dropped = convert_state_dict(state_dict, config, target)
    model = model_class(config)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    if missing or unexpected:
        raise ValueError(
            f"The checkpoint does not fill the {model_class.__name__}: missing {missing}, unexpected {unexpected}."
        )
    for key in dropped:
        logger.info("Dropped %s (not part of %s)", key, model_class.__name__)
    model.save_pretrained(output)
    feature_extractor.save_pretrained(output)
    write_model_card(
        output,
        metrics=metrics,
        description=f"Converted from the official fairseq checkpoint `{Path(checkpoint).name}` by "
        f"`modeling_asda.convert_checkpoint`; input statistics and length: the `{preset}` preset.",
        overwrite=True,
    )
    return model


def main(argv: list[str] | None = None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="official fairseq .pt checkpoint")
    parser.add_argument("--output", required=True, help="folder to write the Hugging Face model to")
    parser.add_argument("--model-type", choices=["asda", "eat"], help="check that the checkpoint is of this kind")
    parser.add_argument(
        "--keep-pretraining-modules",
        action="store_true",
        help="convert a pre-training checkpoint into AsdaForPreTraining (teacher and decoder kept)",
    )
    parser.add_argument("--labels", help="class names for a fine-tuned checkpoint: the AudioSet labels csv, or one per line")
    parser.add_argument("--overwrite", action="store_true", help="write into an --output folder that holds files")
    parser.add_argument(
        "--allow-pickle",
        action="store_true",
        help="unpickle a file that holds objects the safe loader refuses (can run arbitrary code: trusted files only)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    try:
        convert_checkpoint(
            args.checkpoint,
            args.output,
            args.model_type,
            args.keep_pretraining_modules,
            args.labels,
            args.allow_pickle,
            args.overwrite,
        )
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error


if __name__ == "__main__":
    main()
