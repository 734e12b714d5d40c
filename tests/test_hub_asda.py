"""Hub-ready folders: the audio-classification pipeline, remote code in a fresh process, model cards, the converter."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from huggingface_hub import ModelCard
from safetensors.torch import load_file
from transformers import pipeline
from transformers.dynamic_module_utils import get_imports

import modeling_asda
from conftest import FIXTURES
from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification, AsdaModel, load_audio
from modeling_asda.data.labels import LabelVocabulary
from modeling_asda.tools.convert_checkpoint import convert_checkpoint
from modeling_asda.tools.model_card import write_model_card


TINY = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 56,
        "decoder_hidden_size": 32}
HUB_CODE_FILES = {"configuration_asda.py", "modeling_asda.py", "feature_extraction_asda.py"}


@pytest.fixture(scope="module")
def audioset_labels(shared_dir):
    return LabelVocabulary.from_label_file(shared_dir / "data" / "audioset_labels.csv", multi_label=True).id2label


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory, audioset_labels):
    """A tiny multi-label AudioSet classifier (random weights) saved with the AudioSet feature extractor."""
    torch.manual_seed(0)
    config = AsdaConfig(**TINY, id2label=audioset_labels, problem_type="multi_label_classification")
    folder = tmp_path_factory.mktemp("asda-tiny-audioset")
    AsdaForAudioClassification(config).save_pretrained(folder)
    AsdaFeatureExtractor.from_preset("audioset").save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def waves(shared_dir):
    return [load_audio(shared_dir / "data" / f"audioset_clip_{name}_32k.wav") for name in "ab"]


def expected_top5(folder, wave):
    model = AsdaForAudioClassification.from_pretrained(folder).eval()
    inputs = AsdaFeatureExtractor.from_pretrained(folder)(wave, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        scores, ids = model(**inputs).logits[0].sigmoid().topk(5)
    return [(model.config.id2label[i], s) for s, i in zip(scores.tolist(), ids.tolist())]


def assert_same_predictions(predictions, expected, atol=1e-6):
    assert [p["label"] for p in predictions] == [label for label, _ in expected]
    np.testing.assert_allclose([p["score"] for p in predictions], [score for _, score in expected], atol=atol)


def test_pipeline_classifies_real_clips_with_sigmoid_scores_and_audioset_labels(classifier_dir, waves, audioset_labels):
    config = json.loads((classifier_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and len(config["id2label"]) == 527
    classifier = pipeline("audio-classification", model=str(classifier_dir))
    expected = [expected_top5(classifier_dir, wave) for wave in waves]

    # transformers 5.24 drops the pipeline's documented default top_k=5 when a call omits it: pass it per call.
    assert_same_predictions(classifier(waves[0], top_k=5), expected[0])
    assert_same_predictions(classifier(torch.from_numpy(waves[0]), top_k=5), expected[0])
    assert_same_predictions(classifier({"array": waves[0], "sampling_rate": 16000}, top_k=5), expected[0])
    for predictions, reference in zip(classifier(waves, batch_size=2, top_k=5), expected):
        assert_same_predictions(predictions, reference)

    everything = classifier(waves[1], top_k=None)
    assert len(everything) == 527 and {p["label"] for p in everything} == set(audioset_labels.values())
    assert audioset_labels[0] == "Speech" and audioset_labels[526] == "Field recording"
    assert sum(p["score"] for p in everything) > 2  # independent sigmoids, not a softmax


def test_single_label_classifier_gets_softmax_scores(waves):
    torch.manual_seed(1)
    model = AsdaForAudioClassification(AsdaConfig(**TINY, num_labels=4, problem_type="single_label_classification"))
    classifier = pipeline("audio-classification", model=model.eval(), feature_extractor=AsdaFeatureExtractor())
    scores = [p["score"] for p in classifier(waves[0], top_k=None)]
    assert len(scores) == 4 and sum(scores) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.skipif(
    shutil.which("ffmpeg") is None,
    reason="the audio-classification pipeline decodes file paths with the ffmpeg binary, which is not installed",
)
def test_pipeline_reads_audio_files_through_ffmpeg(classifier_dir, waves, shared_dir, tmp_path):
    classifier = pipeline("audio-classification", model=str(classifier_dir))
    # A 16 kHz float file decodes to exactly the samples written.
    path = tmp_path / "clip_a_16k.wav"
    soundfile.write(path, waves[0], 16000, subtype="FLOAT")
    assert_same_predictions(classifier(str(path), top_k=5), expected_top5(classifier_dir, waves[0]), atol=1e-5)
    # The original 32 kHz clip: ffmpeg resamples with its own filter (log-mel mean difference 0.02 against the
    # official resampling), so the tiny model's scores only come close.
    from_file = classifier(str(shared_dir / "data" / "audioset_clip_a_32k.wav"), top_k=None)
    from_array = classifier(waves[0], top_k=None)
    by_label = {p["label"]: p["score"] for p in from_array}
    np.testing.assert_allclose([p["score"] for p in from_file], [by_label[p["label"]] for p in from_file], atol=1e-3)


def test_hub_files_import_only_what_remote_loading_may_require():
    """transformers imports every unguarded third-party module of a remote-code file before loading it."""
    package = Path(modeling_asda.__file__).parent
    for name in HUB_CODE_FILES:
        third_party = {module for module in get_imports(package / name) if module not in sys.stdlib_module_names}
        assert third_party <= {"numpy", "torch", "transformers", "huggingface_hub", "safetensors"}, (name, third_party)


def test_saved_folder_holds_the_code_and_an_auto_map_for_every_auto_class(classifier_dir):
    assert HUB_CODE_FILES <= {path.name for path in classifier_dir.iterdir()}
    assert not (classifier_dir / "__init__.py").exists()
    assert json.loads((classifier_dir / "config.json").read_text())["auto_map"] == {
        "AutoConfig": "configuration_asda.AsdaConfig",
        "AutoModel": "modeling_asda.AsdaModel",
        "AutoModelForAudioClassification": "modeling_asda.AsdaForAudioClassification",
        "AutoModelForAudioFrameClassification": "modeling_asda.AsdaForAudioFrameClassification",
        "AutoModelForPreTraining": "modeling_asda.AsdaForPreTraining",
    }
    preprocessor = json.loads((classifier_dir / "preprocessor_config.json").read_text())
    assert preprocessor["auto_map"] == {"AutoFeatureExtractor": "feature_extraction_asda.AsdaFeatureExtractor"}


REMOTE_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    # Neither the checkout nor an installed copy of the package may be importable.
    sys.path = [entry for entry in sys.path if not (Path(entry or ".") / "modeling_asda").is_dir()]
    sys.modules["modeling_asda"] = None
    try:
        import modeling_asda
        raise SystemExit("modeling_asda is importable")
    except ImportError:
        pass

    import numpy as np
    import torch
    from transformers import (AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification,
                              AutoModelForAudioFrameClassification, AutoModelForPreTraining, pipeline)

    folder, wave_path, out_path = sys.argv[1:]
    wave = np.load(wave_path)
    classes = {}
    for auto_class in (AutoConfig, AutoModel, AutoModelForAudioClassification, AutoModelForAudioFrameClassification,
                       AutoModelForPreTraining, AutoFeatureExtractor):
        loaded = auto_class.from_pretrained(folder, trust_remote_code=True)
        classes[auto_class.__name__] = f"{type(loaded).__module__}.{type(loaded).__name__}"
    model = AutoModelForAudioClassification.from_pretrained(folder, trust_remote_code=True).eval()
    inputs = AutoFeatureExtractor.from_pretrained(folder, trust_remote_code=True)(
        wave, sampling_rate=16000, return_tensors="pt"
    )
    with torch.no_grad():
        logits = model(**inputs).logits[0].tolist()
    predictions = pipeline("audio-classification", model=folder, trust_remote_code=True)(wave, top_k=5)
    Path(out_path).write_text(json.dumps({"classes": classes, "logits": logits, "predictions": predictions}))
    """
)


def test_saved_folder_loads_as_remote_code_in_a_fresh_process(classifier_dir, waves, tmp_path):
    wave_path, out_path, script = tmp_path / "wave.npy", tmp_path / "out.json", tmp_path / "load_remote.py"
    np.save(wave_path, waves[0])
    script.write_text(REMOTE_SCRIPT)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(HF_MODULES_CACHE=str(tmp_path / "modules"), HF_HUB_OFFLINE="1")
    result = subprocess.run(
        [sys.executable, str(script), str(classifier_dir), str(wave_path), str(out_path)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(out_path.read_text())

    expected_classes = {
        "AutoConfig": "AsdaConfig",
        "AutoModel": "AsdaModel",
        "AutoModelForAudioClassification": "AsdaForAudioClassification",
        "AutoModelForAudioFrameClassification": "AsdaForAudioFrameClassification",
        "AutoModelForPreTraining": "AsdaForPreTraining",
        "AutoFeatureExtractor": "AsdaFeatureExtractor",
    }
    for auto_class, name in expected_classes.items():
        module, _, class_name = remote["classes"][auto_class].rpartition(".")
        assert module.startswith("transformers_modules.") and class_name == name, remote["classes"]

    model = AsdaForAudioClassification.from_pretrained(classifier_dir).eval()
    inputs = AsdaFeatureExtractor.from_pretrained(classifier_dir)(waves[0], sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        logits = model(**inputs).logits[0]
    np.testing.assert_allclose(remote["logits"], logits.numpy(), atol=1e-6)
    assert_same_predictions(remote["predictions"], expected_top5(classifier_dir, waves[0]))


def test_model_card_carries_hub_metadata_and_the_remote_code_warning(classifier_dir, tmp_path):
    folder = tmp_path / "classifier"
    shutil.copytree(classifier_dir, folder)
    write_model_card(
        folder, repo_id="org/asda-tiny-as2m", revision="0123abc", base_model="org/asda-tiny", datasets=["AudioSet"]
    )
    card = ModelCard.load(folder / "README.md")
    assert card.data.pipeline_tag == "audio-classification"
    assert card.data.library_name == "transformers"
    assert {"audio", "asda", "custom_code", "audio-classification"} <= set(card.data.tags)
    assert card.data.base_model == "org/asda-tiny" and card.data.datasets == ["AudioSet"]
    assert card.data.metrics == ["mean_average_precision"]
    assert 'model="org/asda-tiny-as2m", trust_remote_code=True, revision="0123abc"' in card.text
    assert "527 classes, multi-label" in card.text
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_model_card(folder)

    encoder_folder = tmp_path / "encoder"
    AsdaModel(AsdaConfig(**TINY, attention_type="standard")).save_pretrained(encoder_folder)
    card = write_model_card(encoder_folder)
    assert card.data.pipeline_tag == "feature-extraction" and card.data.metrics is None
    assert "eat" in card.data.tags and 'AutoModel.from_pretrained("encoder", trust_remote_code=True)' in card.text


def test_converter_writes_a_hub_ready_folder_with_the_preset_and_a_card(tmp_path):
    """An official-format classifier checkpoint (the golden tiny model) becomes a complete folder."""
    meta = json.loads((FIXTURES / "tiny_meta.json").read_text())
    model_cfg = {**meta["classifier_cfg"], "pretrained_model_args": {"model": meta["pretrain_model_cfg"]}}
    checkpoint = tmp_path / "checkpoint.pt"
    state_dict = load_file(FIXTURES / "tiny_classifier_state_dict.safetensors")
    torch.save({"cfg": {"model": model_cfg}, "model": state_dict}, checkpoint)
    output = tmp_path / "converted"
    convert_checkpoint(checkpoint, output)

    assert HUB_CODE_FILES | {"README.md", "model.safetensors"} <= {path.name for path in output.iterdir()}
    preprocessor = json.loads((output / "preprocessor_config.json").read_text())
    assert {key: preprocessor[key] for key in ("mean", "std", "max_length")} == {
        "mean": -4.268, "std": 4.569, "max_length": 1024
    }
    card = ModelCard.load(output / "README.md")
    assert card.data.pipeline_tag == "audio-classification" and "checkpoint.pt" in card.text
