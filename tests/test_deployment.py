"""CPU deployment (modeling_asda/deployment.py): ASDA exported to ONNX and run by ONNX Runtime with fp32 or int8
weights, from Python and from `asda-classify` / `asda-extract-embeddings --backend`, against the torch model.

Tolerances: the fp32 graph computes what the model does in another order, so it matches to 1e-4 (absolute, on values
of order 1). Int8 weights and activations change every output a little: each clip's logits and hidden states must keep
a cosine of at least 0.99 with the fp32 model's, and the best label must stay the best.
"""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from modeling_asda import AsdaConfig, AsdaFeatureExtractor, AsdaForAudioClassification, AsdaModel, load_audio
from modeling_asda.tools import classify, embeddings


pytest.importorskip("onnxruntime", reason="the ONNX backends need onnxruntime: pip install 'modeling-asda[deploy]'")
from modeling_asda.deployment import AsdaOnnxModel, export_onnx, load_deployed_model  # noqa: E402
from modeling_asda.deployment import main as export_main  # noqa: E402


# Hidden size 64 and 2 blocks: big enough for int8 rounding to average out as in real models, small enough to export
# in seconds; max_time_patches 64 covers the 10-s clips.
TINY = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
        "max_time_patches": 64}  # fmt: skip
LABELS = {0: "hum", 1: "hiss", 2: "click"}
FP32_ATOL = 1e-4
INT8_MIN_COSINE = 0.99


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-clip cosine of two `(batch, ...)` tensors."""
    return torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1), dim=1)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = AsdaConfig(**TINY, id2label=LABELS, label2id={name: index for index, name in LABELS.items()})
    path = tmp_path_factory.mktemp("classifier")
    AsdaForAudioClassification(config).save_pretrained(path)
    AsdaFeatureExtractor().save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def clips(shared_dir) -> dict:
    """The two real AudioSet clips, the second cut to 4 s: a padded batch with its frame mask."""
    waveforms = [load_audio(shared_dir / "data" / f"audioset_clip_{name}_32k.wav") for name in "ab"]
    waveforms[1] = waveforms[1][: 4 * 16000]
    return AsdaFeatureExtractor()(
        waveforms, sampling_rate=16000, padding="longest", pad_to_multiple_of=16, return_attention_mask=True,
        return_tensors="pt",
    )  # fmt: skip


@pytest.fixture(scope="module")
def deployed(classifier) -> dict[str, AsdaOnnxModel]:
    """The classifier's ONNX exports, made as the CLIs make them (cached in `classifier/onnx/`)."""
    load = lambda: AsdaForAudioClassification.from_pretrained(classifier)  # noqa: E731
    return {
        backend: load_deployed_model(str(classifier), backend, load, "audio-classification")
        for backend in ("onnx", "onnx-int8")
    }


def test_onnx_classifier_matches_torch_on_a_padded_batch_of_real_clips(classifier, deployed, clips):
    model = AsdaForAudioClassification.from_pretrained(classifier).eval()
    with torch.no_grad():
        expected = model(**clips).logits
    fp32 = deployed["onnx"](**clips).logits
    torch.testing.assert_close(fp32, expected, atol=FP32_ATOL, rtol=0)
    int8 = deployed["onnx-int8"](**clips).logits
    assert (cosine(int8, expected) >= INT8_MIN_COSINE).all(), cosine(int8, expected)
    assert torch.equal(int8.argmax(-1), expected.argmax(-1))
    # The mask matters: the padded clip scored unmasked gives other logits, and the graph follows it.
    with torch.no_grad():
        unmasked = model(clips["input_values"]).logits
    assert (unmasked[1] - expected[1]).abs().max() > 100 * FP32_ATOL
    torch.testing.assert_close(deployed["onnx"](clips["input_values"]).logits, unmasked, atol=FP32_ATOL, rtol=0)


def test_exported_encoder_gives_the_hidden_states_and_cls_token_of_the_torch_encoder(classifier, clips, tmp_path):
    """Python path: `export_onnx(AsdaModel)`, then `AsdaOnnxModel.from_pretrained` (int8 encoders: the CLI test)."""
    encoder = AsdaModel.from_pretrained(classifier).eval()
    with torch.no_grad():
        expected = encoder(**clips)
    outputs = AsdaOnnxModel.from_pretrained(export_onnx(encoder, tmp_path / "encoder"))(**clips)
    torch.testing.assert_close(outputs.last_hidden_state, expected.last_hidden_state, atol=FP32_ATOL, rtol=0)
    torch.testing.assert_close(outputs.pooler_output, expected.pooler_output, atol=FP32_ATOL, rtol=0)
    assert json.loads((tmp_path / "encoder" / "deployment.json").read_text())["task"] == "feature-extraction"


def export_times(deployed: dict[str, AsdaOnnxModel]) -> dict[str, int]:
    return {backend: (model.folder / "model.onnx").stat().st_mtime_ns for backend, model in deployed.items()}


def classify_jsonl(capsys, classifier, *flags) -> list[dict]:
    status = classify.main([*flags, "--model", str(classifier), "--output_format", "jsonl", "--top_k", "3"])
    assert status == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_classify_backends_give_the_labels_of_torch_and_reuse_their_export(classifier, deployed, shared_dir, capsys):
    files = [str(shared_dir / "data" / f"audioset_clip_{name}_32k.wav") for name in "ab"]
    torch_rows = classify_jsonl(capsys, classifier, *files, "--device", "cpu")
    exported = export_times(deployed)
    for backend in ("onnx", "onnx-int8"):
        rows = classify_jsonl(capsys, classifier, *files, "--backend", backend)
        assert [row["file"] for row in rows] == [row["file"] for row in torch_rows]
        for row, reference in zip(rows, torch_rows):
            if backend == "onnx":
                assert row["labels"] == reference["labels"]
                np.testing.assert_allclose(row["scores"], reference["scores"], atol=FP32_ATOL)
            else:
                assert row["labels"][0] == reference["labels"][0]
    # Both runs loaded the exports made by the fixture instead of exporting again.
    assert export_times(deployed) == exported


def test_an_export_folder_is_used_as_the_model_and_refused_for_the_other_backend(
    classifier, shared_dir, tmp_path, capsys
):
    folder = tmp_path / "exported"
    assert export_main(["--model", str(classifier), "--output_dir", str(folder)]) == 0
    files = {path.name for path in folder.iterdir()}
    assert {"model.onnx", "config.json", "preprocessor_config.json", "deployment.json"} <= files
    capsys.readouterr()
    clip = str(shared_dir / "data" / "audioset_clip_a_32k.wav")
    rows = classify_jsonl(capsys, folder, clip, "--backend", "onnx")
    reference = classify_jsonl(capsys, classifier, clip, "--device", "cpu")
    assert rows[0]["labels"] == reference[0]["labels"]
    with pytest.raises(SystemExit):
        classify.main([clip, "--model", str(folder), "--backend", "onnx-int8"])
    assert "is an export with fp32 weights: use --backend onnx" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        classify.main([clip, "--model", str(classifier), "--backend", "onnx", "--device", "cuda"])
    assert "the onnx backend runs on the CPU" in capsys.readouterr().err


def test_a_cached_export_is_remade_when_the_weights_change(classifier, deployed, tmp_path, shared_dir, capsys):
    folder = tmp_path / "model"
    shutil.copytree(classifier, folder)  # with its exports; copies keep their modification times
    clip = str(shared_dir / "data" / "audioset_clip_b_32k.wav")
    cached = folder / "onnx" / "classifier-fp32" / "model.onnx"
    exported_at = cached.stat().st_mtime_ns
    first = classify_jsonl(capsys, folder, clip, "--backend", "onnx")
    assert cached.stat().st_mtime_ns == exported_at
    model = AsdaForAudioClassification.from_pretrained(folder)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([0.0, 5.0, -5.0]))  # "hiss" first, "click" last
    model.save_pretrained(folder)
    second = classify_jsonl(capsys, folder, clip, "--backend", "onnx")
    reference = classify_jsonl(capsys, folder, clip, "--device", "cpu")
    assert second[0]["labels"] == reference[0]["labels"] == ["hiss", "hum", "click"]
    np.testing.assert_allclose(second[0]["scores"], reference[0]["scores"], atol=FP32_ATOL)
    assert first[0]["scores"] != second[0]["scores"]


def test_extract_embeddings_backends_match_torch_at_an_inner_layer(classifier, shared_dir, tmp_path):
    audio = tmp_path / "audio"
    audio.mkdir()
    for name in "ab":
        (audio / f"{name}.wav").write_bytes((shared_dir / "data" / f"audioset_clip_{name}_32k.wav").read_bytes())
    outputs = {}
    for backend in ("torch", "onnx", "onnx-int8"):
        output_dir = tmp_path / backend
        flags = ["--granularity", "all", "--layer", "1", "--num_workers", "0", "--backend", backend]
        assert embeddings.main([str(audio), "--model", str(classifier), "--output_dir", str(output_dir), *flags]) == 0
        outputs[backend] = {key: torch.from_numpy(np.load(output_dir / f"{key}.npy")) for key in "ab"}
    assert (classifier / "onnx" / "encoder-1-layers-int8" / "model.onnx").is_file()
    for key in "ab":
        reference = outputs["torch"][key]
        torch.testing.assert_close(outputs["onnx"][key], reference, atol=FP32_ATOL, rtol=0)
        assert cosine(outputs["onnx-int8"][key][None], reference[None]) >= INT8_MIN_COSINE
        assert cosine(outputs["onnx-int8"][key][None, 0], reference[None, 0]) >= INT8_MIN_COSINE  # the CLS token


def test_exporting_into_a_folder_of_other_files_is_refused_and_leaves_them(classifier, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(SystemExit):
        export_main(["--model", str(classifier), "--output_dir", str(tmp_path)])
    assert "holds files that are not an ONNX export" in capsys.readouterr().err
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--backend", "onnx", "--dtype", "bfloat16"], "argument --dtype: the onnx backend runs in float32"),
        (["--backend", "onnx-int8", "--device", "cuda"], "argument --device: the onnx-int8 backend runs on the CPU"),
        (["--backend", "tensorrt"], "argument --backend: invalid choice: 'tensorrt'"),
    ],
)
def test_extract_embeddings_reports_backends_it_cannot_honour(classifier, tmp_path, capsys, flags, message):
    with pytest.raises(SystemExit) as exit_info:
        embeddings.main([str(tmp_path), "--model", str(classifier), "--output_dir", str(tmp_path / "out"), *flags])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
