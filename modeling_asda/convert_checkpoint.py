"""Convert official fairseq ASDA / EAT checkpoints into Hugging Face folders.

    python -m modeling_asda.convert_checkpoint --checkpoint ASDA_pretrained.pt --output asda-base
    python -m modeling_asda.convert_checkpoint --checkpoint ASDA_AS2M_finetuned.pt --output asda-base-as2m \
        --labels audioset_labels.csv

A pre-training checkpoint becomes an `AsdaModel` (teacher and decoder dropped) or, with `--keep-pretraining-modules`,
an `AsdaForPreTraining`; a fine-tuned checkpoint becomes an `AsdaForAudioClassification`. Every official tensor is
either mapped or listed as dropped; an unknown key is an error.
"""

import argparse
import csv
import logging
import re
from pathlib import Path

import torch

from .configuration_asda import AsdaConfig
from .model_card import write_model_card


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
# ASDA keeps [Q1 | Q2 | K1 | K2] and V in two linears; the port fuses them into one [Q1 | Q2 | K1 | K2 | V] projection.
SPLIT_QKV = re.compile(r"blocks\.(\d+)\.attn\.(qk|v)\.(weight|bias)")
DECODER_KEY_MAP = [
    (r"modality_encoders\.IMAGE\.decoder\.blocks\.(\d+)\.0\.(weight|bias)", r"decoder.layers.\1.conv.\2"),
    (r"modality_encoders\.IMAGE\.decoder\.proj\.(weight|bias)", r"decoder.proj.\1"),
]
TEACHER_PREFIX = "_ema."
DECODER_PREFIX = "modality_encoders.IMAGE.decoder."

def config_from_fairseq(pretrain_cfg: dict, state_dict: dict, classifier_cfg: dict | None = None) -> AsdaConfig:
    """Build the `AsdaConfig` of an official model from its fairseq config and (for shapes) its state dict."""
    image_cfg = pretrain_cfg["modalities"]["image"]
    decoder_cfg = image_cfg["decoder"]
    encoder_keys = {key.split("blocks.", 1)[-1] for key in state_dict if "blocks." in key}
    is_differential = any(".attn.qk." in key for key in state_dict)
    fc1 = next(value for key, value in state_dict.items() if key.endswith("blocks.0.mlp.fc1.weight"))
    positions = next(value for key, value in state_dict.items() if key.endswith("fixed_positional_encoder.positions"))
    num_frequency_patches = 128 // image_cfg["patch_size"]
    kwargs = {
        "hidden_size": pretrain_cfg["embed_dim"],
        "num_hidden_layers": len({key.split(".", 1)[0] for key in encoder_keys if key.split(".", 1)[0].isdigit()}),
        "num_attention_heads": pretrain_cfg["num_heads"],
        "intermediate_size": fc1.shape[0],
        "layer_norm_eps": pretrain_cfg["norm_eps"],
        "patch_size": image_cfg["patch_size"],
        "max_time_patches": positions.shape[1] // num_frequency_patches,
        "attention_type": "differential" if is_differential else "standard",
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
        single_label = classifier_cfg.get("esc50_eval") or classifier_cfg.get("spcv2_eval")
        kwargs["problem_type"] = "single_label_classification" if single_label else "multi_label_classification"
    return AsdaConfig(**kwargs)


def classifier_task(classifier_cfg: dict) -> str:
    """The official recipe a fine-tuned checkpoint was trained with: the `AsdaFeatureExtractor` preset of its input
    statistics and length."""
    if classifier_cfg.get("esc50_eval"):
        return "esc50"
    if classifier_cfg.get("spcv2_eval"):
        return "speech_commands"
    return "audioset"


def _map_encoder(official: dict, source_prefix: str, target_prefix: str) -> dict:
    """Map the encoder tensors under `source_prefix`, removing them from `official`."""
    converted = {}
    split_qkv = {}
    for key in [key for key in official if key.startswith(source_prefix)]:
        name = key[len(source_prefix) :]
        if name.startswith(DECODER_PREFIX):
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
        official_state_dict: the fairseq `model` state dict (teacher under `_ema.`, classifier encoder under `model.`).
        config: the `AsdaConfig` of the model (see `config_from_fairseq`).
        target: `"encoder"` (`AsdaModel`), `"pretraining"` (`AsdaForPreTraining`) or `"classifier"`
            (`AsdaForAudioClassification`).

    Returns:
        `(state_dict, dropped)`: the converted tensors and the official keys deliberately left out.

    Raises:
        ValueError: if an official key is neither mapped nor a known droppable part.
    """
    official = dict(official_state_dict)
    dropped = []
    if target == "classifier":
        converted = _map_encoder(official, "model.", "asda.")
        for official_name, name in (("fc_norm", "fc_norm"), ("head", "classifier")):
            for kind in ("weight", "bias"):
                converted[f"{name}.{kind}"] = official.pop(f"{official_name}.{kind}")
    elif target in ("encoder", "pretraining"):
        keep = target == "pretraining"
        converted = _map_encoder(official, "", "asda." if keep else "")
        if keep:
            converted.update(_map_encoder(official, TEACHER_PREFIX, "teacher."))
            converted.update(_map_decoder(official))
        else:
            dropped = [key for key in official if key.startswith((TEACHER_PREFIX, DECODER_PREFIX))]
            for key in dropped:
                del official[key]
    else:
        raise ValueError(f"target must be 'encoder', 'pretraining' or 'classifier', got {target!r}.")
    if official:
        raise ValueError(f"Official keys with no mapping (not converted, not known to be droppable): {sorted(official)}")
    if config.attention_type == "standard" and any("head_norm" in key for key in converted):
        raise ValueError("A standard-attention config cannot hold a differential-attention checkpoint.")
    return converted, dropped


def load_fairseq_checkpoint(path: str | Path, allow_pickle: bool = False) -> dict:
    """Load a fairseq `.pt` checkpoint, with `weights_only=True` unless `allow_pickle` (arbitrary code!) is given."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - the unpickler raises several types
        if not allow_pickle:
            raise ValueError(
                f"{path} holds objects that the safe loader (torch.load(weights_only=True)) refuses: {error}\n"
                "If you trust the file, pass --allow-pickle to load it with weights_only=False, which can run "
                "arbitrary code."
            ) from error
    logger.warning("Loading %s with weights_only=False (pickle): only do this with files you trust.", path)
    return torch.load(path, map_location="cpu", weights_only=False)


def read_labels(path: str | Path) -> dict[int, str]:
    """`index,mid,display_name` rows (the AudioSet label file, with or without a header) or one label per line ->
    id2label."""
    with open(path, newline="", encoding="utf-8") as handle:
        rows = [row for row in csv.reader(handle) if row]
    if rows and rows[0][0] == "index":
        rows = rows[1:]
    if rows and all(len(row) == 3 and row[0].isdigit() for row in rows):
        return {int(row[0]): row[2] for row in rows}
    return {index: row[0] for index, row in enumerate(rows)}


def convert_checkpoint(
    checkpoint: str | Path,
    output: str | Path,
    model_type: str | None = None,
    keep_pretraining_modules: bool = False,
    labels: str | Path | None = None,
    allow_pickle: bool = False,
):
    """Convert a fairseq checkpoint file into a `save_pretrained` folder and return the model."""
    from . import AsdaFeatureExtractor, AsdaForAudioClassification, AsdaForPreTraining, AsdaModel

    state = load_fairseq_checkpoint(checkpoint, allow_pickle)
    model_cfg = state["cfg"]["model"]
    state_dict = state["model"]
    is_classifier = model_cfg.get("_name") == "mae_image_classification"
    if is_classifier:
        config = config_from_fairseq(model_cfg["pretrained_model_args"]["model"], state_dict, model_cfg)
        if labels is not None:
            config.id2label = read_labels(labels)
            config.label2id = {label: index for index, label in config.id2label.items()}
        if len(config.id2label) != config.num_labels:
            raise ValueError(f"{labels} has {len(config.id2label)} labels, the checkpoint {config.num_labels} classes.")
        model_class, target = AsdaForAudioClassification, "classifier"
        preset = classifier_task(model_cfg)
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
        raise ValueError(f"Conversion mismatch: missing {missing}, unexpected {unexpected}.")
    for key in dropped:
        logger.info("Dropped %s (not part of %s)", key, model_class.__name__)
    model.save_pretrained(output)
    feature_extractor.save_pretrained(output)
    write_model_card(
        output,
        description=f"Converted from the official fairseq checkpoint `{Path(checkpoint).name}` by "
        f"`modeling_asda.convert_checkpoint`; input statistics and length: the `{preset}` preset.",
        overwrite=True,
    )
    return model


def main():
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
    parser.add_argument(
        "--allow-pickle", action="store_true", help="load with weights_only=False if the safe loader refuses the file"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    convert_checkpoint(
        args.checkpoint, args.output, args.model_type, args.keep_pretraining_modules, args.labels, args.allow_pickle
    )


if __name__ == "__main__":
    main()
