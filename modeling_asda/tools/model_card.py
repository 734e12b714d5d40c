"""Model cards (README.md with Hub metadata) for saved ASDA folders.

    write_model_card("asda-base-as2m", repo_id="org/asda-base-as2m", datasets=["AudioSet"], base_model="org/asda-base")

The card is built from the folder's `config.json`: architecture, labels and problem type choose the pipeline tag,
the default metric and the usage snippet. Every card says that loading needs `trust_remote_code=True`.
"""

import json
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from .files import write_text_atomically


# Architecture -> (Hub pipeline tag, Auto class used in the snippet).
ARCHITECTURES = {
    "AsdaForAudioClassification": ("audio-classification", "AutoModelForAudioClassification"),
    "AsdaForAudioFrameClassification": ("audio-classification", "AutoModelForAudioFrameClassification"),
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


PRETRAINED_CARD_TEXT = (
    "Pre-trained with the self-supervised recipe of ASDA / EAT (`examples/run_pretrain.py`): an EMA teacher, inverse "
    "block masking of 80 % of the patches for several student clones per clip, a CNN decoder, and frame plus "
    "utterance regression losses. This folder holds the student encoder; fine-tune it with "
    "`examples/run_finetune.py`."
)
# Metrics reported on a fine-tuned model's card, and their Hub metric ids.
RESULT_METRICS = ("mAP", "mAUC", "d_prime", "accuracy", "top5_accuracy", "frame_mAP", "frame_f1", "loss")
CARD_METRICS = {"mAP": "mean_average_precision", "mAUC": "roc_auc", "accuracy": "accuracy"}


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
    write_text_atomically(card_path, str(card))
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
            "AsdaForAudioFrameClassification": f"sound event detector ({len(config.get('id2label', {}))} classes, "
            "sigmoid scores per 16-frame time patch; `asda-classify --events` lists the events of a recording)",
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


def finetuning_card_section(args, config, metrics: dict[str, float]) -> str:
    """The "Fine-tuning" section of a fine-tuned model's card: the recipe of `args` (`AsdaFinetuningArguments`) and
    the evaluation `metrics`."""
    if (getattr(config, "architectures", None) or [None])[0] == "AsdaForAudioFrameClassification":
        objective = "binary cross-entropy per time patch, averaged over the frame targets of real (not padded) audio"
    elif config.problem_type == "multi_label_classification":
        objective = (
            f"binary cross-entropy, summed and divided by the number of {args.multilabel_loss_normalization}"
        )
    else:
        objective = f"softmax cross-entropy, label smoothing {args.label_smoothing_factor}"
    augmentations = []
    if args.roll_augment:
        augmentations.append(f"waveform roll + Beta({args.gain_beta}, {args.gain_beta}) + {args.gain_offset} gain")
    if args.spectrogram_noise:
        augmentations.append(f"feature noise (scale {args.noise_scale}) + time roll (+-{args.noise_max_shift})")
    if args.mixup_alpha > 0:
        augmentations.append(f"mixup alpha {args.mixup_alpha} (probability {args.mixup_prob})")
    if args.spec_augment_ratio > 0:
        augmentations.append(f"SpecAugment ratio {args.spec_augment_ratio}")
    sampling = (
        f"class-balanced, {args.balanced_samples_per_epoch} clips per epoch"
        if args.balanced_sampling
        else "uniform"
    )
    rows = [
        ("objective", objective),
        (
            "optimiser",
            f"AdamW betas ({args.adam_beta1}, {args.adam_beta2}), weight decay {args.weight_decay} "
            f"({'not on biases and 1-D tensors' if args.exempt_biases_and_1d_from_weight_decay else 'on every parameter'}"
            f"), layer-wise lr decay {args.layer_decay}",
        ),
        (
            "schedule",
            f"peak lr {args.learning_rate}, {args.warmup_steps:g} warm-up steps, "
            + (
                f"fairseq cosine per layer group to min_lr {args.lr_scheduler_kwargs.get('min_lr', 0.0)}"
                if args.official_lr_schedule
                else f"{getattr(args.lr_scheduler_type, 'value', args.lr_scheduler_type)} {args.lr_scheduler_kwargs}"
            )
            + f", {args.max_steps} steps, batch {args.train_batch_size} x {args.gradient_accumulation_steps} "
            f"accumulation x {args.world_size} processes",
        ),
        ("stochastic depth", str(config.drop_path_rate)),
        ("augmentation", "; ".join(augmentations) or "none"),
        ("sampling", sampling),
        ("checkpoint", f"best eval {args.metric_for_best_model}" if args.load_best_model_at_end else "last"),
    ]
    recipe = "\n".join(f"| {name} | {value} |" for name, value in rows)
    results = "\n".join(f"| {name} | {value:.4f} |" for name, value in metrics.items() if name in RESULT_METRICS)
    section = (
        "## Fine-tuning\n\n"
        "Fine-tuned with `examples/run_finetune.py`, the official ASDA/EAT recipe on the Hugging Face Trainer.\n\n"
        f"| setting | value |\n|---|---|\n{recipe}\n"
    )
    if results:
        section += f"\n### Results on the evaluation set\n\n| metric | value |\n|---|---|\n{results}\n"
    return section


__all__ = ["CARD_METRICS", "PRETRAINED_CARD_TEXT", "finetuning_card_section", "write_model_card"]
