"""Model cards (README.md with Hub metadata) for saved ASDA folders.

    write_model_card("asda-base-as2m", repo_id="org/asda-base-as2m", datasets=["AudioSet"], base_model="org/asda-base")

The card is built from the folder's `config.json`: architecture, labels and problem type choose the pipeline tag,
the default metric and the usage snippet. Every card says that loading needs `trust_remote_code=True`.
"""

import json
import os
import tempfile
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData


# Architecture -> (Hub pipeline tag, Auto class used in the snippet).
ARCHITECTURES = {
    "AsdaForAudioClassification": ("audio-classification", "AutoModelForAudioClassification"),
    "AsdaModel": ("feature-extraction", "AutoModel"),
    "AsdaForPreTraining": ("feature-extraction", "AutoModelForPreTraining"),
}
PAPERS = {
    "asda": "ASDA: Audio Spectrogram Differential Attention Mechanism for Self-Supervised Representation Learning "
    "(Wang et al., Interspeech 2025, [arXiv:2507.02666](https://arxiv.org/abs/2507.02666); official code "
    "[MyParadise21/ASDA](https://github.com/MyParadise21/ASDA))",
    "eat": "EAT: Self-Supervised Pre-Training with Efficient Audio Transformer (Chen et al., IJCAI 2024, "
    "[arXiv:2401.03497](https://arxiv.org/abs/2401.03497); official code "
    "[cwx-worst-one/EAT](https://github.com/cwx-worst-one/EAT))",
}


def write_model_card(
    save_directory: str | os.PathLike,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    base_model: str | list[str] | None = None,
    datasets: str | list[str] | None = None,
    metrics: list[str] | None = None,
    eval_results: list[EvalResult] | None = None,
    license: str = "apache-2.0",
    description: str | None = None,
    overwrite: bool = False,
) -> ModelCard:
    """Write `README.md` into a folder made by `save_pretrained` and return the card.

    Args:
        save_directory: the saved folder (must hold `config.json`).
        repo_id: Hub id the folder will be pushed to, for the usage snippet (defaults to the folder name).
        revision: commit of that repo to pin in the snippet; remote code should be pinned.
        base_model: the pre-trained model a fine-tuned one starts from.
        datasets: Hub dataset ids (or names) the model was trained on.
        metrics: defaults to `mean_average_precision` for multi-label classifiers and `accuracy` for single-label ones.
        eval_results: `huggingface_hub.EvalResult`s for the card's model-index.
        license: SPDX id of the weights' license.
        description: a paragraph about this checkpoint (training data, recipe, results).
        overwrite: replace an existing `README.md` (refused otherwise, so no hand-written card is lost).
    """
    folder = Path(save_directory)
    card_path = folder / "README.md"
    if card_path.exists() and not overwrite:
        raise FileExistsError(f"{card_path} exists; pass overwrite=True to replace it.")
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    architecture = (config.get("architectures") or ["AsdaModel"])[0]
    if architecture not in ARCHITECTURES:
        raise ValueError(f"{folder} holds a {architecture}; expected one of {sorted(ARCHITECTURES)}.")
    pipeline_tag, auto_class = ARCHITECTURES[architecture]
    family = "asda" if config.get("attention_type", "differential") == "differential" else "eat"
    is_classifier = pipeline_tag == "audio-classification"
    multi_label = config.get("problem_type") == "multi_label_classification"
    if metrics is None and is_classifier:
        metrics = ["mean_average_precision" if multi_label else "accuracy"]
    repo_id = repo_id or folder.resolve().name

    card_data = ModelCardData(
        model_name=repo_id.rsplit("/", 1)[-1],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        license=license,
        tags=["audio", family, "custom_code"] + (["audio-classification"] if is_classifier else []),
        base_model=base_model,
        datasets=datasets,
        metrics=metrics,
        eval_results=eval_results,
    )
    body = _card_body(config, architecture, auto_class, family, repo_id, revision, description)
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".tmp", delete=False, encoding="utf-8") as handle:
        handle.write(str(card))
    os.replace(handle.name, card_path)
    return card


def _card_body(config, architecture, auto_class, family, repo_id, revision, description) -> str:
    pin = f', revision="{revision}"' if revision else ""
    if architecture == "AsdaForAudioClassification":
        multi_label = config.get("problem_type") == "multi_label_classification"
        scores = "multi-label, sigmoid scores" if multi_label else "single-label, softmax scores"
        kind = f"audio classifier ({len(config.get('id2label', {}))} classes, {scores})"
        usage = (
            "from transformers import pipeline\n\n"
            f'classifier = pipeline("audio-classification", model="{repo_id}", trust_remote_code=True{pin})\n'
            "# a file (decoded by ffmpeg), a mono float array at 16 kHz or {\"array\": ..., \"sampling_rate\": ...}\n"
            'classifier("clip.wav", top_k=5)'
        )
    else:
        kind = {
            "AsdaModel": "audio encoder (CLS and patch features)",
            "AsdaForPreTraining": "encoder with its pre-training teacher and decoder (EAT recipe)",
        }[architecture]
        usage = (
            f"from transformers import AutoFeatureExtractor, {auto_class}\n\n"
            f'feature_extractor = AutoFeatureExtractor.from_pretrained("{repo_id}", trust_remote_code=True{pin})\n'
            f'model = {auto_class}.from_pretrained("{repo_id}", trust_remote_code=True{pin})\n'
            'inputs = feature_extractor(waveform, sampling_rate=16000, return_tensors="pt")  # mono float waveform\n'
            "outputs = model(**inputs)"
        )
    sections = [
        f"# {repo_id.rsplit('/', 1)[-1]}",
        f"An {family.upper()} {kind}. Model: {PAPERS[family]}.",
        description or "",
        "## Usage",
        "The model code lives in this repository, so loading needs `trust_remote_code=True`. Read the code first and "
        "pin `revision=` to a commit you reviewed, so that the code cannot change under you. Where the `modeling-asda` "
        "package is imported (`import modeling_asda`), its classes are used instead and no remote code runs.",
        f"```python\n{usage}\n```",
        "Input: mono audio. The feature extractor computes the official Kaldi-compatible 128-bin log-mel fbank and its "
        "normalisation (see `preprocessor_config.json`). It reads files itself (`feature_extractor(\"clip.wav\")`) and "
        "resamples arrays at other rates (`feature_extractor(waveform, sampling_rate=44100)`) with the filter of the "
        "official pipeline; the pipeline instead has ffmpeg decode and resample files, which shifts the features "
        "slightly.",
    ]
    return "\n\n".join(section for section in sections if section) + "\n"


__all__ = ["write_model_card"]
