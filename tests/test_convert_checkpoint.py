"""The official-checkpoint converter on files in the exact layout the official fairseq training writes (spec 2.6).

The golden weights are written into full fairseq checkpoints (config, nested EMA teacher, optimizer state, metrics
holding numpy and torch scalars), stripped ones and the flattened form, converted through the command line in a process
where fairseq and omegaconf cannot be imported, and the converted folders are checked against the official outputs.
"""

import argparse
import json
import os
import pickle
import re
import subprocess
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import AutoModel

from conftest import FIXTURES
from modeling_asda import AsdaConfig, AsdaForAudioClassification, AsdaForPreTraining, AsdaModel
from modeling_asda.tools.convert_checkpoint import classifier_problem_type, convert_checkpoint, main


REPO_ROOT = Path(__file__).resolve().parents[1]
META = json.loads((FIXTURES / "tiny_meta.json").read_text())
PRETRAIN_CFG = META["pretrain_model_cfg"]
CLASSIFIER_CFG = {**META["classifier_cfg"], "pretrained_model_args": {"model": PRETRAIN_CFG}}
# What `python -m modeling_asda.convert_checkpoint ARGS` runs (runpy executes the module as `__main__`), once per
# argument list in one process, so that the interpreter and torch start only once; prints each run's exit status.
CLI_DRIVER = """
import json, runpy, sys
statuses = []
for arguments in json.loads(sys.argv[1]):
    sys.argv = ["convert_checkpoint", *arguments]
    try:
        runpy.run_module("modeling_asda.convert_checkpoint", run_name="__main__", alter_sys=True)
        statuses.append(0)
    except SystemExit as exit:
        statuses.append(str(exit.code))
print(json.dumps(statuses))
"""
BLOCKED_MODULE = 'raise ImportError("{name} is blocked: the converter must work without it")\n'


@pytest.fixture(scope="module")
def golden():
    return {
        "pretrain": load_file(FIXTURES / "tiny_pretrain_state_dict.safetensors"),
        "classifier": load_file(FIXTURES / "tiny_classifier_state_dict.safetensors"),
        "inputs": load_file(FIXTURES / "tiny_inputs.safetensors"),
        "outputs": load_file(FIXTURES / "tiny_outputs.safetensors"),
    }


def module_state_dict(tensors: dict) -> OrderedDict:
    """A state dict as `nn.Module.state_dict()` returns it: an OrderedDict carrying `_metadata`."""
    state_dict = OrderedDict(tensors)
    state_dict._metadata = OrderedDict([("", {"version": 1}), ("modality_encoders.IMAGE", {"version": 1})])
    return state_dict


def nest_teacher(flat: dict) -> OrderedDict:
    """The official pre-training state dict: the EMA teacher as ONE entry, `_ema`, an OrderedDict name -> tensor."""
    state_dict = module_state_dict((key, value) for key, value in flat.items() if not key.startswith("_ema."))
    state_dict["_ema"] = OrderedDict((key[5:], value) for key, value in flat.items() if key.startswith("_ema."))
    return state_dict


def meter_states(loss: float) -> list:
    """fairseq `MetersDict.state_dict()`: (priority, name, meter class, meter state) with numpy and torch scalars."""
    return [
        (10, "loss", "AverageMeter", {"val": np.float64(loss), "sum": np.float64(412 * loss), "count": np.int64(412),
                                      "round": 3}),
        (20, "sample_size", "AverageMeter", {"val": np.int64(412), "sum": np.int64(412), "count": 1, "round": None}),
        (30, "ema_decay", "AverageMeter", {"val": torch.tensor(999.95), "sum": torch.tensor(999.95), "count": 1,
                                           "round": 5}),
        (40, "gnorm", "AverageMeter", {"val": np.float32(1.25), "sum": np.float32(1.25), "count": 1, "round": 3}),
        (50, "wps", "TimeMeter", {"init": 0, "n": 412.0, "round": 1}),
        (60, "wall", "StopwatchMeter", {"sum": 5321.5, "n": 7, "round": 0}),
    ]


def fairseq_checkpoint(model_cfg: dict, state_dict: dict, stripped: bool = False) -> dict:
    """What fairseq's `Trainer.state_dict` + `checkpoint_utils.save_checkpoint` write (config as plain dicts, enums as
    strings); `stripped` keeps only `cfg` and `model`, as some released files do."""
    cfg = {
        "_name": None,
        "common": {"_name": None, "fp16": True, "log_interval": 200, "seed": 1},
        "checkpoint": {"_name": None, "save_interval_updates": 10000, "no_save_optimizer_state": False},
        "optimization": {"_name": None, "max_update": 400000, "lr": [0.0005], "clip_norm": 4.0},
        "model": model_cfg,
        "task": {"_name": "mae_image_pretraining", "data": "/data/AS2M", "target_length": 256},
        "criterion": {"_name": "model", "log_keys": ["ema_decay", "target_var", "pred_var"]},
        "optimizer": {"_name": "composite", "dynamic_groups": True, "groups": {"default": {"lr_float": 0.0005}}},
        "lr_scheduler": {"_name": "pass_through"},
        "ema": {"_name": None, "store_ema": False},
    }
    if stripped:
        return {"cfg": cfg, "model": state_dict}
    tensors = [value for value in state_dict.values() if isinstance(value, torch.Tensor)]
    generator = torch.Generator().manual_seed(0)
    return {
        "args": None,
        "cfg": cfg,
        "model": state_dict,
        "criterion": None,
        "optimizer_history": [
            {"criterion_name": "ModelCriterion", "optimizer_name": "CompositeOptimizer",
             "lr_scheduler_state": {"best": None}, "num_updates": 400000}
        ],
        "task_state": {},
        "extra_state": {
            "metrics": OrderedDict([("default", meter_states(26.5)), ("train", meter_states(26.49789))]),
            "previous_training_time": 123456.75,
            "train_iterator": {"version": 2, "epoch": 10, "iterations_in_epoch": 0, "shuffle": False},
            "val_loss": np.float64(26.4),
        },
        "last_optimizer_state": {
            "state": {
                index: {"step": torch.tensor(400000.0),
                        "exp_avg": torch.randn(tensor.shape, generator=generator) * 1e-3,
                        "exp_avg_sq": torch.rand(tensor.shape, generator=generator) * 1e-6}
                for index, tensor in enumerate(tensors)
            },
            "param_groups": [{"lr": 5e-4, "betas": (0.9, 0.95), "eps": 1e-6, "weight_decay": 0.01, "amsgrad": False,
                              "params": list(range(len(tensors)))}],
        },
    }


class Numpy1Pickler(pickle._Pickler):
    """Writes numpy scalars under numpy 1.x's module path (`numpy.core.multiarray.scalar`), as in files saved before
    numpy 2 (the official environment pins numpy 1.x)."""

    def save_global(self, obj, name=None):
        if getattr(obj, "__qualname__", None) == "scalar" and obj.__module__.startswith("numpy"):
            self.write(pickle.GLOBAL + b"numpy.core.multiarray\nscalar\n")
            self.memoize(obj)
            return
        super().save_global(obj, name)


NUMPY1_PICKLE = types.ModuleType("numpy1_pickle")
NUMPY1_PICKLE.Pickler = Numpy1Pickler


def save_with_omegaconf_config(path: Path, state_dict: dict):
    """A checkpoint whose config is an omegaconf object (a stand-in class named `omegaconf.DictConfig`)."""
    DictConfig = type("DictConfig", (dict,), {"__module__": "omegaconf", "__qualname__": "DictConfig"})
    omegaconf = types.ModuleType("omegaconf")
    omegaconf.DictConfig = DictConfig
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(sys.modules, "omegaconf", omegaconf)
        torch.save({"cfg": DictConfig(model=PRETRAIN_CFG), "model": state_dict}, path)


def run_cli(argument_lists: list[list[str]], blocked_dir: Path) -> list:
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(blocked_dir), str(REPO_ROOT)])}
    result = subprocess.run(
        [sys.executable, "-c", CLI_DRIVER, json.dumps(argument_lists)],
        capture_output=True, text=True, env=environment, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def official_eat_state_dict(model: AsdaForPreTraining) -> OrderedDict:
    """The official (EAT) names of a standard-attention `AsdaForPreTraining`'s tensors, written from the spec (2.1-2.6)
    independently of the converter: timm-style `attn.qkv`, post-LN `norm1`/`norm2`, the CNN decoder's `blocks.<i>.0`
    convolutions, the teacher nested under `_ema`."""
    encoder_names = [
        (r"embeddings\.patch_embeddings\.projection\.(weight|bias)", r"modality_encoders.IMAGE.local_encoder.proj.\1"),
        (r"embeddings\.cls_token", "modality_encoders.IMAGE.extra_tokens"),
        (r"embeddings\.position_embeddings", "modality_encoders.IMAGE.fixed_positional_encoder.positions"),
        (r"embeddings\.layernorm\.(weight|bias)", r"modality_encoders.IMAGE.context_encoder.norm.\1"),
        (r"layers\.(\d+)\.attention\.qkv_proj\.(weight|bias)", r"blocks.\1.attn.qkv.\2"),
        (r"layers\.(\d+)\.attention\.o_proj\.(weight|bias)", r"blocks.\1.attn.proj.\2"),
        (r"layers\.(\d+)\.post_attention_layernorm\.(weight|bias)", r"blocks.\1.norm1.\2"),
        (r"layers\.(\d+)\.post_mlp_layernorm\.(weight|bias)", r"blocks.\1.norm2.\2"),
        (r"layers\.(\d+)\.mlp\.(fc1|fc2)\.(weight|bias)", r"blocks.\1.mlp.\2.\3"),
    ]
    decoder_names = [
        (r"layers\.(\d+)\.conv\.(weight|bias)", r"modality_encoders.IMAGE.decoder.blocks.\1.0.\2"),
        (r"proj\.(weight|bias)", r"modality_encoders.IMAGE.decoder.proj.\1"),
    ]

    def official(module, names):
        renamed = OrderedDict()
        for name, tensor in module.state_dict().items():
            matches = [re.sub(pattern, target, name) for pattern, target in names if re.fullmatch(pattern, name)]
            assert len(matches) == 1, f"no official name for {name}"
            renamed[matches[0]] = tensor.clone()
        return renamed

    state_dict = module_state_dict({**official(model.asda, encoder_names), **official(model.decoder, decoder_names)})
    state_dict["_ema"] = official(model.teacher, encoder_names)
    return state_dict


@pytest.fixture(scope="module")
def eat_model():
    """An EAT-shaped tiny model (standard attention, MLP ratio 4) with random weights; the teacher differs from the
    student, and every bias and LayerNorm is perturbed so that a swapped or dropped tensor changes the outputs."""
    torch.manual_seed(0)
    config = AsdaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=256,
                        attention_type="standard", clone_batch=2, decoder_hidden_size=64, decoder_num_layers=2,
                        utterance_loss_weight=1.0)
    model = AsdaForPreTraining(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    return model


@pytest.fixture(scope="module")
def converted(golden, eat_model, tmp_path_factory):
    """Every official-layout file converted by one command-line process without fairseq, omegaconf or --allow-pickle."""
    root = tmp_path_factory.mktemp("official-checkpoints")
    blocked = root / "blocked"
    for name in ("fairseq", "omegaconf"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(BLOCKED_MODULE.format(name=name))
    eat_cfg = {**PRETRAIN_CFG, "mlp_ratio": 4.0, "cls_loss": 1.0}
    pretrain, classifier = nest_teacher(golden["pretrain"]), module_state_dict(golden["classifier"])
    files = {
        "pretrain_full": (fairseq_checkpoint(PRETRAIN_CFG, pretrain), pickle),
        "pretrain_stripped": (fairseq_checkpoint(PRETRAIN_CFG, pretrain, stripped=True), pickle),
        "pretrain_flattened": ({"cfg": {"model": PRETRAIN_CFG}, "model": dict(golden["pretrain"])}, pickle),
        "classifier_full": (fairseq_checkpoint(CLASSIFIER_CFG, classifier), NUMPY1_PICKLE),
        "classifier_stripped": (fairseq_checkpoint(CLASSIFIER_CFG, classifier, stripped=True), pickle),
        "eat_full": (fairseq_checkpoint(eat_cfg, official_eat_state_dict(eat_model)), pickle),
    }
    paths = {}
    for name, (checkpoint, pickle_module) in files.items():
        paths[name] = root / f"{name}.pt"
        torch.save(checkpoint, paths[name], pickle_module=pickle_module)
    save_with_omegaconf_config(root / "omegaconf_cfg.pt", nest_teacher(golden["pretrain"]))
    runs = {
        "pretraining": ["--checkpoint", paths["pretrain_full"], "--keep-pretraining-modules", "--model-type", "asda"],
        "pretraining_stripped": ["--checkpoint", paths["pretrain_stripped"], "--keep-pretraining-modules"],
        "pretraining_flattened": ["--checkpoint", paths["pretrain_flattened"], "--keep-pretraining-modules"],
        "encoder": ["--checkpoint", paths["pretrain_full"]],
        "classifier": ["--checkpoint", paths["classifier_full"]],
        "classifier_stripped": ["--checkpoint", paths["classifier_stripped"]],
        "eat": ["--checkpoint", paths["eat_full"], "--keep-pretraining-modules", "--model-type", "eat"],
        # Shows that the blocked modules really are unimportable: unpickling an omegaconf object must fail.
        "omegaconf_allow_pickle": ["--checkpoint", root / "omegaconf_cfg.pt", "--allow-pickle"],
    }
    statuses = run_cli([[*map(str, arguments), "--output", str(root / name)] for name, arguments in runs.items()],
                       blocked)
    return {"root": root, "files": paths, "status": dict(zip(runs, statuses))}


def converted_folder(converted, name) -> Path:
    assert converted["status"][name] == 0, converted["status"][name]
    return converted["root"] / name


def test_files_hold_numpy_scalars_under_numpy_1_and_2_paths(converted):
    # The safe loader must rebuild these (meter values in `extra_state`), without --allow-pickle.
    unsafe = torch.serialization.get_unsafe_globals_in_checkpoint
    assert "numpy._core.multiarray.scalar" in unsafe(converted["files"]["pretrain_full"])
    assert "numpy.core.multiarray.scalar" in unsafe(converted["files"]["classifier_full"])


def test_blocked_modules_make_an_omegaconf_object_fail_to_load(converted):
    status = converted["status"]["omegaconf_allow_pickle"]
    assert "omegaconf is blocked" in status, status


@pytest.mark.parametrize("folder", ["pretraining", "pretraining_stripped", "pretraining_flattened"])
def test_pretraining_folder_reproduces_official_targets_and_losses(converted, golden, folder):
    model = AsdaForPreTraining.from_pretrained(converted_folder(converted, folder)).train()
    source, official = golden["inputs"]["source"][:, 0], golden["outputs"]
    targets = model.teacher_targets(source)
    torch.testing.assert_close(targets, official["pretrain.targets"], atol=1e-5, rtol=0)
    outputs = model(source, mask=golden["inputs"]["masks"].bool(), decoder_noise=torch.zeros(4, 103, 64))
    torch.testing.assert_close(outputs.logits, official["pretrain_zero_noise.decoder_output"], atol=1e-5, rtol=0)
    for ours, theirs in [(outputs.loss, "pretrain_zero_noise.loss"),
                         (outputs.frame_loss, "pretrain_zero_noise.frame_loss"),
                         (outputs.utterance_loss, "pretrain.utterance_loss")]:
        torch.testing.assert_close(ours, official[theirs].squeeze(), rtol=1e-4, atol=0)


def test_encoder_folder_reproduces_official_hidden_states(converted, golden):
    folder = converted_folder(converted, "encoder")
    model = AutoModel.from_pretrained(folder).eval()
    assert type(model) is AsdaModel
    with torch.no_grad():
        outputs = model(golden["inputs"]["source"][:, 0], output_hidden_states=True)
    expected = golden["outputs"]
    torch.testing.assert_close(outputs.last_hidden_state, expected["features.last_hidden_state"], atol=1e-5, rtol=0)
    hidden_states = torch.stack(outputs.hidden_states)
    torch.testing.assert_close(hidden_states, expected["features.hidden_states"], atol=1e-5, rtol=0)
    # The teacher and the decoder are not part of an encoder.
    saved = load_file(folder / "model.safetensors")
    assert not any(key.startswith(("teacher.", "decoder.")) for key in saved)


@pytest.mark.parametrize("folder", ["classifier", "classifier_stripped"])
def test_classifier_folder_reproduces_official_logits(converted, golden, folder):
    model = AsdaForAudioClassification.from_pretrained(converted_folder(converted, folder)).eval()
    with torch.no_grad():
        logits = model(golden["inputs"]["source"][:, 0]).logits
    torch.testing.assert_close(logits, golden["outputs"]["classifier.logits"], atol=1e-5, rtol=0)
    assert model.config.problem_type == "multi_label_classification"  # AS-20K: trained with binary cross-entropy


def test_eat_layout_converts_to_the_same_model(converted, golden, eat_model):
    model = AsdaForPreTraining.from_pretrained(converted_folder(converted, "eat")).train()
    assert model.config.attention_type == "standard" and model.config.intermediate_size == 256
    source = golden["inputs"]["source"][:, 0]
    mask = golden["inputs"]["masks"].bool()
    noise = 0.01 * torch.randn(4, 103, 64, generator=torch.Generator().manual_seed(1))
    eat_model.train()
    with torch.no_grad():
        ours, theirs = (
            pretraining(source, mask=mask, decoder_noise=noise, output_hidden_states=True)
            for pretraining in (model, eat_model)
        )
    for name in ("loss", "frame_loss", "utterance_loss", "logits", "targets"):
        torch.testing.assert_close(getattr(ours, name), getattr(theirs, name), atol=0, rtol=0)
    torch.testing.assert_close(ours.hidden_states, theirs.hidden_states, atol=0, rtol=0)


def test_a_non_allowlisted_object_is_refused_and_not_unpickled(golden, tmp_path):
    marker = tmp_path / "payload-ran"

    class Payload:
        def __reduce__(self):
            return os.mkdir, (str(marker),)

    checkpoint = tmp_path / "payload.pt"
    state = fairseq_checkpoint(PRETRAIN_CFG, nest_teacher(golden["pretrain"]), stripped=True)
    torch.save({**state, "extra_state": {"hook": Payload()}}, checkpoint)
    with pytest.raises(SystemExit, match=rf"{os.mkdir.__module__}\.mkdir.*--allow-pickle"):
        main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")])
    assert not marker.exists()
    # The payload is live: the explicit opt-in unpickles it (and the conversion then succeeds).
    main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out"), "--allow-pickle"])
    assert marker.is_dir() and (tmp_path / "out" / "model.safetensors").is_file()


def test_an_omegaconf_config_is_refused_without_allow_pickle(golden, tmp_path):
    checkpoint = tmp_path / "omegaconf.pt"
    save_with_omegaconf_config(checkpoint, nest_teacher(golden["pretrain"]))
    with pytest.raises(SystemExit, match=r"omegaconf\.DictConfig.*--allow-pickle"):
        main(["--checkpoint", str(checkpoint), "--output", str(tmp_path / "out")])


def test_a_missing_checkpoint_is_reported_as_not_found(tmp_path):
    with pytest.raises(SystemExit) as error:
        main(["--checkpoint", str(tmp_path / "missing.pt"), "--output", str(tmp_path / "out")])
    assert "not found" in str(error.value) and "allow-pickle" not in str(error.value)


def test_an_output_folder_that_holds_files_is_left_alone_unless_overwrite(golden, tmp_path):
    checkpoint = tmp_path / "classifier.pt"
    torch.save(fairseq_checkpoint(CLASSIFIER_CFG, golden["classifier"], stripped=True), checkpoint)
    output = tmp_path / "out"
    output.mkdir()
    (output / "README.md").write_text("my notes")
    with pytest.raises(SystemExit, match="already holds files.*--overwrite"):
        main(["--checkpoint", str(checkpoint), "--output", str(output)])
    assert [path.name for path in output.iterdir()] == ["README.md"]
    assert (output / "README.md").read_text() == "my notes"
    main(["--checkpoint", str(checkpoint), "--output", str(output), "--overwrite"])
    assert (output / "model.safetensors").is_file() and "my notes" not in (output / "README.md").read_text()


def test_a_bare_state_dict_is_not_taken_for_a_checkpoint(golden, tmp_path):
    checkpoint = tmp_path / "state_dict.pt"
    torch.save(nest_teacher(golden["pretrain"]), checkpoint)
    with pytest.raises(ValueError, match=r"bare state dict.*not a fairseq checkpoint.*`cfg`"):
        convert_checkpoint(checkpoint, tmp_path / "out")


def test_an_old_checkpoint_with_args_instead_of_cfg_gets_a_clear_message(golden, tmp_path):
    checkpoint = tmp_path / "old.pt"
    args = argparse.Namespace(arch="data2vec_multi", depth=2)
    torch.save({"args": args, "model": nest_teacher(golden["pretrain"])}, checkpoint)
    with pytest.raises(ValueError, match=r"argparse\.Namespace.*--allow-pickle"):
        convert_checkpoint(checkpoint, tmp_path / "out")
    with pytest.raises(ValueError, match=r"old-style fairseq checkpoint.*`args`.*not a `cfg`"):
        convert_checkpoint(checkpoint, tmp_path / "out", allow_pickle=True)


def test_a_missing_head_tensor_is_named(golden, tmp_path):
    state_dict = {key: value for key, value in golden["classifier"].items() if key != "head.bias"}
    checkpoint = tmp_path / "classifier.pt"
    torch.save(fairseq_checkpoint(CLASSIFIER_CFG, state_dict, stripped=True), checkpoint)
    with pytest.raises(ValueError, match=r"has no \['head\.bias'\]"):
        convert_checkpoint(checkpoint, tmp_path / "out")


def test_labels_that_do_not_fit_the_head_are_refused(golden, tmp_path):
    checkpoint = tmp_path / "classifier.pt"
    torch.save(fairseq_checkpoint(CLASSIFIER_CFG, golden["classifier"], stripped=True), checkpoint)
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"sound {index}\n" for index in range(527)))
    message = rf"527 labels in {re.escape(str(labels))}, the checkpoint's head has 5 classes"
    with pytest.raises(ValueError, match=message):
        convert_checkpoint(checkpoint, tmp_path / "out", labels=labels)


def test_a_stray_encoder_block_is_reported_by_its_official_names(golden, tmp_path):
    state_dict = dict(golden["pretrain"])
    state_dict.update({key.replace("blocks.0.", "blocks.5.", 1): value for key, value in golden["pretrain"].items()
                       if key.startswith("blocks.0.")})
    checkpoint = tmp_path / "stray.pt"
    torch.save(fairseq_checkpoint(PRETRAIN_CFG, nest_teacher(state_dict), stripped=True), checkpoint)
    with pytest.raises(ValueError, match=r"'blocks\.5\.attn\.qk\.weight'") as error:
        convert_checkpoint(checkpoint, tmp_path / "out")
    assert "layers.2" not in str(error.value)


def test_a_decoder_deeper_than_the_encoder_does_not_change_the_encoder_depth(golden, tmp_path):
    # Spec 2.6: the decoder's `modality_encoders.IMAGE.decoder.blocks.<i>.` keys overlap the encoder's `blocks.<i>.`.
    state_dict = dict(golden["pretrain"])
    generator = torch.Generator().manual_seed(0)
    for layer in (2, 3):
        for kind in ("weight", "bias"):
            reference = golden["pretrain"][f"modality_encoders.IMAGE.decoder.blocks.0.0.{kind}"]
            state_dict[f"modality_encoders.IMAGE.decoder.blocks.{layer}.0.{kind}"] = 0.02 * torch.randn(
                reference.shape, generator=generator
            )
    cfg = {**PRETRAIN_CFG, "modalities": {"image": {**PRETRAIN_CFG["modalities"]["image"]}}}
    cfg["modalities"]["image"]["decoder"] = {**cfg["modalities"]["image"]["decoder"], "decoder_layers": 4}
    checkpoint = tmp_path / "deep_decoder.pt"
    torch.save(fairseq_checkpoint(cfg, nest_teacher(state_dict), stripped=True), checkpoint)
    model = convert_checkpoint(checkpoint, tmp_path / "out", keep_pretraining_modules=True).train()
    assert model.config.num_hidden_layers == 2 and model.config.decoder_num_layers == 4
    assert model.config.num_target_layers is None  # average_top_k_layers 2 = all encoder blocks
    targets = model.teacher_targets(golden["inputs"]["source"][:, 0])
    torch.testing.assert_close(targets, golden["outputs"]["pretrain.targets"], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ({}, "multi_label_classification"),  # AudioSet: binary cross-entropy
        ({"spcv2_eval": True, "mixup": 0.8}, "multi_label_classification"),  # SPC-2 recipe: BCE on mixed one-hots
        ({"spcv2_eval": True, "mixup": 0.0}, "single_label_classification"),  # no mixup: cross-entropy
        ({"esc50_eval": True, "mixup": 0.0}, "single_label_classification"),  # ESC-50 recipe: cross-entropy
    ],
)
def test_problem_type_follows_the_loss_the_official_head_was_trained_with(flags, expected):
    assert classifier_problem_type({**META["classifier_cfg"], **flags}) == expected


def test_converted_speech_commands_classifier_scores_with_sigmoid_and_reports_accuracy(golden, tmp_path):
    cfg = {**CLASSIFIER_CFG, "spcv2_eval": True, "target_length": 128}  # the SPC-2 recipe keeps mixup 0.8
    checkpoint = tmp_path / "spc2.pt"
    torch.save(fairseq_checkpoint(cfg, golden["classifier"], stripped=True), checkpoint)
    output = tmp_path / "out"
    convert_checkpoint(checkpoint, output)
    config = json.loads((output / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification"
    assert json.loads((output / "preprocessor_config.json").read_text())["max_length"] == 128
    card = ModelCard.load(output / "README.md")
    assert card.data.metrics == ["accuracy"] and "sigmoid scores" in card.text
